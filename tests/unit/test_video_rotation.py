"""Phone clips with a display rotation (a display-matrix side datum): the streaming reader (vp_core.video.video_io) turns
their frames upright on every host, as players show them and as ComfyUI 0.2x's own reader does; the probed size is
the upright one, so it matches what read() returns; mask videos made from upright frames line up."""
from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from videopainter.vp_core.pipeline import clip_inputs

from videopainter.vp_core.video import video_io

import make_sample_clip  # noqa: E402

T, H, W = 5, 32, 48  # stored (coded) size; upright it is 32 wide and 48 high after a quarter turn
ROTATING_HOST = (0, 27)  # ComfyUI 0.27.0's reader turns frames by frame.rotation; 0.3.75's does not


def stored_frames() -> np.ndarray:
    """Frames whose every pixel differs from its mirror images and turns (red = column, green = row, blue = index)."""
    y, x = np.mgrid[0:H, 0:W]
    frames = np.stack([np.broadcast_to(x * 5, (H, W)), np.broadcast_to(y * 7, (H, W)), np.zeros((H, W))], -1)
    out = np.repeat(frames[None], T, axis=0).astype(np.uint8)
    out[..., 2] = (np.arange(T) * 40)[:, None, None]
    return out


def write_rotated(path: Path, frames: np.ndarray, degrees: int, codec: str = "png") -> Path:
    """``frames`` stored as they are, with a display matrix that rotates them ``degrees`` counter-clockwise."""
    return make_sample_clip.write_mp4(path, frames, 8, codec=codec, rotation=degrees)


def upright(frames: np.ndarray, degrees: int) -> np.ndarray:
    """What a player shows: the stored frames turned ``degrees`` counter-clockwise."""
    return np.ascontiguousarray(np.rot90(frames, k=degrees // 90, axes=(1, 2)))


class FileVideo:
    def __init__(self, path: Path):
        self.path = str(path)

    def get_stream_source(self):
        return self.path


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_pyav_writes_and_reads_back_the_display_rotation(tmp_path, degrees):
    path = write_rotated(tmp_path / "r.mov", stored_frames(), degrees)
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    assert (frame.rotation % 360, frame.width, frame.height) == (degrees % 360, W, H)  # 180 reads back as -180


@pytest.mark.parametrize("degrees", [90, -90, 180, 0])
def test_frames_are_read_upright_and_the_probe_has_the_upright_size(tmp_path, degrees):
    stored = stored_frames()
    path = write_rotated(tmp_path / "r.mov", stored, degrees)
    want = upright(stored, degrees)
    info = video_io.probe(str(path))
    assert (info.width, info.height, info.frames) == (want.shape[2], want.shape[1], T)
    src = video_io.FileSource(str(path), step=2)
    assert (src.width, src.height) == (info.width, info.height)
    assert np.array_equal(src.read(0, len(src)).numpy(), want[::2])
    assert np.array_equal(video_io.video_frame(str(path), 3).numpy(), want[3])


def test_the_encoders_video_path_is_upright_and_a_mask_of_upright_frames_lines_up(tmp_path):
    stored = stored_frames()
    shown = upright(stored, -90)  # a phone clip filmed in portrait: stored landscape, shown turned clockwise
    mask = np.zeros(shown.shape[:3], np.uint8)
    mask[:, 10:30, 4:20] = 255  # drawn on the upright frames (e.g. by an editor or SAM2 on core's upright IMAGE)
    vpath = write_rotated(tmp_path / "v.mov", stored, -90)
    mpath = make_sample_clip.write_mp4(tmp_path / "m.mkv", mask, 8, codec="ffv1")  # an upright mask video
    job = clip_inputs.prepare(FileVideo(vpath), FileVideo(mpath), None, clip_inputs.ClipSettings(8.0, 8.0),
                              width=32, height=48, dilate_size=0)
    assert (job.frames.width, job.frames.height) == (32, 48)
    assert np.array_equal(job.frames.read(0, T).numpy(), shown)
    masked = job.pipeline.video.read(0, T).numpy()
    assert (masked[mask > 0] == 0).all() and np.array_equal(masked[mask == 0], shown[mask == 0])


@pytest.mark.parametrize("codec", ["png", "h264"])
def test_the_video_path_equals_core_get_video_components_on_a_rotating_host(tmp_path, codec):
    """On ComfyUI 0.27 core's own reader turns the frames the same way (IMAGE path == VIDEO path); 0.3.75's reader
    returns them as stored (documented in the README)."""
    from comfy_api.v0_0_2 import InputImpl
    import comfyui_version

    stored = stored_frames()
    path = write_rotated(tmp_path / f"r.{'mov' if codec == 'png' else 'mp4'}", stored, 90, codec)
    core = InputImpl.VideoFromFile(str(path)).get_components().images
    ours = clip_inputs.prepare(FileVideo(path), torch.zeros(1, W, H), None, clip_inputs.ClipSettings(8.0, 8.0),
                               width=32, height=48, dilate_size=0).frames
    got = ours.read(0, len(ours)).float() / 255.0
    host = tuple(int(p) for p in comfyui_version.__version__.split(".")[:2])
    tolerance = 0 if codec == "png" else 1 / 510 + 1e-6  # yuv: the host's float conversion, rounded to uint8
    if host >= ROTATING_HOST:
        assert core.shape == got.shape == (T, W, H, 3)
        assert (core - got).abs().max().item() <= tolerance
    else:  # 0.3.75: core's IMAGE is the stored orientation, ours upright
        assert core.shape == (T, H, W, 3) and got.shape == (T, W, H, 3)
        assert (core - torch.rot90(got, k=-1, dims=(1, 2))).abs().max().item() <= tolerance
