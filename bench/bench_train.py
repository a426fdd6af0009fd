"""Training step time and peak memory (``vp_core.training``: branch + backbone forward, the reference's loss,
backward, clip, AdamW), with and without gradient checkpointing, for both tasks.

CPU (default), each configuration in its own subprocess (peaks cannot mix), peak = ``VmHWM``:
* ``tiny``: the tiny test models (4 + 2 layers, 2 x 16 heads), 17 frames at 96 x 80 px (5 x 12 x 10 latents);
* ``block``: ONE backbone block and ONE branch block at the real width (48 x 64 heads, 226 text tokens), on a
  2 x 30 x 44 latent grid (660 video tokens): the per-block cost at real width that the full model multiplies by
  its 42 + 2 blocks (the learned positional table is off, as in bench_real_size.py: no effect on memory).
``--gpu``: the full CogVideoX-5B-I2V (42 layers, bf16, frozen) + branch (2 layers, fp32 master, bf16 autocast) at
49 x 480 x 720 (13 x 60 x 90 latents), batch 1, peak = ``torch.cuda.max_memory_allocated`` (NOT RUN yet: no GPU was
lent to this work). The VAE encode is not part of the step timed here (frozen, no gradient).

``python bench/bench_train.py [--gpu] [--repeats 2] [--configs tiny,block]``
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

TINY = dict(num_attention_heads=2, attention_head_dim=16, time_embed_dim=32, text_embed_dim=32, num_layers=4,
            sample_width=10, sample_height=12, sample_frames=17, max_text_seq_length=16)
GRIDS = {"tiny": (5, 12, 10), "block": (2, 30, 44), "full": (13, 60, 90)}


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def one(config: str, task: str, checkpointing: bool, repeats: int, gpu: bool) -> dict:
    """Build the models, run 1 warm-up + ``repeats`` training steps, return time and memory."""
    common.setup("sdpa" if gpu else "host", cpu=not gpu)
    import torch

    from videopainter.vp_core.model.branch import VideoPainterBranch
    from videopainter.vp_core.model.config import CogVideoXConfig
    from videopainter.vp_core.model.transformer import CogVideoXTransformer
    from videopainter.vp_core.training import optim
    from videopainter.vp_core.training.lora import TrainableLora
    from videopainter.vp_core.training.step import InpaintModel, StepLatents, forward_loss, training_scheduler
    from videopainter.vp_core.checkpoints.loaders import DEFAULT_SCHEDULER

    dev = torch.device("cuda" if gpu else "cpu")
    if config == "tiny":
        cfg = CogVideoXConfig(**TINY)
        bcfg = CogVideoXConfig(**dict(TINY, num_layers=2))
    else:
        layers = 42 if config == "full" else 1
        cfg = CogVideoXConfig(num_layers=layers, use_learned_positional_embeddings=config == "full")
        bcfg = CogVideoXConfig(num_layers=2 if config == "full" else 1, use_learned_positional_embeddings=config == "full")
    frozen_dtype = torch.bfloat16 if gpu else torch.float32
    transformer = common.build_random(CogVideoXTransformer, cfg, 0, frozen_dtype, "backbone", "cuda" if gpu else "cpu").to(dev)
    branch = common.build_random(VideoPainterBranch, bcfg, 1, torch.float32, "branch", "cuda" if gpu else "cpu").to(dev)
    lora = None
    if task == "branch":
        for p in branch.parameters():
            p.data = p.data.clone()
        branch.train().requires_grad_(True)
        params = list(branch.parameters())
    else:
        rank = 8 if config == "tiny" else 256
        lora = TrainableLora(transformer, rank, rank / 2).to(dev)
        params = list(lora.trainable().values())
    model = InpaintModel(transformer, branch, True, id_resample=task == "id-lora", lora=lora)
    model.set_gradient_checkpointing(checkpointing)
    opt = optim.make_optimizer(params, optim.OptimConfig(learning_rate=1e-5))
    sched = training_scheduler(DEFAULT_SCHEDULER)
    f, h, w = GRIDS[config]
    g = torch.Generator().manual_seed(0)
    rand = lambda *s: torch.randn(*s, generator=g).to(dev)  # noqa: E731
    mask = torch.zeros(1, f, 1, h, w)
    mask[..., h // 4: h // 2, w // 4: w // 2] = 1
    lat = StepLatents(rand(1, f, 16, h, w), rand(1, f, 16, h, w), torch.cat([rand(1, f, 16, h, w), mask.to(dev)], 2),
                      mask.to(dev), rand(1, cfg.max_text_seq_length, cfg.text_embed_dim))
    noise, t = rand(1, f, 16, h, w), torch.tensor([500], device=dev)
    base = torch.cuda.memory_allocated() if gpu else _rss()

    def step() -> float:
        with torch.autocast(dev.type, torch.bfloat16, enabled=gpu):
            res = forward_loss(model, sched, lat, noise, t)
        res.loss.backward()
        optim.clip(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(res.loss)

    step()
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        if gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if gpu else _peak_rss()
    return {"config": config, "task": task, "gradient_checkpointing": checkpointing, "latent_grid": [f, h, w],
            "trainable_params": sum(p.numel() for p in params), "step_s": common.median(times), "times_s": times,
            "peak_gb": round(peak / 2**30, 3), "before_step_gb": round(base / 2**30, 3),
            "step_working_gb": round((peak - base) / 2**30, 3), "threads": torch.get_num_threads()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--configs", default=None, help="comma list of tiny,block (CPU) or full (GPU)")
    ap.add_argument("--tasks", default="branch,id-lora")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        c, task, ckpt = args.child.split(":")
        print(json.dumps(one(c, task, ckpt == "1", args.repeats, args.gpu)))
        return 0
    configs = (args.configs or ("full" if args.gpu else "tiny,block")).split(",")
    rows, results = [], []
    for c in configs:
        for task in args.tasks.split(","):
            for ckpt in (True, False):
                cmd = [sys.executable, __file__, "--child", f"{c}:{task}:{int(ckpt)}", "--repeats", str(args.repeats)]
                proc = subprocess.run(cmd + (["--gpu"] if args.gpu else []), capture_output=True, text=True)
                line = next((x for x in proc.stdout.splitlines()[::-1] if x.startswith("{")), None)
                if proc.returncode != 0 or line is None:
                    results.append({"config": c, "task": task, "gradient_checkpointing": ckpt,
                                    "error": proc.stderr[-800:]})
                    rows.append([c, task, ckpt, "ERROR", "", "", ""])
                    continue
                r = json.loads(line)
                results.append(r)
                rows.append([c, task, ckpt, r["trainable_params"], r["step_s"], r["peak_gb"], r["step_working_gb"]])
    print(common.table(["config", "task", "grad ckpt", "trainable", "s/step", "peak GB", "step working GB"], rows))
    path = common.write_json("train_gpu" if args.gpu else f"train_{'_'.join(configs)}", {"results": results})
    print(f"wrote {path}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
