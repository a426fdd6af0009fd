"""The first frame is placed like the clip's frame 0 (vp_core.pipeline.preprocess.frame_geometry), on the IMAGE-batch path and
on the VIDEO path: cut exactly like the video at the source size, kept as the working view at the working size,
cut-then-resized at another size of the clip's aspect, refused at another aspect."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from videopainter.vp_core.pipeline import clip_inputs, preprocess

import make_sample_clip  # noqa: E402

T, H, W = 4, 60, 120  # source 2:1; the working size 48x32 is 3:2, so center_crop keeps the middle 90x60
WORK = dict(width=48, height=32)
CROP = (0, 15, 60, 90)  # top, left, height, width


class FileVideo:
    """The part of core's VIDEO the encoder uses: a file to stream from."""

    def __init__(self, path: Path):
        self.path = str(path)

    def get_stream_source(self):
        return self.path


def ramp_frames() -> np.ndarray:
    """Red = column, green = row: any horizontal stretch or shift of a frame changes its pixels."""
    x = np.linspace(0, 255, W).round().astype(np.uint8)
    y = np.linspace(0, 255, H).round().astype(np.uint8)
    frame = np.stack([np.broadcast_to(x, (H, W)), np.broadcast_to(y[:, None], (H, W)), np.full((H, W), 90, np.uint8)], -1)
    return np.repeat(frame[None], T, axis=0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("geometry")
    video = ramp_frames()
    mask = np.zeros((T, H, W), np.uint8)
    mask[:, 20:40, 50:70] = 255
    return video, mask, make_sample_clip.write_mp4(d / "v.mkv", video, 8, codec="ffv1"), \
        make_sample_clip.write_mp4(d / "m.mkv", mask, 8, codec="ffv1")


def encode(clip, path: str, first: torch.Tensor | None, resize_mode: str = "center_crop"):
    video, mask, vpath, mpath = clip
    common = dict(dilate_size=0, first_frame_gt=True, resize_mode=resize_mode, **WORK)
    if path == "video":
        return clip_inputs.prepare(FileVideo(vpath), FileVideo(mpath), first, clip_inputs.ClipSettings(), **common)
    images, masks = torch.from_numpy(video).float() / 255.0, torch.from_numpy(mask).float() / 255.0
    return clip_inputs.prepare(images, masks, first, clip_inputs.ClipSettings(8.0, 8.0), **common)


def as_image(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(frame)).float()[None] / 255.0


def lanczos(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.array(Image.fromarray(frame).resize((width, height), Image.LANCZOS))


def test_geometry_of_center_crop_and_stretch():
    g = preprocess.frame_geometry(H, W, resize_mode="center_crop", **WORK)
    assert (g.crop, g.size, g.crops) == (CROP, (60, 90), True)
    s = preprocess.frame_geometry(H, W, resize_mode="stretch", **WORK)
    assert (s.crop, s.crops) == ((0, 0, H, W), False)
    tall = preprocess.frame_geometry(100, 60, resize_mode="center_crop", **WORK)
    assert tall.crop == (30, 0, 40, 60)
    with pytest.raises(ValueError, match="resize_mode: expected one of stretch, center_crop; got 'zoom'"):
        preprocess.frame_geometry(H, W, resize_mode="zoom", **WORK)


@pytest.mark.parametrize("path", ["batch", "video"])
def test_source_size_first_frame_is_cut_exactly_like_the_video(clip, path):
    """FLUX Fill's output on the full-size frame 0: after the crop it is frame 0 of the clip, pixel for pixel."""
    video = clip[0]
    job = encode(clip, path, as_image(video[0]))
    top, left, h, w = CROP
    assert job.pipeline.image.shape == (h, w, 3)
    assert torch.equal(job.pipeline.image, torch.from_numpy(video[0, top:top + h, left:left + w]))
    assert torch.equal(job.pipeline.image, next(preprocess.frames_and_holes(job, [0]))[0])  # the frame the composite uses


@pytest.mark.parametrize("path", ["batch", "video"])
def test_working_size_first_frame_is_not_cut_again(clip, path, caplog):
    top, left, h, w = CROP
    working_view = lanczos(clip[0][0, top:top + h, left:left + w], 48, 32)  # already cut and resized
    with caplog.at_level(logging.INFO):
        job = encode(clip, path, as_image(working_view))
    assert torch.equal(job.pipeline.image, torch.from_numpy(lanczos(working_view, w, h)))
    assert "first_frame is at the working size 48x32 (WxH)" in caplog.text
    stretched = encode(clip, path, as_image(working_view), resize_mode="stretch")  # stretch: the whole frame
    assert torch.equal(stretched.pipeline.image, torch.from_numpy(lanczos(working_view, W, H)))


@pytest.mark.parametrize("path", ["batch", "video"])
def test_smaller_first_frame_of_the_clips_aspect_is_cut_then_resized(clip, path, caplog):
    top, left, h, w = CROP
    half = lanczos(clip[0][0], W // 2, H // 2)
    with caplog.at_level(logging.WARNING):
        job = encode(clip, path, as_image(half))
    assert "first_frame is 60x30 (WxH) but the video is 120x60: cropping it like the video and resizing it" in caplog.text
    want = clip[0][0, top:top + h, left:left + w].astype(int)
    got = job.pipeline.image.numpy().astype(int)
    assert np.abs(got - want)[..., 0].mean() < 3  # the columns line up (a stretch would be off by up to 25 levels)
    stretched = lanczos(half, w, h).astype(int)  # the old behaviour: the whole frame squeezed into the crop
    assert np.abs(stretched - want)[..., 0].mean() > 10


@pytest.mark.parametrize("path", ["batch", "video"])
@pytest.mark.parametrize("resize_mode", ["center_crop", "stretch"])
def test_first_frame_of_another_aspect_is_refused(clip, path, resize_mode):
    square = as_image(clip[0][0, :, 30:90])
    with pytest.raises(ValueError) as e:
        encode(clip, path, square, resize_mode)
    assert str(e.value).startswith(
        "first_frame is 60x60 (WxH, aspect 1.00) but the video is 120x60 (aspect 2.00; working size 48x32): the "
        "aspect ratios differ by more than 2%, so it cannot be placed on the clip's first frame without moving its "
        "content. Give the clip's first frame after the image inpainter at the video's size 120x60"), str(e.value)


def test_vae_cropped_first_frame_is_accepted():
    """Core's VAE nodes crop to multiples of 8: FLUX Fill's result on an 854x480 frame is 848x480."""
    g = preprocess.frame_geometry(480, 854, resize_mode="center_crop", width=720, height=480)
    out = g.first_frame(torch.rand(1, 480, 848, 3))
    assert tuple(out.shape) == (*g.size, 3)
