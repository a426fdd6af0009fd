"""Model folders: registers ``models/videopainter`` and lists the folder-type models in it.

ComfyUI lists files only, so diffusers folders (the backbone, the branch) get their own listing here. The
``videopainter`` folder type is merged with any paths from ``extra_model_paths.yaml`` (which load first).
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import folder_paths

from ..vp_core.checkpoints import loaders

FOLDER = "videopainter"
_DRIVE = re.compile(r"^[A-Za-z]:")  # "C:x" is drive-relative on Windows: it escapes any folder it is joined to
_NOT_IN_FILE_NAMES = set('/\\:*?"<>|')  # path separators, drive colons and what Windows forbids in names
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json")
# Where users may already have CogVideoX-5b-I2V, listed by the backbone loader as "<folder type>/<name>" and read in
# place (never copied): kijai's CogVideoX wrapper downloads diffusers folders into models/CogVideo, diffusers
# downloads live in models/diffusers, and single-file transformers (core's layout or diffusers') in
# models/diffusion_models.
SHARED_BACKBONE_FOLDERS = ("CogVideo", "diffusers")
SINGLE_FILE_FOLDER = "diffusion_models"


def register() -> None:
    default = os.path.join(folder_paths.models_dir, FOLDER)
    folder_paths.add_model_folder_path(FOLDER, default)
    paths, exts = folder_paths.folder_names_and_paths[FOLDER]
    if isinstance(exts, set):
        exts.update({".safetensors", ".json"})
    for name in SHARED_BACKBONE_FOLDERS:  # "diffusers" is core's; "CogVideo" is kijai's, not a core folder type
        if name not in folder_paths.folder_names_and_paths:
            folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))


def _roots(kind: str = FOLDER) -> list[Path]:
    try:
        return [Path(p) for p in folder_paths.get_folder_paths(kind) if os.path.isdir(p)]
    except KeyError:
        return []


def _walk_dirs(kind: str = FOLDER, max_depth: int = 4):
    for root in _roots(kind):
        for dirpath, dirnames, filenames in os.walk(root):
            rel = Path(dirpath).relative_to(root)
            if len(rel.parts) > max_depth:
                dirnames[:] = []
                continue
            yield root, rel, set(filenames), set(dirnames)


def backbone_folders() -> list[str]:
    """Diffusers CogVideoX folders (with ``transformer/``) under ``models/videopainter``, then the CogVideoX I2V
    backbones already under the shared folders (:data:`SHARED_BACKBONE_FOLDERS`, ``diffusion_models``), prefixed
    with their folder type."""
    out = sorted({str(rel) for _, rel, files, dirs in _walk_dirs() if "transformer" in dirs and "model_index.json" in files})
    for kind in SHARED_BACKBONE_FOLDERS:
        found = {str(rel) for root, rel, _, dirs in _walk_dirs(kind, max_depth=2)
                 if "transformer" in dirs and loaders.is_i2v_transformer_folder(root / rel / "transformer")}
        out += [f"{kind}/{name}" for name in sorted(found)]
    try:
        files = folder_paths.get_filename_list(SINGLE_FILE_FOLDER)
    except KeyError:
        files = []
    out += [f"{SINGLE_FILE_FOLDER}/{f}" for f in files
            if f.endswith(".safetensors") and loaders.is_i2v_transformer_file(folder_paths.get_full_path(SINGLE_FILE_FOLDER, f))]
    return out


def resolve_backbone(name: str) -> Path:
    """Absolute path of a name :func:`backbone_folders` lists (a folder, or a single transformer file)."""
    kind, _, rest = name.partition("/")
    if kind in (*SHARED_BACKBONE_FOLDERS, SINGLE_FILE_FOLDER) and rest:
        rel = Path(rest)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"{name!r}: only names listed by the backbone loader are accepted (no absolute paths or '..')")
        for root in _roots(kind):
            if (root / rel).exists():
                return root / rel
    return resolve(FOLDER, name)


def branch_folders() -> list[str]:
    """Folders holding ``config.json`` + diffusers weights that are not part of a full pipeline folder."""
    out = set()
    for _, rel, files, _ in _walk_dirs():
        if "config.json" in files and files & set(WEIGHTS) and rel.name not in ("transformer", "vae", "text_encoder"):
            out.add(str(rel))
    return sorted(out)


def lora_files() -> list[str]:
    """``*.safetensors`` LoRA files under ``models/videopainter`` (e.g. the official ID LoRA) and ``models/loras``."""
    out = {f"{FOLDER}/{rel / f}" for _, rel, files, _ in _walk_dirs() for f in files if "lora" in f.lower() and f.endswith(".safetensors")}
    out.update(f"loras/{f}" for f in folder_paths.get_filename_list("loras") if f.endswith(".safetensors"))
    return sorted(out)


def relative_name_error(name: str) -> str | None:
    """Why ``name`` is not a plain relative name inside a folder (None when it is). Backslashes and drive prefixes
    are refused on every OS, so a workflow that is safe here is safe on Windows too (``C:x``, ``C:\\x``,
    ``\\\\server\\share``, ``..\\x``)."""
    if not name or not name.strip():
        return "the name is empty"
    if "\\" in name or _DRIVE.match(name):
        return "backslashes and drive letters are not allowed (use '/' between folders)"
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts:
        return "absolute paths and '..' are not allowed"
    return None


def file_name_error(name: str) -> str | None:
    """Why ``name`` is not a plain file name without folders (None when it is)."""
    if not name.strip():
        return "the name is empty"
    if _NOT_IN_FILE_NAMES.intersection(name) or name.startswith(".") or any(ord(c) < 32 for c in name):
        return "use a plain file name: no folders, no leading '.', none of " + " ".join(sorted(_NOT_IN_FILE_NAMES))
    return None


def confine(root: str | os.PathLike, name: str) -> Path | None:
    """``root / name`` if the joined, normalised path is still inside ``root``; None otherwise (or if ``name`` is not
    a plain relative name). Normalised lexically (``abspath``), not with ``resolve()``: a folder the admin symlinked
    into ``models/`` (another disk) is deliberate; what must not escape is the name a workflow gives."""
    if relative_name_error(name) is not None:
        return None
    base = Path(os.path.abspath(root))
    path = Path(os.path.abspath(base / name))
    return path if path.is_relative_to(base) else None


def resolve(kind: str, name: str) -> Path:
    """Absolute path of a listed model; rejects anything not under the model folders (no path traversal)."""
    given = name
    if kind == "loras":
        base, _, rest = name.partition("/")
        if base == "loras":
            path = folder_paths.get_full_path("loras", rest) if relative_name_error(rest) is None else None
            if path is None:
                raise ValueError(f"lora_name: {name!r} not found in models/loras")
            return Path(path)
        name = rest
    if relative_name_error(name) is not None:
        raise ValueError(f"{given!r}: only names listed under models/{FOLDER} are accepted (no absolute paths, '..', "
                         "drive letters or backslashes)")
    for root in _roots():
        candidate = confine(root, name)
        if candidate is not None and candidate.exists():
            return candidate
    raise ValueError(f"{name!r} not found under models/{FOLDER} (searched: {', '.join(map(str, _roots())) or 'none'})")


def metrics_dir() -> Path:
    """``models/videopainter/metrics`` (the evaluation networks, see ``vp_core.evaluation.metrics.models``): the first
    ``videopainter`` root that has one, else where it should be (loading then says what is missing)."""
    from ..vp_core.evaluation.metrics import SUBDIR

    for root in _roots():
        if (root / SUBDIR).is_dir():
            return root / SUBDIR
    return Path(folder_paths.models_dir) / FOLDER / SUBDIR
