"""Benchmark 2: our CogVideoX backbone step vs diffusers' own ``CogVideoXTransformer3DModel``, same weights, same inputs.

Our module is built by ``vp_core.checkpoints.loaders.build_module`` from a random state dict; that state dict is loaded unchanged
into diffusers' model (the key names are identical). Both get the same latents, text, timestep and RoPE table
(``vp_core.model.rope.video_rope``), run interleaved in one process, median of ``--repeats``; the outputs are compared
(max abs diff). ComfyUI fixes its attention function at import, so each attention backend runs in its own
subprocess: ``host`` (what ComfyUI selects by default: sub-quadratic attention on CPU, SDPA on NVIDIA) and ``sdpa``
(``--use-pytorch-cross-attention``, the kernel diffusers' ``CogVideoXAttnProcessor2_0`` calls).

``python bench/bench_vs_diffusers.py [--quick] [--gpu] [--attention host,sdpa]``
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_branch_overhead as b1  # noqa: E402  (shares the sizes and input builder)
import common  # noqa: E402

log = logging.getLogger("bench.vs_diffusers")
TARGET = 1.0


def worker(size: b1.Size, device, dtype, clock: str) -> dict:
    """One attention backend: build both models, check they agree, time them interleaved."""
    import torch
    from diffusers import CogVideoXTransformer3DModel
    from videopainter.vp_core.model.transformer import CogVideoXTransformer

    cfg, _ = b1.configs(size)
    ours = common.build_random(CogVideoXTransformer, cfg, 0, dtype, "backbone", device.type)
    patchers = common.place({"diffusion_model": ours}, dtype, device)  # noqa: F841 (kept alive)
    # diffusers' model takes the very same tensors (assign=True shares them: no second copy of the weights)
    with torch.device("meta"):
        theirs = CogVideoXTransformer3DModel(**cfg.to_dict())
    theirs.load_state_dict(ours.state_dict(), strict=True, assign=True)
    left = [n for n, t in [*theirs.named_parameters(), *theirs.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"diffusers' model kept tensors without weights: {left[:5]}")
    # buffers the memory manager left on the offload device move; tensors already on `device` stay shared
    theirs = theirs.to(device).eval().requires_grad_(False)
    x = b1.inputs(cfg, size, device, dtype)
    bb_in = torch.cat([x["z"], x["image"]], 2)
    args = (bb_in, x["context"], x["timestep"])
    with torch.inference_mode():
        a = ours(*args, x["rope"])
        b = theirs(*args, image_rotary_emb=x["rope"], return_dict=False)[0]
        diff = float((a.float() - b.float()).abs().max())
        scale = float(b.float().abs().max())
        fns = {
            "ours": lambda: ours(*args, x["rope"]),
            "diffusers": lambda: theirs(*args, image_rotary_emb=x["rope"], return_dict=False),
            "diffusers (control)": lambda: theirs(*args, image_rotary_emb=x["rope"], return_dict=False),
        }
        timings = common.alternate(fns, size.repeats, warmup=1, device=device)
    times = timings.on(clock)
    med = {k: common.median(v) for k, v in times.items()}
    wall = {k: common.median(v) for k, v in timings.wall.items()}
    return dict(
        attention=common.attention_name(), clock=clock, threads=torch.get_num_threads(), times_s=times, median_s=med,
        spread={k: common.spread(v) for k, v in times.items()}, wall_times_s=timings.wall, wall_median_s=wall,
        ratio=med["ours"] / med["diffusers"], control_ratio=med["diffusers (control)"] / med["diffusers"],
        wall_ratio=wall["ours"] / wall["diffusers"],
        max_abs_diff=diff, max_abs_out=scale, diffusers_attention=type(theirs.transformer_blocks[0].attn1.processor).__name__,
    )


def spawn(backend: str, argv: list[str]) -> dict:
    """Run one backend in a fresh interpreter (ComfyUI binds its attention function at import)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "worker.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--attention", backend, "--worker-out", str(out), *argv]
        proc = subprocess.run(cmd, text=True, capture_output=True)
        if proc.returncode != 0 or not out.is_file():
            sys.stderr.write(proc.stdout + proc.stderr)
            raise RuntimeError(f"bench_vs_diffusers worker for attention={backend} failed (exit {proc.returncode})")
        return json.loads(out.read_text())


def report(res: dict) -> str:
    rows = []
    for backend, r in res["backends"].items():
        rows.append([
            f"{backend} ({r['attention']})", f"{r['median_s']['ours']:.3f}", f"{r['median_s']['diffusers']:.3f}",
            f"±{100 * max(r['spread']['ours'], r['spread']['diffusers']):.0f}%", f"{r['ratio']:.3f}",
            f"{r['control_ratio']:.3f}", f"{r['wall_ratio']:.3f}", f"{r['max_abs_diff']:.2e} (of {r['max_abs_out']:.2g})", f"<={TARGET}",
            common.verdict(r["ratio"], TARGET),
        ])
    clock = next(iter(res["backends"].values()))["clock"]
    threads = next(iter(res["backends"].values()))["threads"]
    head = ["attention (ours)", f"ours {clock} s", f"diffusers {clock} s", "IQR/2", "ratio", "control", "wall ratio",
            "max abs diff", "target", "measured"]
    return "\n".join([
        f"Benchmark 2: our backbone vs diffusers CogVideoXTransformer3DModel — {res['describe']}; {res['dtype']}, "
        f"{res['device']}, clock {clock}, {threads} thread(s)",
        common.table(head, rows),
        "(control = diffusers timed twice, control / first: the noise floor of the ratio; 1.000 is no noise)",
    ])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller grid and 9 repeats (part of bench/run.sh --quick)")
    ap.add_argument("--gpu", action="store_true", help="full CogVideoX-5B-I2V config, bf16, on CUDA")
    ap.add_argument("--repeats", type=int, help="timed runs per model (default 9 quick / 15 full / 5 gpu)")
    ap.add_argument("--attention", default="host,sdpa", help="comma-separated backends: host, sdpa (default both)")
    ap.add_argument("--clock", choices=common.CLOCKS, help=common.CLOCK_HELP)
    ap.add_argument("--threads", type=int, help="torch intra-op threads with --clock wall (default: torch's)")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    backends = [b.strip() for b in args.attention.split(",") if b.strip()]
    bad = [b for b in backends if b not in common.ATTENTION_CHOICES]
    if bad or not backends:
        ap.error(f"--attention takes {', '.join(common.ATTENTION_CHOICES)}; got {args.attention!r}")
    size = b1.GPU if args.gpu else (b1.QUICK if args.quick else b1.FULL)
    # two models and one control per round: more rounds than benchmark 1 for the same time, and the target (1.0)
    # leaves no margin, so the median needs them
    repeats = args.repeats or (size.repeats if args.gpu else 9 if args.quick else 15)
    size = b1.Size(**dict(size.__dict__, repeats=max(repeats, 1)))

    clock, threads = common.clock_and_threads(args.clock, args.threads, args.gpu)
    if args.worker:
        common.setup(backends[0], cpu=not args.gpu, threads=threads)
        import torch

        device, dtype = (torch.device("cuda"), torch.bfloat16) if args.gpu else (torch.device("cpu"), torch.float32)
        args.worker_out.write_text(json.dumps(worker(size, device, dtype, clock)))
        return 0

    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            print("bench_vs_diffusers --gpu: no CUDA device: skipped")
            return 0
    passthrough = (["--quick"] if args.quick else []) + (["--gpu"] if args.gpu else []) + (
        ["--repeats", str(args.repeats)] if args.repeats else []) + (["--clock", args.clock] if args.clock else []) + (
        ["--threads", str(args.threads)] if args.threads else [])
    res = dict(
        describe=size.describe().replace(f"{size.layers}+{size.branch_layers} layers", f"{size.layers} layers"),
        size=size.__dict__, dtype="bfloat16" if args.gpu else "float32", device="cuda" if args.gpu else "cpu",
        mode="gpu" if args.gpu else ("quick" if args.quick else "full"), target=TARGET,
        backends={b: spawn(b, passthrough) for b in backends},
    )
    res["headline"] = backends[0]
    print(report(res))
    path = common.write_json("vs_diffusers" + ("_gpu" if args.gpu else ""), res, args.out)
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
