"""Generate the bundled sample clip procedurally: a coloured square gliding over a gradient, plus its mask.

    .venv/bin/python scripts/make_sample_clip.py OUT_DIR [--frames 49] [--width 96] [--height 80] [--fps 8]

Writes ``OUT_DIR/vp_sample.mp4`` (the video, H.264) and ``OUT_DIR/vp_sample_mask.mp4`` (white = the square, the
region to inpaint). Nothing binary is committed: quickstart generates the clip at run time (a few KB).
Sizes are multiples of 16 (CogVideoX: VAE factor 8 x patch 2) and the default 49 frames is one full window.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np

VIDEO_NAME = "vp_sample.mp4"
MASK_NAME = "vp_sample_mask.mp4"


def sample_frames(frames: int = 49, width: int = 96, height: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """The clip as uint8 arrays: video ``(frames, height, width, 3)`` and mask ``(frames, height, width)`` (0/255).

    The background is a horizontal colour gradient with a slowly drifting vertical band (so inpainting has
    texture to continue); the masked object is a square moving along a diagonal and bouncing at the edges.
    """
    if frames < 1 or width < 16 or height < 16:
        raise ValueError(f"need frames >= 1 and a size of at least 16x16; got {frames} frames of {width}x{height}")
    side = max(8, min(width, height) // 3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    video = np.empty((frames, height, width, 3), np.uint8)
    mask = np.zeros((frames, height, width), np.uint8)
    for t in range(frames):
        phase = t / max(frames - 1, 1)
        band = 0.5 + 0.5 * np.cos((xs / width - phase) * 2 * np.pi)
        video[t, ..., 0] = 40 + 160 * xs / width
        video[t, ..., 1] = 60 + 120 * band
        video[t, ..., 2] = 200 - 120 * ys / height
        x0 = _bounce(phase * 2.0, width - side)
        y0 = _bounce(phase * 1.3, height - side)
        video[t, y0:y0 + side, x0:x0 + side] = (230, 40, 40)
        mask[t, y0:y0 + side, x0:x0 + side] = 255
    return video, mask


def _bounce(s: float, span: int) -> int:
    """Position in [0, span] for a point moving at one span per unit of ``s`` and reflecting at both ends."""
    s = s % 2.0
    return int(round((s if s <= 1.0 else 2.0 - s) * span))


def write_mp4(path: Path, frames: np.ndarray, fps: int = 8, crf: int = 18) -> Path:
    """Encode uint8 RGB ``(T, H, W, 3)`` or gray ``(T, H, W)`` frames as H.264 yuv420p."""
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_sample_clip(out_dir: str | Path, frames: int = 49, width: int = 96, height: int = 80,
                     fps: int = 8) -> tuple[Path, Path]:
    """Write the sample video and its mask video into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    video, mask = sample_frames(frames, width, height)
    return write_mp4(out / VIDEO_NAME, video, fps), write_mp4(out / MASK_NAME, mask, fps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--height", type=int, default=80)
    ap.add_argument("--fps", type=int, default=8)
    a = ap.parse_args()
    for path in make_sample_clip(a.out_dir, a.frames, a.width, a.height, a.fps):
        print(f"{path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
