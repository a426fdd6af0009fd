"""The streaming path does not hold the clip: the same chain on a 540p clip 4x longer peaks at the same host
memory (each length in a fresh process; ru_maxrss), with the output at the source rate (every source frame).
Holding the sampled clip as float32 (what the IMAGE path does) would add about 6 MB per sampled 540p frame:
~370 MB between these lengths, far above the bound."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import make_sample_clip

HERE = Path(__file__).resolve().parent
W, H, FPS = 960, 540, 30
SHORT, LONG = 60, 240  # source frames: 20 and 80 sampled frames (2 and 5 windows of 17)
BOUND = 1.10  # long / short peak


def probe(tmp: Path, frames: int, *extra: str) -> dict:
    v, m = make_sample_clip.write_clip(tmp / f"v{frames}.mkv", tmp / f"m{frames}.mkv", frames, W, H, FPS)
    out = subprocess.run([sys.executable, str(HERE / "stream_probe.py"), str(v), str(m), str(tmp / f"o{frames}.mp4"), *extra],
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_is_flat_in_clip_length(tmp_path):
    short, long = probe(tmp_path, SHORT), probe(tmp_path, LONG)
    assert short["streamed"] and (short["frames"], long["frames"]) == (20, 80)
    # the encoder's default output_rate 'source': every source frame is written (interpolated between sampled ones)
    assert (short["output_frames"], long["output_frames"], long["output_fps"]) == (SHORT, LONG, FPS)
    ratio = long["peak_rss"] / short["peak_rss"]
    report = f"peak RSS {short['peak_rss'] / 2**20:.0f} MB -> {long['peak_rss'] / 2**20:.0f} MB (x{ratio:.3f})"
    print(report)
    assert ratio <= BOUND, report
