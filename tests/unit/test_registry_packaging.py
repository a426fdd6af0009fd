"""Registry-ready packaging: what ``.comfyignore`` leaves out of the published node (tests, benchmarks, CI, dev
tools) and keeps (everything the node imports or serves, the headless runner), the icon, and the metadata."""
from __future__ import annotations

import ast
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REPO_URL = "https://github.com/videopainter-comfy/videopainter-nodes"
MUST_LEAVE_OUT = ["tests/conftest.py", "bench/run.sh", ".ci/run", "scripts/quickstart.sh", "scripts/test.sh",
                  "scripts/host027.sh", "scripts/api_to_ui.py", "scripts/ui.sh", "scripts/ui_host.py",
                  "scripts/make_demo_models.py", "scripts/make_thumbnails.py", "vp_core/conformance/runner.py"]
MUST_KEEP = ["__init__.py", "pyproject.toml", "requirements.txt", "README.md", "LICENSE", "scripts/vp_run.py",
             "vp_headless/comfy_client.py", "vp_headless/run.py", "scripts/vp_pack.py", "docs/icon.svg", "workflows/videopainter_inpaint.json",
             "workflows/videopainter_inpaint.jpg"]


def patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def ignored(path: str, pats: list[str]) -> bool:
    """The subset of gitignore syntax .comfyignore uses: ``dir/`` (a folder anywhere below the root... here: at the
    root) and exact root-relative file paths."""
    return any(path.startswith(p) if p.endswith("/") else path == p for p in pats)


@pytest.fixture(scope="module")
def pats() -> list[str]:
    found = patterns((REPO / ".comfyignore").read_text())
    for p in found:  # only the two forms `ignored` implements
        assert not any(ch in p for ch in "*?[!") and not p.startswith("/"), f".comfyignore: unsupported pattern {p!r}"
    return found


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return out.split()


def test_matcher():
    assert ignored("tests/unit/x.py", ["tests/"]) and not ignored("nodes/tests.py", ["tests/"])
    assert ignored("scripts/test.sh", ["scripts/test.sh"]) and not ignored("scripts/test.sh.bak", ["scripts/test.sh"])


def test_dev_files_are_left_out_and_the_node_is_kept(pats):
    assert [p for p in MUST_LEAVE_OUT if not ignored(p, pats)] == []
    assert [p for p in MUST_KEEP if ignored(p, pats)] == []
    kept_runtime = [f for f in tracked_files() if f.startswith(("nodes/", "vp_core/", "web/", "workflows/"))
                    and not f.startswith("vp_core/conformance/")]
    assert kept_runtime and [f for f in kept_runtime if ignored(f, pats)] == []


def test_the_node_does_not_import_what_is_left_out():
    for path in [REPO / "__init__.py", *(REPO / "nodes").rglob("*.py"), *(REPO / "vp_core").rglob("*.py")]:
        if "conformance" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any("conformance" in n for n in names), f"{path.relative_to(REPO)} imports the conformance runner"


def test_metadata_classifiers_urls_and_icon():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    project, comfy = data["project"], data["tool"]["comfy"]
    classifiers = project["classifiers"]
    assert any(c.startswith("Operating System ::") for c in classifiers)
    assert any(c.startswith("Environment :: GPU") for c in classifiers)
    assert project["urls"]["Documentation"].startswith(REPO_URL)
    assert project["urls"]["Bug Tracker"] == f"{REPO_URL}/issues"
    prefix = REPO_URL.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    assert comfy["Icon"].startswith(prefix)
    icon = REPO / comfy["Icon"][len(prefix):]
    root = ET.parse(icon).getroot()
    assert root.tag.endswith("svg")
    _, _, w, h = (float(v) for v in root.get("viewBox").split())
    assert w == h, "the registry shows icons square"
    assert icon.stat().st_size < 20_000
