"""Benchmark 3: peak memory of a whole any-length run (sample + decode) for 2 windows vs 6 windows, same resolution.

Each run is a fresh subprocess (peaks never mix) that loads the tiny conformance models (``../shared/conformance`` or ``$VP_CONFORMANCE_DIR``,
the same loaders the nodes use), builds a clip of ``17 x windows`` frames from the ``any_length`` case, and runs
``vp_core.pipeline.sampling.Sampler`` in reference mode (window 17, overlap 0, ID LoRA + ID resampling with
prev_clip_weight 0.5, as that case does) followed by ``vp_core.pipeline.sampling.decode``. CPU: resident set size sampled
by a psutil thread every 2 ms, per phase (load, sample, decode), cross-checked with the kernel's ``ru_maxrss``. CUDA:
``torch.cuda.max_memory_allocated``.

Some memory legitimately grows with length: the source frames and masks the caller hands in (uint8), the merged
latent buffer and the decoded output (float32 [T, H, W, 3]). They are reported separately, so "flat" can be judged
on the working memory.

``python bench/bench_memory.py [--quick] [--windows 2,6] [--steps N]``
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

log = logging.getLogger("bench.memory")
TARGET = 1.10
WINDOW = 17
MiB = 2**20


class RssMonitor(threading.Thread):
    """Samples this process's RSS in a background thread and keeps the peak of each named phase."""

    def __init__(self, interval: float = 0.002):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self.at_start: dict[str, int] = {}
        self.samples = 0
        self._stop_event = threading.Event()

    def _sample(self) -> int:
        rss = self.proc.memory_info().rss
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
        self.samples += 1
        return rss

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._sample()
            time.sleep(self.interval)

    def mark(self, phase: str) -> None:
        self._sample()
        self.phase = phase
        self.at_start[phase] = self._sample()

    def stop(self) -> None:
        self._sample()
        self._stop_event.set()
        self.join()


def clip(windows: int) -> dict:
    """The any_length case's inputs stretched to ``17 * windows`` frames (ping-pong over its 51 frames)."""
    import torch
    from safetensors.torch import load_file

    case = common.FIXTURES / "cases" / "any_length"
    inp = load_file(str(case / "inputs.safetensors"))
    params = json.loads((case / "params.json").read_text())
    n = inp["video_u8"].shape[0]
    cycle = list(range(n)) + list(range(n - 2, 0, -1))
    idx = torch.tensor([cycle[i % len(cycle)] for i in range(WINDOW * windows)])
    return dict(video=inp["video_u8"][idx].contiguous(), masks=inp["masks_u8"][idx].contiguous(),
                first=inp["first_frame_inpainted_u8"], pos=inp["prompt_embeds"], neg=inp["negative_prompt_embeds"],
                params=params)


def worker(windows: int, steps: int, cuda: bool, threads: int = 1) -> dict:
    mon = RssMonitor()
    mon.start()
    mon.mark("import")
    common.setup("host", cpu=not cuda, threads=threads)
    import torch
    from videopainter.vp_core.pipeline import preprocess, sampling
    from videopainter.vp_core.conformance.runner import Fixture
    from videopainter.vp_core.pipeline.windows import plan_windows

    mon.mark("load")
    data = clip(windows)
    p = data["params"]
    pipe = preprocess.reference_inputs(data["video"], data["masks"], data["first"], p["dilate_size"], p["first_frame_gt"])
    plan = plan_windows(pipe.video.shape[0], WINDOW, 0, "reference")
    models = Fixture(common.FIXTURES).models(id_lora=True)
    settings = sampling.SamplerSettings(
        steps=steps, guidance=p["guidance_scale"], dynamic_cfg=p["use_dynamic_cfg"], scheduler="dpm",
        replace_gt=p["replace_gt"], mask_add=p["mask_add"], prev_clip_weight=p["prev_clip_weight"],
        vae_tiling=p["vae_tiling"], seed=p["gen_seed"],
    )
    cond = sampling.InpaintConditioning(pipe.video, pipe.masks, pipe.image, data["pos"], data["neg"], p["height"], p["width"])
    import comfy.model_management

    comfy.model_management.load_models_gpu([models.backbone, models.branch, models.vae.patcher])
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    gpu_base = torch.cuda.memory_allocated() if cuda else 0
    mon.mark("sample")
    t0 = time.perf_counter()
    result = sampling.Sampler(models, cond, plan, settings).run()
    gpu_sample = torch.cuda.max_memory_allocated() if cuda else 0
    mon.mark("decode")
    frames = sampling.decode(models.vae, result.latents, settings.vae_tiling)
    gpu_peak = torch.cuda.max_memory_allocated() if cuda else 0
    elapsed = time.perf_counter() - t0
    mon.mark("done")
    mon.stop()
    nbytes = lambda t: t.numel() * t.element_size()  # noqa: E731
    return dict(
        windows=len(plan.windows), input_frames=int(pipe.video.shape[0]), output_frames=int(frames.shape[0]),
        steps=steps, seconds=elapsed, rss_samples=mon.samples,
        rss_peak_by_phase_mib={k: v / MiB for k, v in mon.peaks.items()},
        rss_at_phase_start_mib={k: v / MiB for k, v in mon.at_start.items()},
        ru_maxrss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        length_buffers_mib={
            "source frames + masks (uint8, caller's)": (nbytes(data["video"]) + nbytes(data["masks"]) + nbytes(pipe.video) + nbytes(pipe.masks)) / MiB,
            "merged latents": nbytes(result.latents) / MiB,
            "decoded output (float32)": nbytes(frames) / MiB,
        },
        malloc_mmap_threshold=os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        gpu_mib={"base": gpu_base / MiB, "peak_sample": gpu_sample / MiB, "peak": gpu_peak / MiB} if cuda else None,
        attention=common.attention_name(), threads=torch.get_num_threads(),
    )


def spawn_all(counts: list[int], steps: int, cuda: bool, default_malloc: bool = False, threads: int = 1) -> dict[int, dict]:
    """One fresh interpreter per window count, run side by side (separate processes: their peaks cannot mix)."""
    env = dict(os.environ)
    if not default_malloc:
        # glibc otherwise raises its mmap threshold after the first large free and keeps later large buffers in a heap
        # it rarely returns, so RSS would show ~100 MiB of allocator history that changes from run to run (measured:
        # the same decode peaked 998 then 1115 MiB). A fixed threshold makes RSS follow live memory.
        env.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    with tempfile.TemporaryDirectory() as tmp:
        procs = {}
        for n in counts:
            out = Path(tmp) / f"worker{n}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(n), "--steps", str(steps),
                   "--threads", str(threads), "--worker-out", str(out)] + (["--gpu"] if cuda else [])
            log_path = Path(tmp) / f"worker{n}.log"
            procs[n] = (subprocess.Popen(cmd, stdout=log_path.open("w"), stderr=subprocess.STDOUT, env=env), out, log_path)
        results = {}
        for n, (proc, out, log_path) in procs.items():
            code = proc.wait()
            if code != 0 or not out.is_file():
                sys.stderr.write(log_path.read_text()[-4000:])
                raise RuntimeError(f"bench_memory worker for {n} windows failed (exit {code})")
            results[n] = json.loads(out.read_text())
        return results


def summarise(runs: dict[int, dict], cuda: bool) -> dict:
    small, large = runs[min(runs)], runs[max(runs)]

    def peak(r: dict) -> float:
        return r["gpu_mib"]["peak"] if cuda else max(r["rss_peak_by_phase_mib"].values())

    def base(r: dict) -> float:
        return r["gpu_mib"]["base"] if cuda else r["rss_at_phase_start_mib"]["sample"]

    def length_bufs(r: dict) -> float:
        return sum(r["length_buffers_mib"].values())

    out = {"ratio": peak(large) / peak(small)}
    out["ratio_above_loaded_models"] = (peak(large) - base(large)) / max(peak(small) - base(small), 1e-9)
    if not cuda:
        out["ratio_without_length_buffers"] = (peak(large) - length_bufs(large)) / (peak(small) - length_bufs(small))
        out["ratio_ru_maxrss"] = large["ru_maxrss_mib"] / small["ru_maxrss_mib"]
    return out


def report(res: dict) -> str:
    cuda = res["device"] == "cuda"
    rows = []
    for n, r in sorted(res["runs"].items(), key=lambda kv: int(kv[0])):
        ph = r["rss_peak_by_phase_mib"]
        bufs = r["length_buffers_mib"]
        rows.append([
            n, f"{r['input_frames']}->{r['output_frames']}",
            f"{max(ph.values()):.1f}", f"{r['ru_maxrss_mib']:.1f}", f"{r['rss_at_phase_start_mib']['sample']:.1f}",
            f"{ph.get('sample', 0):.1f}", f"{ph.get('decode', 0):.1f}",
            f"{bufs['decoded output (float32)']:.2f}", f"{sum(bufs.values()):.2f}",
            f"{r['gpu_mib']['peak']:.1f}" if r.get("gpu_mib") else "-", f"{r['seconds']:.1f}",
        ])
    head = ["windows", "frames in->out", "peak RSS MiB", "ru_maxrss", "RSS models loaded", "peak sample", "peak decode",
            "output buf MiB", "all length bufs", "GPU peak MiB", "s"]
    s = res["summary"]
    lines = [
        f"Benchmark 3: peak memory, {min(map(int, res['runs']))} vs {max(map(int, res['runs']))} windows — tiny conformance "
        f"models, 96x80 px, window {WINDOW}, {res['steps']} step(s), ID resampling on; {res['device']}",
        common.table(head, rows),
        f"peak ratio {s['ratio']:.3f} (target <= {TARGET}: {common.verdict(s['ratio'], TARGET)}); "
        f"above the loaded models {s['ratio_above_loaded_models']:.3f}"
        + ("" if cuda else f"; without the length-proportional buffers {s['ratio_without_length_buffers']:.3f}; "
           f"ru_maxrss ratio {s['ratio_ru_maxrss']:.3f}"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 denoising step per window (part of bench/run.sh --quick)")
    ap.add_argument("--gpu", action="store_true", help="measure peak CUDA memory (torch.cuda.max_memory_allocated)")
    ap.add_argument("--windows", default="2,6", help="two window counts to compare (default 2,6)")
    ap.add_argument("--steps", type=int, help="denoising steps per window (default 1 quick / 2 full)")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's dynamic mmap threshold on (RSS then includes allocator history; noisier)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per run (default 1: the two runs go side by side on a 2-core machine, and "
                         "2-thread CPU convolutions lose more to contention than they gain)")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results)")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    steps = args.steps or (1 if args.quick else 2)
    if args.worker is not None:
        args.worker_out.write_text(json.dumps(worker(args.worker, steps, args.gpu, args.threads)))
        return 0
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            print("bench_memory --gpu: no CUDA device: skipped")
            return 0
    counts = sorted({int(c) for c in args.windows.split(",")})
    if len(counts) != 2 or counts[0] < 1:
        ap.error(f"--windows takes two different positive counts, e.g. 2,6; got {args.windows!r}")
    runs = spawn_all(counts, steps, args.gpu, args.default_malloc, args.threads)
    res = dict(threads=args.threads, malloc_mmap_threshold=None if args.default_malloc else os.environ.get("MALLOC_MMAP_THRESHOLD_", "65536"), device="cuda" if args.gpu else "cpu", steps=steps, window=WINDOW, target=TARGET, runs=runs,
               mode="gpu" if args.gpu else ("quick" if args.quick else "full"))
    res["summary"] = summarise(runs, args.gpu)
    print(report(res))
    path = common.write_json("memory" + ("_gpu" if args.gpu else ""), res, args.out)
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
