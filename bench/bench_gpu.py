"""Benchmarks 4 and 5 (CUDA only): partial-load memory and throughput of the FULL CogVideoX-5B-I2V + branch.

Random bf16 weights in the real shapes (42-layer backbone, 2-layer branch, 48 heads x 64, text 226 x 4096), one
49-frame window at 480 x 720 (latents 13 x 60 x 90), classifier-free guidance (batch 2). One step = branch forward +
backbone forward with the branch features added, exactly the calls ``vp_core.pipeline.sampling.Sampler.denoise_window``
makes; the models are placed by ComfyUI's memory manager with the same ``load_models_gpu`` call ``Sampler.run``
makes, with the same ``memory_required`` (``sampling.activation_bytes``). Every (mode, attention, ID on/off) run is
its own subprocess, so peaks and the host's attention choice never mix; "+ID" adds window 0's (reduced) ID-resample
attention over a hole of 25 % of the tokens, and its FLOPs count in the MFU. ``sdpa`` is skipped when the host's
default already resolved to it (NVIDIA), instead of measuring the same thing twice.

Modes:
* ``full``: the whole model on the GPU. Target: peak <= 24 GB.
* ``lowvram``: ComfyUI told the card has ``--cap-gb`` (12) GB: ``--reserve-vram`` = total - cap, so the memory
  manager loads only what fits and streams the rest per layer (comfy.ops casting), and
  ``torch.cuda.set_per_process_memory_fraction`` makes the cap hard (exceeding it is an OOM, reported as a MISS).
  Target: peak <= 12 GB.

Also, once in full mode: ``full fp8 storage`` (the backbone stored as fp8_e4m3fn through the loader's
``weight_dtype`` path, ``loaders.pick_precision`` + ``build_module``, computing in the dtype ComfyUI picks; without
ID) and ``full VAE decode`` (the CogVideoX VAE, diffusers' default config, random bf16 weights, decoding one window's
13 x 60 x 90 latents to 49 x 480 x 720 through ``VideoVAE.decode_stream``, untiled as the Decode node's default,
against the ``memory_required`` estimate it passes ComfyUI; s/step is seconds per decode).

Reported per run: peak allocated and peak reserved GPU memory (the target is judged on reserved, what the card
must hold), seconds per step, seconds per window at ``--window-steps`` (50) steps (extrapolated from the timed steps;
VAE encode/decode not included), and MFU = matmul FLOPs counted from the config (``flops.py``) / time / the card's
dense bf16 peak (``--peak-tflops``, known for H100/H200/A100/L40S/RTX 4090).

Without a CUDA device it prints ``no CUDA device: skipped`` and exits 0. ``--smoke`` runs the same code on the
CPU with a tiny config to check the script itself (numbers meaningless, never written as results).

``python bench/bench_gpu.py [--modes full,lowvram] [--attention host,sdpa] [--steps 3] [--cap-gb 12] [--storage bf16,fp8]
[--no-vae]``
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_branch_overhead as b1  # noqa: E402
import common  # noqa: E402
import flops  # noqa: E402

log = logging.getLogger("bench.gpu")
TARGET_GB = {"full": 24.0, "lowvram": 12.0}
MODES = tuple(TARGET_GB)
ATTENTION = {  # name -> ComfyUI flag (set on comfy.cli_args.args before model_management is imported)
    "host": None, "sdpa": "use_pytorch_cross_attention", "sage": "use_sage_attention", "flash": "use_flash_attention",
}
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "RTX 4090": 165.2}  # dense
GB = 1e9
STORAGE_NAMES = ("bf16", "fp8")  # backbone storage dtypes (the loader's weight_dtype); "vae" names the decode worker
SMOKE = b1.Size(2, 2, 2, 16, 5, 12, 10, 16, 32, 2)


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def configure_host(mode: str, attention: str, cap_gb: float, smoke: bool) -> dict:
    """ComfyUI flags for this worker, set before ``comfy.model_management`` is imported."""
    common.setup("host", cpu=smoke)
    from comfy.cli_args import args
    import torch

    flag = ATTENTION[attention]
    if flag:
        setattr(args, flag, True)
    info: dict = {}
    if mode == "lowvram" and not smoke:
        total = torch.cuda.get_device_properties(0).total_memory
        args.reserve_vram = max(total / 2**30 - cap_gb * GB / 2**30, 0.0)
        torch.cuda.set_per_process_memory_fraction(min(cap_gb * GB / total, 1.0), 0)
        info = {"reserve_vram_gib": args.reserve_vram, "memory_fraction": cap_gb * GB / total}
    return info


def worker(mode: str, attention: str, steps: int, window_steps: int, cap_gb: float, smoke: bool, tflops: float | None,
           with_id: bool = False, storage: str = "bf16") -> dict:
    host = configure_host(mode, attention, cap_gb, smoke)
    if storage == "vae":
        return vae_worker(mode, steps, smoke, host)
    import torch
    import comfy.model_management
    from videopainter.vp_core.checkpoints import loaders
    from videopainter.vp_core.pipeline import sampling
    from videopainter.vp_core.model.branch import VideoPainterBranch
    from videopainter.vp_core.model.id_resample import IDResample
    from videopainter.vp_core.model.transformer import CogVideoXTransformer, Injection

    size = SMOKE if smoke else b1.GPU
    device = torch.device("cpu") if smoke else torch.device("cuda")
    cfg, bcfg = b1.configs(size)
    t0 = time.perf_counter()
    # the backbone's storage as load_backbone(weight_dtype=...) makes it: fp8 weights cast per tensor by
    # loaders.build_module, computing in the dtype ComfyUI picks for fp8 on this device; the branch stays bf16
    bf16 = loaders.Precision(torch.bfloat16, torch.bfloat16)
    precision = loaders.pick_precision(torch.float8_e4m3fn, device) if storage == "fp8" else bf16
    dtype = precision.compute
    sd = common.random_state_dict(CogVideoXTransformer, cfg, 0, torch.bfloat16, device.type)
    tr = loaders.build_module(CogVideoXTransformer, cfg, sd, precision, "random(backbone)", "backbone")
    del sd
    # the branch computes in the backbone's compute dtype, as in Sampler (bf16 weights, cast per call if it differs)
    branch_precision = loaders.Precision(torch.bfloat16, dtype)
    sd = common.random_state_dict(VideoPainterBranch, bcfg, 1, torch.bfloat16, device.type)
    br = loaders.build_module(VideoPainterBranch, bcfg, sd, branch_precision, "random(branch)", "branch")
    del sd
    build_s = time.perf_counter() - t0
    bb = loaders.patcher_for("diffusion_model", tr, precision, load_device=device, offload_device=torch.device("cpu"))
    bp = loaders.patcher_for("branch", br, branch_precision, load_device=device, offload_device=torch.device("cpu"))
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    out: dict = dict(mode=mode, attention_requested=attention, host=host, build_s=build_s, smoke=smoke, id=with_id,
                     storage=storage, compute_dtype=str(dtype))
    # the budget Sampler.run asks for (activations of one call; the ID states are not held here)
    need = sampling.activation_bytes(cfg, size.latent_frames, size.latent_height, size.latent_width, 2, dtype, with_id)
    out["memory_required_gb"] = need / GB
    castable = lambda p: [m for m in p.model.modules() if hasattr(m, "comfy_cast_weights")]  # noqa: E731
    try:
        if smoke and mode == "lowvram":
            # a CPU load device always loads fully; take the memory manager's partial-load step directly (what
            # load_models_gpu does on a GPU that cannot hold the model): 30 % of the weights stay, the rest is cast
            # per call by comfy.ops
            for p in (bb, bp):
                comfy.model_management.LoadedModel(p).model_load(0.3 * p.model_size())
        else:
            comfy.model_management.load_models_gpu([bb, bp], memory_required=need)  # the call Sampler.run makes
        out["loaded_gb"] = {"backbone": bb.loaded_size() / GB, "branch": bp.loaded_size() / GB,
                            "backbone_total": bb.model_size() / GB, "branch_total": bp.model_size() / GB}
        out["layers_cast_per_call"] = sum(bool(m.comfy_cast_weights) for p in (bb, bp) for m in castable(p))
        out["layers_castable"] = sum(len(castable(p)) for p in (bb, bp))
        x = b1.inputs(cfg, size, device, dtype)
        bb_in = torch.cat([x["z"], x["image"]], 2)

        def step():
            samples = br(x["z"], x["cond"], x["context"], x["timestep"], x["rope"], 1.0)
            idr = IDResample(x["hole"]) if with_id else None  # window 0's form (the clip's own holes)
            return tr(bb_in, x["context"], x["timestep"], x["rope"], Injection(samples, x["hole"], True), idr)

        with torch.inference_mode():
            out["attention"] = common.attention_name()
            out["finite"] = bool(torch.isfinite(step()).all())  # warm-up (kernels, casts, allocator)
            times = common.alternate({"step": step}, steps, warmup=0, device=device).wall["step"]
        out["oom"] = False
    except torch.cuda.OutOfMemoryError as e:  # a hard cap exceeded is a result, not a crash
        out["oom"], out["error"], times = True, str(e).splitlines()[0], []
    if cuda:
        out["peak_allocated_gb"] = torch.cuda.max_memory_allocated() / GB
        out["peak_reserved_gb"] = torch.cuda.max_memory_reserved() / GB
        out["device_name"] = torch.cuda.get_device_name(0)
    if times:
        s = common.median(times)
        holes = float(x["hole"].float().mean())
        shape = flops.Shape(2, size.latent_frames, size.latent_height, size.latent_width, size.text, hole_fraction=holes)
        f = flops.step_flops(cfg, bcfg, shape, "own" if with_id else None, own_bias=not cuda)["total"]
        peak = peak_tflops(out.get("device_name", ""), tflops)
        out.update(step_times_s=times, step_s=s, window_s=s * window_steps, window_steps=window_steps,
                   step_tflop=f / 1e12, achieved_tflops=f / s / 1e12, peak_tflops=peak,
                   mfu=(f / s / 1e12 / peak) if peak else None)
    return out


def vae_worker(mode: str, steps: int, smoke: bool, host: dict) -> dict:
    """Decode one window's latents (13 x 60 x 90 -> 49 x 480 x 720) with the CogVideoX VAE (diffusers' default
    config, random bf16 weights) through ``VideoVAE.decode_stream``, the call the Decode nodes make: untiled (tiled
    after an out-of-memory, as the node does), each chunk moved to the host as it comes. Reports the peak GPU
    memory against what ``VideoVAE.working_bytes`` asks ComfyUI to keep free (an estimate) and seconds per decode."""
    import torch
    from diffusers import AutoencoderKLCogVideoX

    from videopainter.vp_core.checkpoints.vae import video_vae_from_module

    device = torch.device("cpu") if smoke else torch.device("cuda")
    dtype = torch.bfloat16
    config = dict(block_out_channels=(32, 32, 32, 32), norm_num_groups=4) if smoke else {}
    size = SMOKE if smoke else b1.GPU
    t0 = time.perf_counter()
    with torch.device("meta"):
        vae = AutoencoderKLCogVideoX(scaling_factor=0.7, **config)
    g = torch.Generator(device.type).manual_seed(0)
    sd = {k: (torch.randn(v.shape, generator=g, device=device.type) / max(1, v[0].numel()) ** 0.5).to(dtype)
          if v.ndim >= 2 else (torch.ones(v.shape, device=device.type, dtype=dtype) if "norm" in k and k.endswith("weight")
                               else torch.zeros(v.shape, device=device.type, dtype=dtype))
          for k, v in vae.state_dict().items()}
    vae.load_state_dict(sd, strict=True, assign=True)
    del sd
    vv = video_vae_from_module(vae, dtype, device, torch.device("cpu"))
    build_s = time.perf_counter() - t0
    latents = torch.randn(1, size.latent_frames, 16, size.latent_height, size.latent_width, generator=torch.Generator().manual_seed(1))
    frames = 4 * (size.latent_frames - 1) + 1
    h, w = size.latent_height * vv.spatial_factor, size.latent_width * vv.spatial_factor
    out: dict = dict(mode=mode, attention_requested="-", host=host, build_s=build_s, smoke=smoke, id=False, storage="vae",
                     frames=frames, height=h, width=w,
                     memory_required_gb=vv.working_bytes((2 + 1) * 4, h, w, False) / GB, oom=False)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    got = []

    def decode():
        got.clear()
        vv.decode_stream(latents, False, lambda chunk: got.append(chunk.shape[2]) or chunk.cpu())

    try:
        with torch.inference_mode():
            times = common.alternate({"decode": decode}, max(1, steps - 1), warmup=1, device=device).wall["decode"]
    except torch.cuda.OutOfMemoryError as e:
        out["oom"], out["error"], times = True, str(e).splitlines()[0], []
    out["decoded_frames"] = sum(got)
    out["tiled"] = bool(vv.model.use_tiling)
    if cuda:
        out["peak_allocated_gb"] = torch.cuda.max_memory_allocated() / GB
        out["peak_reserved_gb"] = torch.cuda.max_memory_reserved() / GB
        out["device_name"] = torch.cuda.get_device_name(0)
    if times:
        out.update(step_times_s=times, step_s=common.median(times), window_s=common.median(times))
    return out


def spawn(mode: str, attention: str, args, with_id: bool = False, storage: str = "bf16") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "worker.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--attention", attention,
               "--steps", str(args.steps), "--window-steps", str(args.window_steps), "--cap-gb", str(args.cap_gb),
               "--worker-out", str(path)]
        if args.smoke:
            cmd.append("--smoke")
        if with_id:
            cmd.append("--worker-id")
        cmd += ["--worker-storage", storage]
        if args.peak_tflops:
            cmd += ["--peak-tflops", str(args.peak_tflops)]
        proc = subprocess.run(cmd, text=True, capture_output=True)
        if proc.returncode != 0 or not path.is_file():
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise RuntimeError(f"bench_gpu worker mode={mode} attention={attention} storage={storage} failed "
                               f"(exit {proc.returncode})")
        return json.loads(path.read_text())


def report(res: dict) -> str:
    rows = []
    for r in res["runs"]:
        target = TARGET_GB[r["mode"]]
        peak = r.get("peak_reserved_gb")
        verdict = "MISS (OOM)" if r["oom"] else (common.verdict(peak, target) if peak is not None else "-")
        if r.get("finite") is False:  # the step's output had inf/NaN (e.g. fp8 storage overflowing)
            verdict = "MISS (not finite)"
        mfu = r.get("mfu")
        label = r["mode"] + {"fp8": " fp8 storage", "vae": " VAE decode"}.get(r.get("storage", "bf16"), "")
        rows.append([
            label + (" +ID" if r.get("id") else ""), f"{r['attention_requested']} ({r.get('attention', '?')})" if r.get("storage") != "vae" else "-",
            f"{r['loaded_gb']['backbone']:.2f}/{r['loaded_gb']['backbone_total']:.2f}" if "loaded_gb" in r else "-",
            f"{r['layers_cast_per_call']}/{r['layers_castable']}" if "layers_castable" in r else "-",
            f"{r['peak_allocated_gb']:.2f}" if "peak_allocated_gb" in r else "-", f"{peak:.2f}" if peak is not None else "-",
            f"<={target:g}", verdict, f"{r['step_s']:.3f}" if "step_s" in r else "-",
            f"{r['window_s']:.1f}" if "window_s" in r else "-", f"{100 * mfu:.1f}%" if mfu else "-",
        ])
    head = ["mode", "attention", "backbone on GPU GB", "layers streamed", "peak alloc GB", "peak reserved GB", "target", "memory",
            "s/step", f"s/window ({res['window_steps']} steps)", "MFU"]
    title = "SMOKE TEST on CPU, tiny config: NOT a GPU measurement" if res["smoke"] else (
        f"Benchmarks 4/5: CogVideoX-5B-I2V + branch, 49x480x720, bf16, CFG batch 2 — {res.get('device_name', '')}")
    return "\n".join([title, common.table(head, rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="full,lowvram", help=f"comma-separated: {', '.join(MODES)}")
    ap.add_argument("--attention", default="host,sdpa", help=f"comma-separated: {', '.join(ATTENTION)}")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per run (after one warm-up step)")
    ap.add_argument("--window-steps", type=int, default=50, help="steps of one window, for seconds per window")
    ap.add_argument("--cap-gb", type=float, default=12.0, help="the card size lowvram mode emulates (GB)")
    ap.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the card, for the MFU (auto for known cards)")
    ap.add_argument("--smoke", action="store_true", help="run the code path on CPU with a tiny config (no results)")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results)")
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--worker-id", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker-storage", default="bf16", choices=(*STORAGE_NAMES, "vae"), help=argparse.SUPPRESS)
    ap.add_argument("--storage", default="bf16,fp8",
                    help="backbone storage dtypes (comma-separated: bf16, fp8 = fp8_e4m3fn through the loader's "
                         "weight_dtype); fp8 runs in full mode, without ID")
    ap.add_argument("--no-vae", action="store_true", help="skip the VAE decode run (full mode)")
    ap.add_argument("--no-id", action="store_true", help="skip the runs with ID resampling")
    args = ap.parse_args(argv)
    if args.worker:
        attention = args.attention.split(",")[0]
        res = worker(args.worker, attention, args.steps, args.window_steps, args.cap_gb, args.smoke, args.peak_tflops,
                     args.worker_id, args.worker_storage)
        args.worker_out.write_text(json.dumps(res, default=str))
        return 0
    import torch

    if not torch.cuda.is_available() and not args.smoke:
        print("bench_gpu: no CUDA device: skipped (benchmarks 4 and 5 need an NVIDIA GPU; nothing was measured)")
        return 0
    modes = [m for m in args.modes.split(",") if m]
    attns = [a for a in args.attention.split(",") if a]
    storages = [x for x in args.storage.split(",") if x]
    bad = [m for m in modes if m not in MODES] + [a for a in attns if a not in ATTENTION] + \
        [x for x in storages if x not in STORAGE_NAMES]
    if bad:
        ap.error(f"unknown mode/attention: {', '.join(bad)}")
    runs, failed = [], []
    for m in modes:
        resolved: set[str] = set()
        for a in attns if m == "full" else attns[:1]:
            if a == "sdpa" and "attention_pytorch" in resolved:
                continue  # the host already picked SDPA (the default on NVIDIA): the same worker twice
            jobs = [("bf16", with_id) for with_id in ((False,) if args.no_id else (False, True))] if "bf16" in storages else []
            if m == "full" and a == (attns[0] if attns else a):  # once per mode: the storage and decode rows
                jobs += [("fp8", False)] if "fp8" in storages else []
                jobs += [] if args.no_vae else [("vae", False)]
            for storage, with_id in jobs:
                try:
                    runs.append(spawn(m, a, args, with_id, storage))
                    if storage != "vae":
                        resolved.add(runs[-1].get("attention", ""))
                except RuntimeError as e:  # e.g. --attention sage without the sageattention package: keep the others
                    failed.append(str(e))
                    print(f"bench_gpu: {e}", file=sys.stderr)
    if not runs:
        return 1
    res = dict(failed=failed, smoke=args.smoke, window_steps=args.window_steps, cap_gb=args.cap_gb, runs=runs, targets_gb=TARGET_GB,
               device_name=next((r.get("device_name") for r in runs if r.get("device_name")), None))
    print(report(res))
    if not args.smoke:
        path = common.write_json("gpu", res, args.out)
        print(f"-> {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
