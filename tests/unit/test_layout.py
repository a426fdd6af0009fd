"""The house's layout holds: every module's imports (also those inside functions) go to its own room or to a room
below it, and no chain of imports comes back to where it started.

Rooms, from the bottom up (a room may import the rooms of a lower rank, never one of its own rank or higher):

    vp_core.base < vp_core.model, vp_core.video < vp_core.checkpoints < vp_core.pipeline < vp_core.evaluation
      < vp_core.training < vp_core.conformance < nodes, vp_headless < the pack's entry point (__init__.py)

``nodes`` (the ComfyUI side) and ``vp_headless`` (the client side) stand side by side: neither imports the other.
The commands in ``scripts/``, the tests and the benchmarks sit on top and are not checked here.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RANKS = {
    "vp_core": 0,  # the package's own __init__ (a docstring): importable from anywhere, imports nothing
    "vp_core.base": 0,
    "vp_core.model": 1,
    "vp_core.video": 1,
    "vp_core.checkpoints": 2,
    "vp_core.pipeline": 3,
    "vp_core.evaluation": 4,
    "vp_core.training": 5,
    "vp_core.conformance": 6,
    "nodes": 10,
    "vp_headless": 10,
    "": 20,  # the entry point
}
CHECKED = ("vp_core", "nodes", "vp_headless")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "vp_core" and len(parts) > 1 and f"vp_core.{parts[1]}" in RANKS:
        return f"vp_core.{parts[1]}"
    return parts[0]


def imports_of(path: Path, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The pack's modules that ``module`` imports, resolved to module names (``from X import name`` counts as an
    import of ``X.name`` when that is a module, else of ``X``)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else list(package)
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("videopainter."):
                target = node.module.removeprefix("videopainter.")
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("videopainter."):
                    found.add(alias.name.removeprefix("videopainter."))
    return {m for m in found if m in modules}


def import_graph(root: Path, tops: tuple[str, ...] = CHECKED) -> dict[str, set[str]]:
    files = {}
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            files[module_name(path, root)] = path
    if (root / "__init__.py").is_file():
        files[""] = root / "__init__.py"
    modules = set(files)
    return {m: imports_of(p, m, p.name == "__init__.py", modules) for m, p in files.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        room = room_of(module)
        if room not in RANKS:
            bad.append(f"{module}: room {room!r} has no rank (add it to RANKS and to the README's Layout)")
            continue
        for target in sorted(targets):
            to = room_of(target)
            if to != room and not RANKS.get(to, 99) < RANKS[room]:
                bad.append(f"{module or '__init__'} ({room or 'entry'}) imports {target} ({to}), not a lower room")
    return bad


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself): Tarjan's algorithm."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


GRAPH = import_graph(REPO)


def test_the_pack_has_the_rooms_the_readme_names():
    rooms = {room_of(m) for m in GRAPH}
    assert {"vp_core.base", "vp_core.model", "vp_core.video", "vp_core.checkpoints", "vp_core.pipeline",
            "vp_core.evaluation", "vp_core.conformance", "nodes", "vp_headless"} <= rooms
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## Development")]
    for room in sorted(r for r in rooms if r):
        assert re.search(rf"(^|\s){room.split('.')[-1]}/\s", layout, re.M), f"README's Layout section does not show {room}"


def test_every_room_says_what_it_owns_and_what_it_may_import():
    for room in sorted(r for r in {room_of(m) for m in GRAPH} if r.startswith("vp_core.")):
        init = REPO / room.replace(".", "/") / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc) > 80, f"{init.relative_to(REPO)}: no docstring saying what the room owns"
        assert "import" in doc.lower(), f"{init.relative_to(REPO)}: the docstring does not say what the room may import"


def test_imports_go_down_only():
    assert upward_imports(GRAPH) == []


def test_no_import_circles():
    assert circles(GRAPH) == []


def test_no_module_is_a_giant():
    """~600 lines at most, unless its docstring says why it is longer ("longer than")."""
    giants = []
    for module in GRAPH:
        path = REPO / (module.replace(".", "/") or ".")
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        lines = len(path.read_text().splitlines())
        if lines > 620 and "longer than" not in (ast.get_docstring(ast.parse(path.read_text())) or ""):
            giants.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert giants == []


# ---------------------------------------------------------------------------------- the checks themselves fail


def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(tmp_path)


@pytest.mark.parametrize("statement", ["from ..pipeline import sampling", "from ..pipeline.sampling import run",
                                       "    from ..pipeline import sampling"])
def test_an_import_from_a_higher_room_is_found(tmp_path, statement):
    body = statement if not statement.startswith(" ") else f"def f():\n{statement}\n"
    graph = _tree(tmp_path, {"vp_core/__init__.py": "", "vp_core/video/__init__.py": "",
                             "vp_core/video/video_io.py": body + "\n", "vp_core/pipeline/__init__.py": "",
                             "vp_core/pipeline/sampling.py": "run = 1\n"})
    assert upward_imports(graph) == [
        "vp_core.video.video_io (vp_core.video) imports vp_core.pipeline.sampling (vp_core.pipeline), not a lower room"]


def test_nodes_and_the_headless_side_do_not_import_each_other(tmp_path):
    graph = _tree(tmp_path, {"nodes/__init__.py": "", "nodes/a.py": "from ..vp_headless import comfy_client\n",
                             "vp_headless/__init__.py": "", "vp_headless/comfy_client.py": ""})
    assert len(upward_imports(graph)) == 1


def test_a_circle_is_found_also_through_an_import_inside_a_function(tmp_path):
    graph = _tree(tmp_path, {"vp_core/__init__.py": "", "vp_core/checkpoints/__init__.py": "",
                             "vp_core/checkpoints/vae.py": "from .loaders import x\n",
                             "vp_core/checkpoints/loaders.py": "from . import core_interop\nx = 1\n",
                             "vp_core/checkpoints/core_interop.py": "def f():\n    from .vae import y\n"})
    assert upward_imports(graph) == []
    assert circles(graph) == [["vp_core.checkpoints.core_interop", "vp_core.checkpoints.loaders",
                               "vp_core.checkpoints.vae"]]
