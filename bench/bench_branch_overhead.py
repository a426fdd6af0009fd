"""Benchmark 1: time per denoising step of backbone + branch (+ ID resample) relative to the backbone alone.

One step is what ``vp_core.pipeline.sampling.Sampler.denoise_window`` does per timestep: the branch forward (2 blocks) and
the backbone forward with the branch features added (mask-selective), with or without ID-resample attention, at
batch 2 (classifier-free guidance). ID resampling runs in its default (reduced) form and, side by side, in the
literal form of the reference (``id_resample.FORM = "literal"``); the hole covers 25 % of the video tokens. All variants run in the same process on the same inputs, interleaved, median of
``--repeats``. A second copy of the backbone-only call ("control") shows the noise floor of the ratios.

On CPU a mid-size random config is used (8 heads x 64, 8 backbone layers, 2 branch layers); the branch is then
2/8 of the backbone instead of 2/42, so the ratio at the real depth is PROJECTED two ways from measured parts:
* time projection: measured per-block, injection and ID costs scaled to 42 backbone blocks at the bench's token grid;
* FLOP projection: matmul FLOPs of the real CogVideoX-5B-I2V config at 49 x 480 x 720 (``flops.py``).

``python bench/bench_branch_overhead.py [--quick] [--gpu]``; ``--gpu`` runs the full-size config in bf16 on CUDA.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import flops  # noqa: E402

log = logging.getLogger("bench.branch_overhead")
TARGET = 1.08
ID_TARGET = 1.15  # issue #18: ID rows (reduced form), projected to 42 + 2 layers at 25 % holes
REAL_LAYERS = 42


@dataclass
class Size:
    layers: int
    branch_layers: int
    heads: int
    head_dim: int
    latent_frames: int
    latent_height: int
    latent_width: int
    text: int
    text_dim: int
    repeats: int

    def describe(self) -> str:
        return (
            f"{self.layers}+{self.branch_layers} layers, {self.heads} heads x {self.head_dim}, text {self.text} tokens "
            f"(dim {self.text_dim}), latent {self.latent_frames}x{self.latent_height}x{self.latent_width} "
            f"({4 * (self.latent_frames - 1) + 1} frames x {8 * self.latent_height}x{8 * self.latent_width} px), batch 2 (CFG)"
        )


QUICK = Size(8, 2, 8, 64, 5, 16, 24, 64, 512, 7)
FULL = Size(8, 2, 8, 64, 13, 16, 24, 226, 512, 9)
GPU = Size(42, 2, 48, 64, 13, 60, 90, 226, 4096, 5)  # CogVideoX-5B-I2V at 49 x 480 x 720


def configs(size: Size):
    from videopainter.vp_core.model.config import CogVideoXConfig

    cfg = CogVideoXConfig(
        num_attention_heads=size.heads, attention_head_dim=size.head_dim, num_layers=size.layers,
        text_embed_dim=size.text_dim, max_text_seq_length=size.text, sample_height=size.latent_height,
        sample_width=size.latent_width, sample_frames=4 * (size.latent_frames - 1) + 1,
    )
    # the branch config as VideoPainter ships it: in_channels 16 (patch embedding takes 16 + 16 + 1 channels)
    return cfg, CogVideoXConfig(**dict(cfg.to_dict(), num_layers=size.branch_layers, in_channels=16))


def inputs(cfg, size: Size, device, dtype, seed: int = 0) -> dict:
    """Sampler-shaped inputs: a hole over 1/4 of the tokens of every latent frame."""
    import torch
    from videopainter.vp_core.model.rope import video_rope
    from videopainter.vp_core.model.transformer import token_mask

    g = torch.Generator("cpu").manual_seed(seed)
    shape = (2, size.latent_frames, cfg.latent_channels, size.latent_height, size.latent_width)
    rnd = lambda *s: torch.randn(*s, generator=g).to(device, dtype)  # noqa: E731
    mask = torch.zeros(2, size.latent_frames, 1, size.latent_height, size.latent_width)
    h, w = size.latent_height, size.latent_width
    mask[:, :, :, h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2] = 1  # a quarter of every frame's tokens
    mask = mask.to(device, dtype)
    return dict(
        z=rnd(*shape), image=rnd(*shape), context=rnd(2, size.text, size.text_dim),
        timestep=torch.tensor([501, 501], device=device), cond=torch.cat([rnd(*shape), mask], 2),
        hole=token_mask(mask, cfg.patch_size),
        rope=tuple(r.to(device) for r in video_rope(cfg, size.latent_frames, h, w)),
    )


def literal(fn):
    """``fn`` with ID resampling in the reference's literal form (the oracle the reduced form is tested against)."""
    from videopainter.vp_core.model import id_resample

    def call():
        before, id_resample.FORM = id_resample.FORM, "literal"
        try:
            return fn()
        finally:
            id_resample.FORM = before
    return call


ID_ROWS = ("ID (window 0)", "ID (window >0)", "ID literal (window 0)", "ID literal (window >0)")


def step_functions(tr, br, x: dict) -> tuple[dict, dict]:
    """(whole-step variants, component timings for the projection), each name -> zero-argument callable."""
    import torch
    from videopainter.vp_core.model.id_resample import IDResample
    from videopainter.vp_core.model.transformer import Capture, Injection

    bb_in = torch.cat([x["z"], x["image"]], 2)
    args = (bb_in, x["context"], x["timestep"], x["rope"])

    def branch():
        return br(x["z"], x["cond"], x["context"], x["timestep"], x["rope"], 1.0)

    samples = branch()
    # the ID state a previous window leaves: block outputs at the hole tokens (as Sampler._keep_index keeps them)
    keep = torch.nonzero(x["hole"].any(0)).flatten()
    cap = Capture(keep)
    tr(*args, Injection(samples, x["hole"], True), IDResample(x["hole"]), cap)
    own = lambda: IDResample(x["hole"])  # noqa: E731
    prev = lambda: IDResample(x["hole"], 0.5, cap.hidden, keep)  # noqa: E731

    def with_id(make):
        return lambda: tr(*args, Injection(branch(), x["hole"], True), make())

    steps = {
        "backbone": lambda: tr(*args),
        "backbone (control)": lambda: tr(*args),
        "backbone+branch": lambda: tr(*args, Injection(branch(), x["hole"], True)),
        "backbone+branch+ID (window 0)": with_id(own),
        "backbone+branch+ID (window >0)": with_id(prev),
        "backbone+branch+ID literal (window 0)": literal(with_id(own)),
        "backbone+branch+ID literal (window >0)": literal(with_id(prev)),
    }
    # components for the projection, each measured directly on one block's worth of work
    temb = tr.time_embedding(x["timestep"], bb_in.dtype)
    tokens = tr.patch_embed(x["context"], bb_in)
    t_len = x["context"].shape[1]
    text, video = tokens[:, :t_len], tokens[:, t_len:]
    block = tr.transformer_blocks[0]
    hole = x["hole"][..., None]
    p = tr.cfg.patch_size
    grid = (bb_in.shape[1], bb_in.shape[3] // p, bb_in.shape[4] // p)

    def block_with(make):
        return lambda: block(video, text, temb, x["rope"], make().attention(0, block, temb, x["rope"], t_len, grid))

    parts = {
        "one backbone block": lambda: block(video, text, temb, x["rope"]),
        "one block + ID (window 0)": block_with(own),
        "one block + ID (window >0)": block_with(prev),
        "one block + ID literal (window 0)": literal(block_with(own)),
        "one block + ID literal (window >0)": literal(block_with(prev)),
        "injection (one block)": lambda: torch.where(hole, video, video + samples[0]),
        "branch alone": branch,
    }
    return steps, parts


def project(med: dict[str, float], layers: int) -> dict[str, float]:
    """Ratios at 42 backbone blocks from the measured parts, at the bench's token grid (a projection).

    backbone(42) = backbone(measured) + (42 - layers) x block; the branch adds its own forward and one injection
    per backbone block; ID resampling adds (block with ID attention - block) per backbone block."""
    blk = med["one backbone block"]
    bb42 = med["backbone"] + (REAL_LAYERS - layers) * blk
    inj = med["injection (one block)"]
    br = bb42 + REAL_LAYERS * inj + med["branch alone"]
    out = {"backbone+branch": br / bb42, "per_block_s": blk, "outside_blocks_s": med["backbone"] - layers * blk,
           "injection_per_block_s": inj}
    for row in ID_ROWS:
        extra = med[f"one block + {row}"] - blk
        out[f"backbone+branch+{row}"] = (br + REAL_LAYERS * extra) / bb42
        out[f"{row} per block s"] = extra
    return out


def flop_projection() -> dict[str, float]:
    """Matmul FLOP ratios of the real CogVideoX-5B-I2V (42 layers) + branch (2) at 49 x 480 x 720, CFG batch 2,
    25 % holes; the reduced window-0 row as on CPU (log 2 bias, no duplicated keys); on CUDA it equals window >0's
    attention."""
    from videopainter.vp_core.model.config import CogVideoXConfig

    cfg = CogVideoXConfig()
    bcfg = CogVideoXConfig(**dict(cfg.to_dict(), num_layers=2, in_channels=16))
    shape = flops.Shape(2, 13, 60, 90, 226, hole_fraction=0.25)
    base = flops.step_flops(cfg, None, shape)["total"]
    ratio = lambda *a, **k: flops.step_flops(cfg, bcfg, shape, *a, **k)["total"] / base  # noqa: E731
    return {
        "backbone+branch": ratio(),
        "backbone+branch+ID (window 0)": ratio("own", own_bias=True),
        "backbone+branch+ID (window >0)": ratio("prev"),
        "backbone+branch+ID literal (window 0)": ratio("own", form="literal"),
        "backbone+branch+ID literal (window >0)": ratio("prev", form="literal"),
        "ID (window 0) on CUDA (no bias)": ratio("own"),
        "backbone_tflop": base / 1e12,
        "attention_share_of_backbone": flops.step_flops(cfg, None, shape)["backbone_attention"] / base,
    }


def run(size: Size, device, dtype, clock: str) -> dict:
    import torch
    from videopainter.vp_core.model.branch import VideoPainterBranch
    from videopainter.vp_core.model.transformer import CogVideoXTransformer

    cfg, bcfg = configs(size)
    tr = common.build_random(CogVideoXTransformer, cfg, 0, dtype, "backbone", device.type)
    br = common.build_random(VideoPainterBranch, bcfg, 1, dtype, "branch", device.type)
    patchers = common.place({"diffusion_model": tr, "branch": br}, dtype, device)  # noqa: F841 (kept alive)
    x = inputs(cfg, size, device, dtype)
    with torch.inference_mode():
        steps, parts = step_functions(tr, br, x)
        t_steps = common.alternate(steps, size.repeats, warmup=1, device=device)
        t_parts = common.alternate(parts, 2 * size.repeats, warmup=1, device=device)  # cheap: one block each
    times = {**t_steps.on(clock), **t_parts.on(clock)}
    wall = {**t_steps.wall, **t_parts.wall}
    med = {k: common.median(v) for k, v in times.items()}
    med_wall = {k: common.median(v) for k, v in wall.items()}
    return dict(
        size=size.__dict__, describe=size.describe(), attention=common.attention_name(), dtype=str(dtype),
        device=str(device), clock=clock, threads=torch.get_num_threads(), times_s=times, median_s=med,
        spread={k: common.spread(v) for k, v in times.items()}, wall_times_s=wall, wall_median_s=med_wall,
        ratios={k: med[k] / med["backbone"] for k in steps},
        wall_ratios={k: med_wall[k] / med_wall["backbone"] for k in steps},
        projection_time_42=project(med, size.layers), projection_flops_real=flop_projection(), target=TARGET,
        id_target=ID_TARGET, hole_fraction=float(x["hole"].float().mean()),
    )


def report(res: dict) -> str:
    med, ratios = res["median_s"], res["ratios"]
    pt, pf = res["projection_time_42"], res["projection_flops_real"]
    rows = []
    for name in ratios:
        proj_t = f"{pt[name]:.3f}" if name in pt else "-"
        proj_f = f"{pf[name]:.3f}" if name in pf else "-"
        target = ID_TARGET if "+ID (" in name else TARGET
        if name.startswith("backbone (control)") or name == "backbone" or "literal" in name:
            verdict, target_s = "-", ""
        else:
            verdict, target_s = common.verdict(pt[name], target), f"<={target} (proj.)"
        rows.append([name, f"{med[name]:.3f}", f"±{100 * res['spread'][name]:.0f}%", f"{ratios[name]:.3f}",
                     f"{res['wall_ratios'][name]:.3f}", proj_t, proj_f, target_s, verdict])
    head = ["step variant", f"median {res['clock']} s", "IQR/2", "ratio", "wall ratio", "proj. 42 layers (time)",
            "proj. real (FLOPs)", "target", "projected"]
    lines = [f"Benchmark 1: branch overhead per step — {res['describe']}; attention {res['attention']}, {res['dtype']}, "
             f"{res['device']}, clock {res['clock']}, {res['threads']} thread(s); holes {100 * res['hole_fraction']:.0f}% of video tokens",
             common.table(head, rows), "", "components (median s):"]
    for name in ("one backbone block", *(f"one block + {r}" for r in ID_ROWS), "injection (one block)", "branch alone"):
        lines.append(f"  {name:36s} {med[name]:.4f}  ±{100 * res['spread'][name]:.0f}%")
    ids = " / ".join(f"{pt[f'{r} per block s'] * 1e3:.2f}" for r in ID_ROWS)
    lines.append(
        f"  per block {pt['per_block_s']:.4f} s, outside blocks {pt['outside_blocks_s']:.4f} s, injection {pt['injection_per_block_s'] * 1e3:.2f} ms/block, "
        f"ID {ids} ms/block ({' / '.join(ID_ROWS)})"
    )
    lines.append(f"  real config: {pf['backbone_tflop']:.0f} TFLOP per backbone step, attention {100 * pf['attention_share_of_backbone']:.0f}% of it; "
                 f"reduced window 0 on CUDA (duplicated keys kept): FLOPs {pf['ID (window 0) on CUDA (no bias)']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller grid and 7 repeats (part of bench/run.sh --quick)")
    ap.add_argument("--gpu", action="store_true", help="full CogVideoX-5B-I2V config, bf16, on CUDA")
    ap.add_argument("--repeats", type=int, help="timed runs per variant (default 7 quick / 9 full / 5 gpu)")
    ap.add_argument("--attention", choices=common.ATTENTION_CHOICES, default="host")
    ap.add_argument("--clock", choices=common.CLOCKS, help=common.CLOCK_HELP)
    ap.add_argument("--threads", type=int, help="torch intra-op threads with --clock wall (default: torch's)")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results)")
    args = ap.parse_args(argv)
    clock, threads = common.clock_and_threads(args.clock, args.threads, args.gpu)
    common.setup(args.attention, cpu=not args.gpu, threads=threads)
    import torch

    if args.gpu:
        if not torch.cuda.is_available():
            print("bench_branch_overhead --gpu: no CUDA device: skipped")
            return 0
        size, device, dtype = GPU, torch.device("cuda"), torch.bfloat16
    else:
        size, device, dtype = (QUICK if args.quick else FULL), torch.device("cpu"), torch.float32
    if args.repeats:
        size = Size(**dict(size.__dict__, repeats=max(args.repeats, 1)))
    res = run(size, device, dtype, clock)
    res["mode"] = "gpu" if args.gpu else ("quick" if args.quick else "full")
    print(report(res))
    path = common.write_json("branch_overhead" + ("_gpu" if args.gpu else ""), res, args.out)
    print(f"-> {path.relative_to(common.REPO) if path.is_relative_to(common.REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
