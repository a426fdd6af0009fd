"""Run in a fresh process by test_text_memory.py: load a T5 ``text_encoder/`` folder with
``vp_core.checkpoints.text.load_text_encoder`` (bf16) and print the process's resident memory before loading and its peak, as JSON.

    python tests/unit/t5_load_probe.py FOLDER [--whole-state-dict]

``--whole-state-dict`` loads the way the loader did before (the whole memory-mapped state dict in one
``CLIP.load_sd``), to show what the memory test catches.
"""
from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1] / "scripts"))  # vp_pack, as pytest's pythonpath gives it to the tests
import conftest  # noqa: E402,F401  (tests/conftest.py: ComfyUI importable, the pack registered as 'videopainter')

sys.path.remove(str(HERE.parent))


def status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def main() -> None:
    import torch

    import comfy.text_encoders.pixart_t5
    from videopainter.vp_core.checkpoints import loaders, text

    folder = Path(sys.argv[1])
    if "--whole-state-dict" in sys.argv[2:]:
        def whole(clip, te_dir, rename, skip):
            sd = {rename.get(k, k): v for k, v in loaders.read_model_folder(te_dir, "model").items() if k not in skip}
            missing, unexpected = clip.load_sd(sd)
            return sorted(missing), list(unexpected)

        text._load_weights = whole
    comfy.text_encoders.pixart_t5.PixArtTokenizer()  # the tokenizer's own memory is not the weights'
    gc.collect()
    before = status_bytes("VmRSS")
    clip = text.load_text_encoder(folder, torch.bfloat16)
    print(json.dumps({"before": before, "peak": status_bytes("VmHWM"), "params": sum(
        p.numel() for p in clip.cond_stage_model.parameters())}))


if __name__ == "__main__":
    main()
