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
    pairs = list(iter_frames(frames, width, height))
    return np.stack([v for v, _ in pairs]), np.stack([m for _, m in pairs])


def iter_frames(frames: int, width: int, height: int):
    """``sample_frames`` one frame at a time: ``(video (H, W, 3), mask (H, W))`` uint8 pairs, for clips too long to
    hold (the streaming benchmark writes minutes of 1080p this way)."""
    if frames < 1 or width < 16 or height < 16:
        raise ValueError(f"need frames >= 1 and a size of at least 16x16; got {frames} frames of {width}x{height}")
    side = max(8, min(width, height) // 3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    for t in range(frames):
        video = np.empty((height, width, 3), np.uint8)
        mask = np.zeros((height, width), np.uint8)
        phase = t / max(frames - 1, 1)
        band = 0.5 + 0.5 * np.cos((xs / width - phase) * 2 * np.pi)
        video[..., 0] = 40 + 160 * xs / width
        video[..., 1] = 60 + 120 * band
        video[..., 2] = 200 - 120 * ys / height
        x0 = _bounce(phase * 2.0, width - side)
        y0 = _bounce(phase * 1.3, height - side)
        video[y0:y0 + side, x0:x0 + side] = (230, 40, 40)
        mask[y0:y0 + side, x0:x0 + side] = 255
        yield video, mask


def write_clip(video_path: Path, mask_path: Path, frames: int, width: int, height: int, fps: int = 30,
               codec: str = "ffv1") -> tuple[Path, Path]:
    """Write the procedural clip and its mask video frame by frame (memory flat in length): ``ffv1`` (lossless
    RGB, any container PyAV writes it to) or ``h264`` (yuv420p, crf 18)."""
    outs = []
    for path in (video_path, mask_path):
        path.parent.mkdir(parents=True, exist_ok=True)
        c = av.open(str(path), mode="w")
        s = c.add_stream("ffv1" if codec == "ffv1" else "libx264", rate=fps)
        s.width, s.height = width, height
        s.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        if codec != "ffv1":
            s.options = {"crf": "18", "preset": "veryfast"}
        s.thread_type = "AUTO"
        outs.append((c, s))
    for video, mask in iter_frames(frames, width, height):
        for (c, s), img in zip(outs, (video, np.repeat(mask[..., None], 3, -1))):
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
    for c, s in outs:
        for packet in s.encode():
            c.mux(packet)
        c.close()
    return video_path, mask_path


def _bounce(s: float, span: int) -> int:
    """Position in [0, span] for a point moving at one span per unit of ``s`` and reflecting at both ends."""
    s = s % 2.0
    return int(round((s if s <= 1.0 else 2.0 - s) * span))


def write_mp4(path: Path, frames: np.ndarray, fps: int = 8, crf: int = 18, codec: str = "h264",
              rotation: int = 0) -> Path:
    """Encode uint8 RGB ``(T, H, W, 3)`` or gray ``(T, H, W)`` frames as H.264 yuv420p, or losslessly with
    ``codec="ffv1"`` (bgr0) or ``codec="png"`` (rgb24, which every ComfyUI host's own reader returns byte for byte;
    in .mov). ``rotation``: a display rotation in degrees counter-clockwise (as phones store portrait clips; read
    back as PyAV's ``VideoFrame.rotation``), the frames stored as given."""
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec if codec in ("ffv1", "png") else "libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = {"ffv1": "bgr0", "png": "rgb24"}.get(codec, "yuv420p")
        if codec not in ("ffv1", "png"):
            stream.options = {"crf": str(crf), "preset": "medium"}
        if rotation:
            stream.set_display_rotation(rotation)
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
