"""Write tiny random VideoPainter checkpoints (official folder layout) for the demo run: DEMO ONLY, they produce noise.

usage: python scripts/make_demo_models.py MODELS_DIR   (creates MODELS_DIR/videopainter/... and
       MODELS_DIR/loras/videopainter_demo_style.safetensors, the style-LoRA workflow's demo LoRA)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import vp_pack  # noqa: F401  (registers this repository as the package 'videopainter')
from videopainter.vp_core.base.hostenv import ensure_comfy


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ensure_comfy(cpu=True)
    from videopainter.vp_core.checkpoints.tiny_checkpoints import STYLE_LORA_NAME, write_tiny_checkpoints, write_tiny_style_lora

    if not (args.models_dir / "loras" / STYLE_LORA_NAME).is_file():
        write_tiny_style_lora(args.models_dir)  # the style-LoRA example workflow's demo LoRA
    target = args.models_dir / "videopainter"
    if (target / "CogVideoX-5b-I2V" / "transformer").is_dir():
        print(f"demo checkpoints already in {target}")
        return 0
    write_tiny_checkpoints(target, args.seed)
    print(f"wrote tiny random demo checkpoints to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
