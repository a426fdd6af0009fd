"""Benchmark 8: source-rate output at 1080p (issue 25 item 1): quality and cost of interpolating the generated
frames between two sampled frames.

Quality: a textured 200x150 patch moving at constant velocity (``--speed`` px per source frame, default 3.33: the
issue's object crossing ~400 px in 4 s at 30 fps) over a textured 1920x1080 background, sampled every 3rd frame
(30 -> 10 fps). The "generated" frames handed in are the true frames at the sampled times; the PSNR of the hole
pixels (the patch at that time, grown by 4 px) of the in-between frames against the truth, for the flow
interpolation (``vp_core.pipeline.interpolate``), repeating the nearest sampled frame and a linear cross-fade.
Target: flow >= both others + 6 dB.

Cost: the whole source-rate composite (``source_rate.composited_chunks``: generated frames placed in source
coordinates, flow on the box around the holes, warping, the paste with the source's background) per source frame,
and the sampled-rate composite per frame for comparison, frames from memory (no decoding or encoding), generated
frames at the working size 720x480 (upsampled to the source as in the pipeline).

``python bench/bench_interpolate.py [--quick] [--speed PX]``  (``--quick``: 5 sampled periods instead of 10.)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from videopainter.vp_core.pipeline import composite, interpolate, source_rate  # noqa: E402
from videopainter.vp_core.video.video_io import TensorSource  # noqa: E402

W, H, STEP = 1920, 1080, 3
PATCH_H, PATCH_W = 150, 200
DILATE, FEATHER = 16, 8  # the composite's defaults
TARGET_DB = 6.0


def texture(h: int, w: int, seed: int, sigma: float = 4.0) -> np.ndarray:
    r = cv2.GaussianBlur(np.random.default_rng(seed).random((h, w)).astype(np.float32), (0, 0), sigma)
    r = (r - r.min()) / (r.max() - r.min())
    return r[..., None] * (np.random.default_rng(seed + 9).random(3).astype(np.float32) * 0.5 + 0.5)


class Scene:
    def __init__(self, speed: float):
        self.bg, self.patch = texture(H, W, 1), texture(PATCH_H, PATCH_W, 2)
        self.v = (speed * 0.3, speed)  # px per source frame (y, x)

    def frame(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        m = np.float32([[1, 0, 300 + self.v[1] * t], [0, 1, 400 + self.v[0] * t]])
        p = cv2.warpAffine(self.patch, m, (W, H), flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(np.ones((PATCH_H, PATCH_W), np.float32), m, (W, H), flags=cv2.INTER_LINEAR)
        return self.bg * (1 - a[..., None]) + p * a[..., None], a > 0.5


def quality(scene: Scene) -> dict:
    f0, h0 = scene.frame(0)
    f1, h1 = scene.frame(STEP)
    a, b = torch.from_numpy(f0), torch.from_numpy(f1)
    grown = [cv2.dilate(scene.frame(j)[1].astype(np.uint8), np.ones((9, 9), np.uint8)) > 0 for j in range(1, STEP)]
    box = composite.reach(torch.from_numpy(np.logical_or.reduce(grown)), DILATE + 2 * FEATHER + source_rate.FLOW_MARGIN)
    err = {"flow": [], "nearest": [], "fade": []}
    flows = interpolate.PairFlow(a, b, box)
    for j, hole in zip(range(1, STEP), grown):
        t = j / STEP
        truth = scene.frame(j)[0]
        got = interpolate.frame_at(a, b, t, box, flows).numpy()
        for name, g in {"flow": got, "nearest": f0 if t < 0.5 else f1, "fade": (1 - t) * f0 + t * f1}.items():
            err[name].append(float(((g[hole] - truth[hole]) ** 2).mean()))
    return {k: float(-10 * np.log10(np.mean(v))) for k, v in err.items()} | {"box": list(box)}


def cost(scene: Scene, periods: int) -> dict:
    n = periods * STEP
    frames, holes = zip(*(scene.frame(t) for t in range(n)))
    src = TensorSource(torch.from_numpy((np.stack(frames) * 255).round().astype(np.uint8)))
    hole = TensorSource(torch.from_numpy(np.stack(holes).astype(np.uint8) * 255))
    sampled = torch.from_numpy(np.stack(frames[::STEP])).movedim(-1, 1)
    gen = F.interpolate(sampled, size=(480, 720), mode="bicubic", align_corners=False).movedim(1, -1).clamp(0, 1)
    timeline = source_rate.SourceTimeline(src, hole, STEP, 30)
    chunks = source_rate.composited_chunks(timeline, lambda: iter([gen]), STEP, DILATE, FEATHER)
    t0, c0 = time.perf_counter(), time.process_time()
    out = sum(c.shape[0] for c in chunks())
    t_source, c_source = time.perf_counter() - t0, time.process_time() - c0
    assert out == n
    originals = [torch.from_numpy(np.stack(frames[i:i + 1])).float() for i in range(0, n, STEP)]
    masks = [torch.from_numpy(np.stack(holes[i:i + 1])).float() for i in range(0, n, STEP)]
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(periods):
        composite.paste(originals[k], gen[k:k + 1], masks[k], DILATE, FEATHER)
    t_sampled, c_sampled = time.perf_counter() - t0, time.process_time() - c0
    return {"source_frames": n, "ms_per_source_frame": 1000 * t_source / n,
            "ms_per_sampled_frame_sampled_mode": 1000 * t_sampled / periods,
            "ms_per_second_of_30fps_source": 1000 * t_source / n * 30,
            "ms_per_second_sampled_mode": 1000 * t_sampled / periods * 10,
            "cpu_ms_per_source_frame": 1000 * c_source / n, "cpu_ms_per_sampled_frame_sampled_mode": 1000 * c_sampled / periods,
            "threads": torch.get_num_threads(), "load_average": list(os.getloadavg())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 sampled periods for the cost instead of 10")
    ap.add_argument("--speed", type=float, default=400 / 120, help="patch speed, px per source frame")
    args = ap.parse_args(argv)
    scene = Scene(args.speed)
    q = quality(scene)
    c = cost(scene, 5 if args.quick else 10)
    gain = min(q["flow"] - q["nearest"], q["flow"] - q["fade"])
    print(common.table(["in-between hole PSNR (1080p)", "flow", "nearest frame", "cross-fade", "min gain"],
                       [[f"{args.speed:.2f} px/frame, step {STEP}", f"{q['flow']:.2f}", f"{q['nearest']:.2f}",
                         f"{q['fade']:.2f}", f"{gain:+.2f} dB"]]))
    print(f"cost (wall; CPU time of all threads {c['cpu_ms_per_source_frame']:.0f} vs "
          f"{c['cpu_ms_per_sampled_frame_sampled_mode']:.0f} ms; load {c['load_average'][0]:.1f}): "
          f"source-rate composite {c['ms_per_source_frame']:.1f} ms per source frame "
          f"({c['ms_per_second_of_30fps_source']:.0f} ms per second of 30 fps); sampled-rate composite "
          f"{c['ms_per_sampled_frame_sampled_mode']:.1f} ms per frame ({c['ms_per_second_sampled_mode']:.0f} ms per "
          f"second at 10 fps); box {q['box']}; target gain >= {TARGET_DB} dB: {'PASS' if gain >= TARGET_DB else 'MISS'}")
    common.write_json("interpolate", {"quality_db": q, "cost": c, "min_gain_db": gain, "target_db": TARGET_DB,
                                      "speed_px_per_frame": args.speed, "size": [W, H], "step": STEP})
    return 0


if __name__ == "__main__":
    sys.exit(main())
