"""The VIDEO path reads a YUV file's pixels as the running host's own reader does (Load Video -> Get Video
Components): ComfyUI 0.3.75 converts through rgb24, 0.2x through 32-bit float RGB, and the two differ by up to
~80/255 at sharp chroma edges. Checked against the host itself on yuv420p (a width that is and one that is not a
multiple of 32, which core pads) and yuv444p. RGB files (lossless bgr0 FFV1) keep their bytes exactly on every
host, even where core's float read is up to 1/255 off."""
from __future__ import annotations

import io

import av
import numpy as np
import pytest
from comfy_api.v0_0_2 import InputImpl

from videopainter.vp_core.video import video_io


def _clip(width: int, height: int, pix_fmt: str, frames: int = 3) -> bytes:
    y, x = np.mgrid[0:height, 0:width]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=8)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        for t in range(frames):  # hard red/green/blue edges that move: chroma conversion shows at once
            rgb = np.stack([((x + 3 * t) % 10 < 5) * 255, ((y + t) % 6 < 3) * 230, (x * 7 + y) % 256], -1)
            for packet in s.encode(av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return buf.getvalue()


def _read(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    core = InputImpl.VideoFromFile(io.BytesIO(data)).get_components().images.float().numpy() * 255.0
    ours = video_io.FileSource(io.BytesIO(data), 1, 0, 0, (0.0, 0.0), "video").read(0, 3).numpy()
    return ours, core


@pytest.mark.parametrize("width,pix_fmt", [(64, "yuv420p"), (90, "yuv420p"), (64, "yuv444p")])
def test_streamed_yuv_frames_are_the_hosts_own_pixels(width, pix_fmt):
    ours, core = _read(_clip(width, 48, pix_fmt))
    assert ours.shape == core.shape == (3, 48, width, 3)
    # our uint8 is the host's conversion rounded: never more than half a step from core's float IMAGE
    assert np.abs(ours.astype(np.float32) - core).max() <= 0.5 + 1e-3


def test_streamed_rgb_frames_are_the_files_bytes():
    data = _clip(90, 48, "bgr0")
    ours, core = _read(data)
    with av.open(io.BytesIO(data)) as c:
        exact = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert np.array_equal(ours, exact)
    assert np.abs(ours.astype(np.float32) - core).max() < 1.5  # core: the same bytes, or (0.2x) about 1/255 off


def test_the_host_is_asked_once_and_answers_consistently():
    video_io.host_reads_in_float.cache_clear()
    first = video_io.host_reads_in_float()
    assert video_io.host_reads_in_float() is first and video_io.host_reads_in_float.cache_info().hits == 1
