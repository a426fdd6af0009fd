"""Make ComfyUI importable for standalone tools (conformance runner, tests, benchmarks).

Inside a running ComfyUI this is never needed: the host is already imported. Standalone, the pinned host unpacked
by ``scripts/quickstart.sh`` (``.comfyui/ComfyUI``) or ``$VP_COMFYUI_DIR`` is put on ``sys.path``, and ComfyUI is
told to run on the CPU when no accelerator is present (its device probe fails otherwise).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def comfy_dir() -> Path:
    return Path(os.environ.get("VP_COMFYUI_DIR", REPO / ".comfyui" / "ComfyUI"))


def ensure_comfy(cpu: bool | None = None) -> None:
    """Import path and device flags for ComfyUI, before ``comfy.model_management`` is first imported."""
    if "comfy.model_management" in sys.modules:
        return
    try:
        import comfy.cli_args  # noqa: F401  (probe only)
    except ImportError:
        path = comfy_dir()
        if not (path / "comfy").is_dir():
            raise RuntimeError(
                f"ComfyUI not found at {path}; run `bash scripts/quickstart.sh --install-only` or set VP_COMFYUI_DIR"
            ) from None
        sys.path.insert(0, str(path))
    import torch
    from comfy.cli_args import args

    if cpu or (cpu is None and not torch.cuda.is_available()):
        args.cpu = True
