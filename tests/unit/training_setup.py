"""Tiny models and a tiny clip folder for the training tests (CPU, ~1 s per step).

The tiny checkpoints (``tiny_checkpoints``) fix 96x80 px through their learned positional embedding; these tests
switch it off (the sin-cos table, as CogVideoX 2B) so the clip can be 48x32 px with 5 frames, which keeps a step
(three VAE encodes + branch + backbone + backward) around a second on a shared CPU."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import make_sample_clip  # noqa: E402

from videopainter.vp_core.checkpoints import tiny_checkpoints as tiny  # noqa: E402

WIDTH, HEIGHT, FRAMES = 48, 32, 5


def make_setup(root: Path, clips: int = 1, frames: int = 9) -> dict[str, Path]:
    models = tiny.write_tiny_checkpoints(root / "models")
    backbone = models / "CogVideoX-5b-I2V"
    branch = models / "VideoPainter" / "checkpoints" / "branch"
    for cfg_path in (backbone / "transformer" / "config.json", branch / "config.json"):
        cfg = json.loads(cfg_path.read_text())
        cfg["use_learned_positional_embeddings"] = False
        cfg_path.write_text(json.dumps(cfg))
    data = root / "data"
    for i in range(clips):
        video, mask = make_sample_clip.sample_frames(frames + i, WIDTH, HEIGHT)
        make_sample_clip.write_mp4(data / f"clip{i}.mkv", video, 8, codec="ffv1")
        make_sample_clip.write_mp4(data / f"clip{i}_mask.mkv", mask, 8, codec="ffv1")
        (data / f"clip{i}.txt").write_text(f"a square gliding over a gradient, take {i}")
    return {"root": root, "backbone": backbone, "branch": branch, "data": data,
            "lora": models / "VideoPainterID" / "checkpoints" / "pytorch_lora_weights.safetensors"}


def cli_args(s: dict[str, Path], task: str, out: Path, steps: int, **extra) -> list[str]:
    """``vp_train.py`` arguments for a deterministic tiny run (no mask augmentation, constant lr 1e-3)."""
    args = [task, "--pretrained_model_name_or_path", str(s["backbone"]), "--cogvideox_branch_name_or_path",
            str(s["branch"]), "--data_folder", str(s["data"]), "--output_dir", str(out), "--height", str(HEIGHT),
            "--width", str(WIDTH), "--max_num_frames", str(FRAMES), "--max_train_steps", str(steps),
            "--learning_rate", "1e-3", "--lr_scheduler", "constant", "--lr_warmup_steps", "0",
            "--mask_transform_prob", "0", "--no-enable_tiling", "--no-gradient_checkpointing", "--no_progress",
            "--rank", "8", "--lora_alpha", "4", "--seed", "3"]
    for k, v in extra.items():
        args += [f"--{k}", str(v)]
    return args


def run_cli(args: list[str], env=None, timeout: int = 300):
    """``scripts/vp_train.py ARGS`` as a process; fails the test with its stderr's tail when it fails."""
    import subprocess

    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "vp_train.py"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def max_diff(a: dict, b: dict) -> float:
    """Largest absolute difference over two state dicts with the same keys (in fp32)."""
    assert set(a) == set(b)
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
