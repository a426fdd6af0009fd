"""Benchmark 9: the mask pre-pass at 1080p (issue 25 item 2): what ``masks.scan_holes`` costs per source frame.

The encoder runs one pass over the mask alone before sampling (``clip_inputs.prepare``): it gives crop mode's box
(``crop.plan_crop``) and the mask report on every input path. On the VIDEO path that pass decodes the mask video
once more (a reader of its own), keeping every ``step``-th frame through the encoder's mask conversion
(``video_io.mask_reader``: channel > threshold), then takes each kept frame's hole box and area
(``masks.frame_boxes``).

Measured, on a generated 1920x1080 mask video at 30 fps (a 200x150 hole crossing 400 px, H.264 yuv420p as a mask
exported from an editor or SAM2 usually is, and FFV1), sampled every 3rd frame (30 -> 10 fps, the encoder's step
at 8 fps):

- ``file``: ``scan_holes`` of the encoder's sampled mask source (``FileSource`` step 3 with the mask conversion),
  per SOURCE frame (every source frame is decoded, every 3rd converted and scanned) and per sampled frame;
- ``memory``: ``scan_holes`` of the same sampled holes already in memory (uint8), i.e. the box / area work alone,
  per sampled frame.

``python bench/bench_mask_scan.py [--quick]``  (``--quick``: 2 s of video instead of 4, 2 repeats instead of 3.)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from videopainter.vp_core.pipeline import masks  # noqa: E402
from videopainter.vp_core.video import video_io  # noqa: E402

W, H, FPS, STEP = 1920, 1080, 30, 3
HOLE_W, HOLE_H, TRAVEL = 200, 150, 400


def hole_frame(t: int, n: int) -> np.ndarray:
    f = np.zeros((H, W, 3), np.uint8)
    x = 700 + round(TRAVEL * t / max(n - 1, 1))
    f[465:465 + HOLE_H, x:x + HOLE_W] = 255
    return f


def write_mask_video(path: Path, n: int, codec: str) -> Path:
    with av.open(str(path), mode="w") as c:
        s = c.add_stream(codec, rate=FPS)
        s.width, s.height = W, H
        s.pix_fmt = "yuv420p" if codec == "libx264" else "bgr0"
        if codec == "libx264":
            s.options = {"crf": "18"}
        for t in range(n):
            for packet in s.encode(av.VideoFrame.from_ndarray(hole_frame(t, n), format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` runs, and its last result."""
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 s of video and 2 repeats instead of 4 s and 3")
    args = ap.parse_args(argv)
    n = FPS * (2 if args.quick else 4)
    repeats = 2 if args.quick else 3
    sampled = -(-n // STEP)
    post = video_io.mask_reader("red", 0.5)
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_mask_scan_") as tmp:
        for codec, suffix in (("libx264", "mp4"), ("ffv1", "mkv")):
            path = write_mask_video(Path(tmp) / f"mask.{suffix}", n, codec)
            src = video_io.FileSource(str(path), STEP, name="mask", post=post)  # the encoder's sampled mask source
            wall, cpu, scan = timed(lambda: masks.scan_holes(src), repeats)
            assert len(scan.boxes) == sampled and all(b is not None for b in scan.boxes)
            results[codec] = {"ms_per_source_frame": 1000 * wall / n, "ms_per_sampled_frame": 1000 * wall / sampled,
                              "cpu_ms_per_source_frame": 1000 * cpu / n}
            rows.append([f"file ({'H.264 yuv420p' if codec == 'libx264' else 'FFV1'}), step {STEP}",
                         f"{1000 * wall / n:.2f}", f"{1000 * wall / sampled:.2f}", f"{1000 * cpu / n:.2f}"])
        holes = torch.from_numpy(np.stack([hole_frame(t, n)[..., 0] for t in range(0, n, STEP)]))
        mem = video_io.TensorSource(holes)
        wall, cpu, scan = timed(lambda: masks.scan_holes(mem), repeats)
        assert len(scan.boxes) == sampled
        results["memory"] = {"ms_per_sampled_frame": 1000 * wall / sampled, "cpu_ms_per_sampled_frame": 1000 * cpu / sampled}
        rows.append(["memory (box and area only)", "-", f"{1000 * wall / sampled:.2f}", f"{1000 * cpu / sampled:.2f} (per sampled)"])
    print(common.table(["mask pre-pass, 1920x1080", "wall ms / source frame", "wall ms / sampled frame",
                        "CPU ms / source frame"], rows))
    print(f"{n} source frames at {FPS} fps, {sampled} sampled (step {STEP}); {repeats} repeats (median); "
          f"torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    common.write_json("mask_scan", {"results": results, "source_frames": n, "sampled_frames": sampled, "step": STEP,
                                    "size": [W, H], "fps": FPS, "repeats": repeats,
                                    "load_average": list(os.getloadavg()), "threads": torch.get_num_threads()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
