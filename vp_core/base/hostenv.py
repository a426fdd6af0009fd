"""Make ComfyUI importable for standalone tools (conformance runner, tests, benchmarks).

Inside a running ComfyUI this is never needed: the host is already imported. Standalone, the pinned host unpacked
by ``scripts/quickstart.sh`` (``.comfyui/ComfyUI``) or ``$VP_COMFYUI_DIR`` is put on ``sys.path``, and ComfyUI is
told to run on the CPU when no accelerator is present (its device probe fails otherwise).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def comfy_dir() -> Path:
    """``$VP_COMFYUI_DIR``, else the pinned ``.comfyui/ComfyUI``, else the ComfyUI this pack is installed in
    (``ComfyUI/custom_nodes/<pack>``)."""
    candidates = [os.environ.get("VP_COMFYUI_DIR"), REPO / ".comfyui" / "ComfyUI", REPO.parent.parent]
    for candidate in candidates:
        if candidate and (Path(candidate) / "comfy" / "model_management.py").is_file():
            return Path(candidate)
    raise RuntimeError(
        f"ComfyUI not found (tried {[str(c) for c in candidates if c]}); "
        "run `bash scripts/quickstart.sh --install-only` or set VP_COMFYUI_DIR"
    )


def ensure_comfy(cpu: bool | None = None) -> None:
    """Import path and device flags for ComfyUI, before ``comfy.model_management`` is first imported."""
    if "comfy.model_management" in sys.modules:
        return
    try:
        import comfy.cli_args  # noqa: F401  (probe only)
    except ImportError:
        sys.path.insert(0, str(comfy_dir()))
    import torch
    from comfy.cli_args import args

    if cpu or (cpu is None and not torch.cuda.is_available()):
        args.cpu = True
