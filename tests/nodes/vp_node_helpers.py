"""Helpers shared by the node tests (a plain module: ``conftest`` is not importable by name across test dirs)."""
from __future__ import annotations

import av
import numpy as np

SECOND_STYLE_LORA = "videopainter_demo_style_b.safetensors"
CLIP_FRAMES, CLIP_FPS = 40, 16.0  # down-sampled to 8 fps by the Encode node: 20 frames, two 17-frame windows


def node_kwargs(node_cls, **given):
    """The node's schema defaults overridden by ``given``: calls keep working when inputs with defaults are added."""
    kwargs = {i.id: i.default for i in node_cls.define_schema().inputs if getattr(i, "default", None) is not None}
    kwargs.update(given)
    return kwargs


def run(node_cls, **given):
    """``node_cls.execute`` with schema defaults; returns the outputs tuple."""
    return node_cls.execute(**node_kwargs(node_cls, **given)).result


class FileVideo:
    """The part of core's VIDEO the pack reads: a file to stream from (``get_stream_source``)."""

    def __init__(self, path):
        self.path = str(path)

    def get_stream_source(self):
        return self.path


def write_ffv1(path, frames: np.ndarray, fps: int, audio: bool = False):
    """Frames (``[T, H, W, 3]`` RGB or ``[T, H, W]`` masks, uint8) as a lossless FFV1 file; ``audio``: a tone as
    long as the video."""
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, -1)
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        a = c.add_stream("aac", rate=16000, layout="mono") if audio else None
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if a is not None:
            tone = (0.2 * np.sin(np.arange(16000 * len(frames) // fps) / 5)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            frame.sample_rate, frame.pts = 16000, 0
            for p in list(a.encode(frame)) + list(a.encode(None)):
                c.mux(p)
    return path
