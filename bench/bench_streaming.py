"""Benchmark 6: host memory of the streaming path (issue #14), through the real server.

Procedurally generated 1080p30 clips (H.264, written frame by frame at run time: nothing is committed) of two
lengths go through ``workflows/api/videopainter_inpaint.json`` (LoadVideo -> Encode ... Composite Video -> Save
Video) with the tiny demo weights and 1 step per window. The server's RSS (its whole process tree) is sampled every
50 ms by a psutil thread from before the prompt is queued until it finishes; each length runs on a fresh server.

Reported: peak RSS per length, the idle server's RSS, peak above idle, the ratio long/short (target <= 1.10), MB
of peak per minute of input, and the time per frame spent decoding the input and encoding the output (from the
server log's ``streamed video`` line, written by ``vp_core.pipeline.video_out``), the frames written (with the
encoder's default ``output_rate`` ``source``: every source frame, interpolated between the sampled ones) and the
whole run's wall time per source frame.

``python bench/bench_streaming.py [--quick] [--seconds 30,120] [--codec h264|ffv1]``
(``--quick``: 6 s and 18 s.) Check ``free -g`` first: the clips need ~200 MB of disk per minute (H.264).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from videopainter.vp_headless import comfy_client as cc  # noqa: E402

make_sample_clip = common.script("make_sample_clip")

W, H, FPS = 1920, 1080, 30
TARGET_RATIO = 1.10
TARGET_ABOVE_IDLE_GB = 1.5
WORKFLOW = common.REPO / "workflows" / "api" / "videopainter_inpaint.json"
MiB = 2**20


class TreeRss(threading.Thread):
    """Peak RSS of a process and its children, sampled in a background thread."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        import psutil

        self.proc, self.interval, self.peak, self._halt = psutil.Process(pid), interval, 0, threading.Event()

    def rss(self) -> int:
        procs = [self.proc] + self.proc.children(recursive=True)
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except Exception:  # a child that just ended
                pass
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def run_length(seconds: int, models: Path, work: Path, codec: str) -> dict:
    frames = seconds * FPS
    t0 = time.perf_counter()
    video, mask = make_sample_clip.write_clip(work / f"v{seconds}.mp4", work / f"m{seconds}.mp4", frames, W, H, FPS, codec)
    gen_s = time.perf_counter() - t0
    base = work / f"base{seconds}"
    server = cc.start_server(base, models_dir=models)
    try:
        cc.upload_input(server, "bench_stream.mp4", video)
        cc.upload_input(server, "bench_stream_mask.mp4", mask)
        prompt = cc.apply_overrides(cc.load_workflow(WORKFLOW), {
            **cc.demo_sets(WORKFLOW), "sampler.steps": 1, "video.file": "bench_stream.mp4", "mask.file": "bench_stream_mask.mp4",
            "save.filename_prefix": f"bench/stream{seconds}"})
        time.sleep(2.0)
        mon = TreeRss(server.process.pid)
        idle = mon.rss()
        mon.start()
        t1 = time.perf_counter()
        result = cc.submit(server, prompt, timeout=3600)
        wall = time.perf_counter() - t1
        peak = mon.stop()
        if not result.ok:
            raise RuntimeError(f"{seconds} s clip: {result.status}: {result.error}")
        log = server.log_path.read_text(errors="replace")
    finally:
        server.stop()
    m = re.findall(r"streamed video: (\d+) frames .*?decoding the source ([\d.]+) ms/frame.*?encoding ([\d.]+) ms/frame", log)
    out_frames, dec_ms, enc_ms = (int(m[-1][0]), float(m[-1][1]), float(m[-1][2])) if m else (0, float("nan"), float("nan"))
    return dict(seconds=seconds, source_frames=frames, output_frames=out_frames, idle_rss_mib=idle / MiB,
                peak_rss_mib=peak / MiB, above_idle_mib=(peak - idle) / MiB, wall_s=wall, clip_generation_s=gen_s,
                decode_ms_per_source_frame=dec_ms, encode_ms_per_output_frame=enc_ms,
                clip_mib=(video.stat().st_size + mask.stat().st_size) / MiB)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="6 s and 18 s clips")
    ap.add_argument("--seconds", default=None, help="two clip lengths in seconds (default 30,120, the lengths the issue names; ~45 min on 2 cores)")
    ap.add_argument("--codec", default="h264", choices=("h264", "ffv1"), help="codec of the generated clips")
    args = ap.parse_args(argv)
    lengths = [int(x) for x in (args.seconds or ("6,18" if args.quick else "30,120")).split(",")]
    with tempfile.TemporaryDirectory(prefix="vp_bench_stream_") as tmp:
        work = Path(tmp)
        models = work / "models"
        subprocess.run([sys.executable, str(common.REPO / "scripts" / "make_demo_models.py"), str(models)], check=True,
                       cwd=common.REPO, capture_output=True)
        runs = [run_length(s, models, work, args.codec) for s in lengths]
    short, long = runs[0], runs[-1]
    ratio = long["peak_rss_mib"] / short["peak_rss_mib"]
    minutes = (long["seconds"] - short["seconds"]) / 60
    per_minute = (long["peak_rss_mib"] - short["peak_rss_mib"]) / minutes
    rows = [[f"{r['seconds']} s ({r['source_frames']} frames)", f"{r['output_frames']}", f"{r['idle_rss_mib']:.0f}",
             f"{r['peak_rss_mib']:.0f}", f"{r['above_idle_mib']:.0f}", f"{r['decode_ms_per_source_frame']:.2f}",
             f"{r['encode_ms_per_output_frame']:.1f}", f"{1000 * r['wall_s'] / r['source_frames']:.0f}",
             f"{r['wall_s']:.0f}"] for r in runs]
    print(common.table(["clip (1080p30)", "frames out", "idle MiB", "peak MiB", "above idle", "decode ms/src frame",
                        "encode ms/out frame", "wall ms/src frame", "wall s"], rows))
    print(f"long/short peak {ratio:.3f} (target <= {TARGET_RATIO}); peak growth {per_minute:.0f} MiB per minute of input; "
          f"short clip above idle {short['above_idle_mib'] / 1024:.2f} GiB (target < {TARGET_ABOVE_IDLE_GB})")
    common.write_json("streaming", {
        "runs": runs, "ratio": ratio, "target": TARGET_RATIO, "mib_per_minute": per_minute,
        "short_above_idle_gib": short["above_idle_mib"] / 1024, "target_above_idle_gib": TARGET_ABOVE_IDLE_GB,
        "codec": args.codec, "size": [W, H, FPS],
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
