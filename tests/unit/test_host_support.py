"""Which ComfyUI the pack supports: the node API is imported in the version both tested hosts have, and
``requires-comfyui`` in ``pyproject.toml`` is the oldest host the suite actually runs on.

The tested hosts are the ones the install scripts pin (``scripts/quickstart.sh``: 0.3.75, the minimum;
``scripts/host027.sh``: 0.27.0); ``.ci/run`` runs the whole suite on both.
"""
from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PINNED_API = "v0_0_2"
HOST_SCRIPTS = ("scripts/quickstart.sh", "scripts/host027.sh")


def comfy_api_imports(source: str) -> list[str]:
    """Every module under ``comfy_api`` that ``source`` imports (``from comfy_api.x import y``, ``import comfy_api.x``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [n for n in names if n == "comfy_api" or n.startswith("comfy_api.")]
    return found


def unpinned(source: str) -> list[str]:
    return [m for m in comfy_api_imports(source) if m.split(".")[:2] != ["comfy_api", PINNED_API]]


def pack_sources() -> list[Path]:
    return [REPO / "__init__.py", *sorted((REPO / "nodes").rglob("*.py")), *sorted((REPO / "vp_core").rglob("*.py"))]


def _tested_host_versions() -> list[tuple[int, ...]]:
    versions = []
    for script in HOST_SCRIPTS:
        match = re.search(r'^COMFY_VERSION="(\d+(?:\.\d+)+)"', (REPO / script).read_text(), re.M)
        assert match, f"{script}: no COMFY_VERSION=\"x.y.z\" line"
        versions.append(tuple(int(p) for p in match.group(1).split(".")))
    return versions


def test_scan_flags_unpinned_imports():
    assert unpinned("from comfy_api.latest import io\nimport comfy_api.v0_0_1\nfrom comfy_api import feature_flags") \
        == ["comfy_api.latest", "comfy_api.v0_0_1", "comfy_api"]
    assert unpinned(f"from comfy_api.{PINNED_API} import io, ui\nfrom .x import comfy_api\nimport comfy") == []


def test_pack_imports_the_pinned_node_api_only():
    bad = {str(p.relative_to(REPO)): unpinned(p.read_text()) for p in pack_sources()}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"import comfy_api.{PINNED_API} (both tested hosts have it), not: {bad}"
    assert any(comfy_api_imports(p.read_text()) for p in pack_sources()), "the scan found no node API import at all"


def test_pinned_node_api_exists_in_this_host():
    assert importlib.util.find_spec(f"comfy_api.{PINNED_API}") is not None


def test_requires_comfyui_is_the_oldest_tested_host():
    comfy = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["comfy"]
    oldest = ".".join(map(str, min(_tested_host_versions())))
    assert comfy["requires-comfyui"] == f">={oldest}"
