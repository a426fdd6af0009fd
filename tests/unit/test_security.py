"""Security rules of issue #9, checked on the source and on the two places that turn widget values into paths.

* No ``eval``/``exec``/``compile``/``__import__``, no pickle (``pickle``/``torch.load``/``np.load``...), no network
  (``requests``, ``urllib``, ``socket``, ``huggingface_hub``...), no ``subprocess``/``os.system``/``pip`` in the
  code ComfyUI imports (``__init__.py``, ``nodes/``, ``vp_core/``). Weights are safetensors only.
* File inputs resolve through ComfyUI's folders: ``nodes.paths.resolve`` (model and LoRA names) and the ID-state
  loader refuse ``..`` and absolute paths.
"""
from __future__ import annotations

import ast
from pathlib import Path

import folder_paths
import pytest

from videopainter.nodes import id_state as id_state_nodes
from videopainter.nodes import paths

REPO = Path(__file__).resolve().parents[2]
RUNTIME_SOURCES = sorted([REPO / "__init__.py", *(REPO / "nodes").rglob("*.py"), *(REPO / "vp_core").rglob("*.py")])

FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "breakpoint"}
FORBIDDEN_MODULES = {
    "pickle", "cPickle", "_pickle", "dill", "joblib", "marshal", "shelve",  # code execution on load
    "requests", "urllib", "urllib3", "http", "httpx", "aiohttp", "socket", "ftplib", "websocket", "websockets",
    "huggingface_hub",  # network
    "subprocess", "pip", "importlib",  # running programs, installing or importing by name at run time
}
FORBIDDEN_ATTRIBUTES = {  # (object name, attribute)
    ("torch", "load"), ("np", "load"), ("numpy", "load"), ("os", "system"), ("os", "popen"), ("os", "execv"),
    ("os", "execvp"), ("os", "spawnv"), ("serialization", "load"), ("importlib", "import_module"),
}
FORBIDDEN_NAMES = {"hf_hub_download", "snapshot_download", "load_dataset"}
# Reviewed exceptions: (file relative to the repo, name). from_pretrained on a local folder reads no network.
ALLOWED = {
    ("vp_core/checkpoints/text.py", "from_pretrained"),
    # the metric networks: transformers folders read with local_files_only=True (checked below), safetensors only
    ("vp_core/evaluation/metrics/models.py", "from_pretrained"),
    # VPBench's all_masks.npz label maps: np.load of an .npz with allow_pickle left at its default False (checked below)
    ("vp_core/evaluation/datasets.py", "np.load"),
}
FROM_PRETRAINED = "from_pretrained"


def violations(source: str, filename: str = "<string>") -> list[str]:
    """``line: what`` for every forbidden construct in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            found.append(f"{line}: call to {node.func.id}()")
        elif isinstance(node, ast.Import):
            found += [f"{line}: import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in FORBIDDEN_MODULES:
            found.append(f"{line}: from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom):
            found += [f"{line}: import {a.name}" for a in node.names if a.name in FORBIDDEN_NAMES | {"load"} and
                      node.module in ("torch", "numpy", "pickle")]
        elif isinstance(node, ast.Attribute):
            base = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", None)
            if (base, node.attr) in FORBIDDEN_ATTRIBUTES:
                found.append(f"{line}: {base}.{node.attr}")
            elif node.attr in FORBIDDEN_NAMES or node.attr == FROM_PRETRAINED:
                found.append(f"{line}: {node.attr}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"{line}: {node.id}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "pip install" in node.value:
            found.append(f"{line}: 'pip install' in a string")
        elif isinstance(node, ast.keyword) and node.arg in ("allow_pickle", "weights_only", "trust_remote_code"):
            found.append(f"{line}: {node.arg}=")
    return found


def test_runtime_code_has_no_eval_pickle_network_or_pip():
    assert len(RUNTIME_SOURCES) > 10, RUNTIME_SOURCES
    problems = []
    for path in RUNTIME_SOURCES:
        rel = path.relative_to(REPO).as_posix()
        for v in violations(path.read_text(), rel):
            if not any(rel == f and v.endswith(f": {name}") for f, name in ALLOWED):
                problems.append(f"{rel}:{v}")
    assert problems == []


def test_the_allowed_from_pretrained_reads_a_local_folder():
    text = (REPO / "vp_core" / "checkpoints" / "text.py").read_text()
    calls = [line.strip() for line in text.splitlines() if ".from_pretrained(" in line]
    assert calls == ["return T5TokenizerFast.from_pretrained(str(T5_TOKENIZER_DIR))"], calls
    metric_calls = [line for line in (REPO / "vp_core" / "evaluation" / "metrics" / "models.py").read_text().splitlines()
                    if ".from_pretrained(" in line]
    assert metric_calls and all("local_files_only=True" in line for line in metric_calls), metric_calls
    np_loads = [line for line in (REPO / "vp_core" / "evaluation" / "datasets.py").read_text().splitlines() if "np.load(" in line]
    assert np_loads and not any("allow_pickle" in line for line in np_loads), np_loads
    from videopainter.vp_core.checkpoints import text as vp_text

    assert Path(vp_text.T5_TOKENIZER_DIR).is_dir()


@pytest.mark.parametrize("snippet", [
    "eval('1')", "exec('x = 1')", "__import__('os')", "import pickle", "from pickle import loads",
    "torch.load('x.pt')", "np.load('x.npy', allow_pickle=True)", "import requests", "from urllib import request",
    "import socket", "from huggingface_hub import hf_hub_download", "import subprocess", "os.system('pip install x')",
    "x = 'pip install torch'", "AutoModel.from_pretrained('org/model')", "from torch import load",
    "importlib.import_module('x')", "import importlib",
])
def test_the_scanner_finds_each_forbidden_construct(snippet):
    assert violations(snippet), snippet


def test_the_scanner_passes_ordinary_code():
    assert violations("import torch\nfrom safetensors.torch import load_file\nx = load_file('a.safetensors')\n"
                      "model.eval()\nmodule.load_state_dict(sd)\nos.path.join('a', 'b')\n") == []


# ------------------------------------------------------------------------------------------------ paths


@pytest.fixture
def model_root(tmp_path, monkeypatch):
    """A registered ``videopainter`` folder with one model, a ``loras`` folder with one LoRA, and a secret next to
    them that no widget value may reach."""
    root = tmp_path / "models"
    (root / "videopainter" / "VideoPainter" / "checkpoints" / "branch").mkdir(parents=True)
    (root / "loras").mkdir()
    (root / "loras" / "style.safetensors").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("secret")
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "videopainter", ([str(root / "videopainter")], {".json"}))
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "loras", ([str(root / "loras")], {".safetensors"}))
    return tmp_path


def test_listed_names_resolve(model_root):
    branch = paths.resolve("videopainter", "VideoPainter/checkpoints/branch")
    assert branch == model_root / "models" / "videopainter" / "VideoPainter" / "checkpoints" / "branch"
    assert paths.resolve("loras", "loras/style.safetensors") == model_root / "models" / "loras" / "style.safetensors"


@pytest.mark.parametrize("kind, name", [
    ("videopainter", "../../secret.txt"), ("videopainter", "../../etc/passwd"), ("videopainter", "/etc/passwd"),
    ("videopainter", "VideoPainter/../../../secret.txt"), ("loras", "videopainter/../../secret.txt"),
    ("loras", "loras/../../secret.txt"), ("loras", "loras//etc/passwd"), ("loras", "../../secret.txt"),
])
def test_path_traversal_in_model_names_is_refused(model_root, kind, name):
    with pytest.raises(ValueError) as e:
        path = paths.resolve(kind, name)
        pytest.fail(f"{name!r} resolved to {path}")
    text = str(e.value)
    assert "only names listed under models/videopainter are accepted" in text or "not found in models/loras" in text


def test_traversal_message_names_what_was_given(model_root):
    with pytest.raises(ValueError) as e:
        paths.resolve("videopainter", "../../etc/passwd")
    assert str(e.value) == ("'../../etc/passwd': only names listed under models/videopainter are accepted (no absolute "
                            "paths, '..', drive letters or backslashes)")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "../secret.txt", "sub/../../secret.txt"])
def test_id_state_loader_refuses_paths_outside_the_input_folder(tmp_path, monkeypatch, name):
    (tmp_path / "input").mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    monkeypatch.setattr(folder_paths, "input_directory", str(tmp_path / "input"))
    with pytest.raises(ValueError) as e:
        id_state_nodes.VideoPainterLoadIDState.execute(state_file=name)
    assert str(e.value) == f"state_file: {name!r} is outside the input folder"


def test_save_id_state_prefix_cannot_escape_the_output_folder(tmp_path, monkeypatch):
    """Save ID State's filename_prefix is checked before ComfyUI's get_save_image_path (which refuses other folders
    too, but with a message that does not name the input)."""
    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path / "output"))
    with pytest.raises(ValueError, match=r"^filename_prefix: '\.\./\.\./\.\./escaped': absolute paths and '\.\.' are not"):
        id_state_nodes.VideoPainterSaveIDState.execute(id_state=object(), filename_prefix="../../../escaped")
    assert not any(tmp_path.parent.glob("escaped*"))


# Names that escape a folder on Windows (drive-relative, drive-absolute, UNC, backslash traversal) and the POSIX
# ones: refused on every OS, so a workflow that is safe on this Linux machine is safe on a Windows one.
WINDOWS_NAMES = ["C:x", "C:\\x", "c:/x", "\\\\server\\share", "..\\x", "sub\\..\\..\\x", "\\x"]
ESCAPING_NAMES = WINDOWS_NAMES + ["../x", "/etc/passwd", "sub/../../x", ""]


@pytest.mark.parametrize("name", ESCAPING_NAMES)
def test_relative_names_are_confined_on_every_os(tmp_path, name):
    assert paths.relative_name_error(name) is not None
    assert paths.confine(tmp_path, name) is None


@pytest.mark.parametrize("name", ["a", "clip/part1", "a b.safetensors"])
def test_plain_relative_names_stay_inside(tmp_path, name):
    assert paths.relative_name_error(name) is None
    assert paths.confine(tmp_path, name) == tmp_path / name


def test_confine_checks_the_joined_path(tmp_path):
    """The joined, normalised path is what is checked (a name that passes the syntax check still cannot escape)."""
    assert paths.confine(tmp_path / "root", "a/./b") == tmp_path / "root" / "a" / "b"
    assert paths.confine(tmp_path / "root", "a//b") == tmp_path / "root" / "a" / "b"


@pytest.mark.parametrize("name", WINDOWS_NAMES)
def test_windows_names_are_refused_as_model_names(model_root, name):
    with pytest.raises(ValueError, match="only names listed under models/videopainter are accepted"):
        paths.resolve("videopainter", name)
    with pytest.raises(ValueError, match="not found in models/loras"):
        paths.resolve("loras", "loras/" + name)


@pytest.mark.parametrize("name", WINDOWS_NAMES)
def test_windows_names_are_refused_by_the_id_state_nodes(tmp_path, monkeypatch, name):
    from videopainter.nodes import sampler

    monkeypatch.setattr(folder_paths, "input_directory", str(tmp_path / "input"))
    message = f"state_file: {name!r} is outside the input folder"
    assert id_state_nodes.VideoPainterLoadIDState.validate_inputs(state_file=name) == message
    with pytest.raises(ValueError) as e:
        id_state_nodes.VideoPainterLoadIDState.execute(state_file=name)
    assert str(e.value) == message
    assert id_state_nodes.VideoPainterSaveIDState.validate_inputs(filename_prefix=name).startswith(f"filename_prefix: {name!r}: ")
    assert sampler.VideoPainterSampler.validate_inputs(autosave_name=name).startswith(f"autosave_name: {name!r}: use a plain")
