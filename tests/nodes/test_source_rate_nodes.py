"""Output at the source's rate through the VIDEO path (issue 25 item 1; ``execute`` called directly, demo weights,
1 step): a 30 fps clip with a moving textured background and a moving object comes back with the source's frame
count, rate, duration and audio, and the source's bytes outside the dilated hole on EVERY frame; 'sampled' keeps
the old output; another node's frames at the source rate (an IMAGE batch) are used as they are."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from videopainter.nodes import encode, sampler, video
from videopainter.vp_core.pipeline import composite

from vp_node_helpers import FileVideo, run, write_ffv1

W, H, FPS, FRAMES = 320, 240, 30, 60  # 2 s; step 3 at target 8 fps -> 20 sampled frames at 10 fps
DILATE, FEATHER, ENC_DILATE = 4, 2, 5


def clip() -> tuple[np.ndarray, np.ndarray]:
    """A textured background panning 2 px/frame and a textured 60x48 object moving 3 px/frame right, 1 down."""
    rng = np.random.default_rng(5)
    bg = (rng.random((H, W + 2 * FRAMES, 3)) * 255).astype(np.uint8)
    obj = (rng.random((48, 60, 3)) * 255).astype(np.uint8)
    frames, masks = np.empty((FRAMES, H, W, 3), np.uint8), np.zeros((FRAMES, H, W), np.uint8)
    for t in range(FRAMES):
        frames[t] = bg[:, 2 * t:2 * t + W]
        y, x = 60 + t, 40 + 3 * t
        frames[t, y:y + 48, x:x + 60] = obj
        masks[t, y:y + 48, x:x + 60] = 255
    return frames, masks


def write(path, frames: np.ndarray, audio: bool = False):
    return write_ffv1(path, frames, FPS, audio)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("source_rate")
    v, m = clip()
    return v, m, write(d / "v.mkv", v, audio=True), write(d / "m.mkv", m)


def encode_and_sample(loaded, files, **enc):
    v, m, vpath, mpath = files
    job, *_ = run(encode.VideoPainterEncode, video=FileVideo(vpath), mask=FileVideo(mpath), width=80, height=96,
                  source_fps=0.0, target_fps=8.0, dilate=ENC_DILATE, **enc)
    (model,) = run(__import__("videopainter.nodes.loaders", fromlist=["x"]).VideoPainterApplyBranch,
                   model=loaded.model, branch=loaded.branch)
    latent, _ = run(sampler.VideoPainterSampler, model=model, vae=loaded.vae, inpaint=job, positive=loaded.positive,
                    negative=loaded.negative, seed=7, steps=1, window_frames=17, overlap_frames=1, window_mode="fixed")
    return job, latent


def decode_file(path) -> tuple[np.ndarray, float, float, float | None]:
    """Frames, video rate, video duration (s) and audio duration (s) of a written file."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        rate = float(vs.average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        audio = None
        if c.streams.audio:
            s = c.streams.audio[0]
            pk = [p for p in c.demux(s) if p.pts is not None]
            audio = float((pk[-1].pts + pk[-1].duration - pk[0].pts) * s.time_base)
    return frames, rate, len(frames) / rate, audio


def outside_dilated_hole(m: np.ndarray) -> np.ndarray:
    grown = composite.dilate_masks(torch.from_numpy(m > 127).to(torch.uint8) * 255, 2 * (DILATE + FEATHER + 1) + 1)
    return ~(grown > 0).numpy()


@pytest.mark.parametrize("crop_mode", ["full frame", "crop follow"])
def test_every_source_frame_at_the_source_rate_with_the_exact_background(loaded, files, tmp_path, crop_mode):
    """Also in crop mode: the generated boxes are placed where the encoder cut them before the in-between frames are
    interpolated (composite.place), and every frame keeps the source's bytes outside its own dilated hole."""
    v, m, _, _ = files
    job, latent = encode_and_sample(loaded, files, crop_mode=crop_mode, context_pixels=8)
    assert (job.crop is not None) == (crop_mode != "full frame")
    assert job.frame_count == 20 and job.fps == 10.0 and len(job.source) == FRAMES
    (gen,) = run(video.VideoPainterDecodeVideo, vae=loaded.vae, latent=latent, codec="ffv1")
    (out,) = run(video.VideoPainterCompositeVideo, inpaint=job, generated=gen, dilate=DILATE, feather=FEATHER, codec="ffv1")
    assert out.get_dimensions() == (W, H) and out.get_frame_count() == FRAMES and out.get_frame_rate() == FPS
    assert out.get_duration() == pytest.approx(2.0)
    out.save_to(str(tmp_path / "out.mp4"))
    got, rate, duration, audio = decode_file(tmp_path / "out.mp4")
    assert got.shape == v.shape and rate == FPS and duration == pytest.approx(2.0)
    assert audio is not None and abs(audio - 2.0) < 0.07  # the source's audio, whole (aac packets of 64 ms)
    outside = outside_dilated_hole(m)
    differ = [int((got[t][outside[t]] != v[t][outside[t]]).sum()) for t in range(FRAMES)]
    assert differ == [0] * FRAMES  # the source's bytes outside the dilated hole, on every frame
    inside = m > 127
    assert all((got[t][inside[t]] != v[t][inside[t]]).any() for t in range(FRAMES))  # the hole is filled everywhere


def test_sampled_output_rate_keeps_the_sampled_frames(loaded, files, tmp_path):
    job, latent = encode_and_sample(loaded, files, output_rate="sampled")
    assert job.source is None
    (gen,) = run(video.VideoPainterDecodeVideo, vae=loaded.vae, latent=latent, codec="ffv1")
    (out,) = run(video.VideoPainterCompositeVideo, inpaint=job, generated=gen, dilate=DILATE, feather=FEATHER, codec="ffv1")
    assert out.get_frame_count() == 20 and out.get_frame_rate() == 10 and out.get_duration() == pytest.approx(2.0)


def test_frames_at_the_source_rate_from_another_node_are_used_as_they_are(files, tmp_path):
    """An interpolator's IMAGE batch ((20 - 1) * 3 + 1 = 58 frames at the working size): frame j fills the hole of
    source frame j; the two source frames after the last sampled one carry the last frames' (zero) motion on."""
    v, m, vpath, mpath = files
    job, *_ = run(encode.VideoPainterEncode, video=FileVideo(vpath), mask=FileVideo(mpath), width=80, height=96,
                  source_fps=0.0, target_fps=8.0, dilate=ENC_DILATE)
    levels = torch.arange(58, dtype=torch.float32) * 4 / 255.0
    images = levels[:, None, None, None].expand(58, 96, 80, 3).clone()
    (out,) = run(video.VideoPainterCompositeVideo, inpaint=job, generated=images, dilate=DILATE, feather=FEATHER,
                 codec="ffv1")
    assert out.get_frame_count() == FRAMES
    frames = out.get_components().images
    for t in (0, 1, 2, 30, 57, 58, 59):  # the middle of the object: deep inside the hole
        y, x = 60 + t + 24, 40 + 3 * t + 30
        assert round(float(frames[t, y, x, 0]) * 255) == 4 * min(t, 57), t
    with pytest.raises(ValueError, match=r"generated has 30 frames; this clip has 20 sampled frames \(step 3\) and 60 "
                                         r"source frames"):
        run(video.VideoPainterCompositeVideo, inpaint=job, generated=images[:30], dilate=DILATE, feather=FEATHER)


def test_center_crop_crops_every_source_frame_like_the_sampled_ones(files):
    v, m, vpath, mpath = files
    job, *_ = run(encode.VideoPainterEncode, video=FileVideo(vpath), mask=FileVideo(mpath), width=96, height=96,
                  source_fps=0.0, target_fps=8.0, dilate=ENC_DILATE, resize_mode="center_crop")
    from videopainter.vp_core.video import video_io

    assert video_io.frame_size(job.source.frames) == video_io.frame_size(job.frames) == (240, 240)
    crop = (W - 240) // 2
    assert torch.equal(video_io.read_frames(job.source.frames, 4, 5)[0], torch.from_numpy(v[4, :, crop:crop + 240]))
    (out,) = run(video.VideoPainterCompositeVideo, inpaint=job, generated=torch.zeros(20, 96, 96, 3), dilate=DILATE,
                 feather=FEATHER)
    assert out.get_dimensions() == (240, 240) and out.get_frame_count() == FRAMES


def test_frames_at_the_source_rate_in_crop_mode_need_a_box_that_does_not_move(files):
    """An interpolator's frames between two sampled frames have no box of their own: with 'crop fixed' they take
    the clip's one box; with 'crop follow', whose box moves with the object, they are refused, naming the remedy."""
    v, m, vpath, mpath = files
    levels = torch.arange(58, dtype=torch.float32) * 4 / 255.0
    images = levels[:, None, None, None].expand(58, 96, 80, 3).clone()
    fixed, *_ = run(encode.VideoPainterEncode, video=FileVideo(vpath), mask=FileVideo(mpath), width=80, height=96,
                    source_fps=0.0, target_fps=8.0, dilate=ENC_DILATE, crop_mode="crop fixed", context_pixels=8)
    (out,) = run(video.VideoPainterCompositeVideo, inpaint=fixed, generated=images, dilate=DILATE, feather=FEATHER,
                 codec="ffv1")
    frames = out.get_components().images
    for t in (0, 1, 30, 57):
        y, x = 60 + t + 24, 40 + 3 * t + 30
        assert round(float(frames[t, y, x, 0]) * 255) == 4 * t, t
    follow, *_ = run(encode.VideoPainterEncode, video=FileVideo(vpath), mask=FileVideo(mpath), width=80, height=96,
                     source_fps=0.0, target_fps=8.0, dilate=ENC_DILATE, crop_mode="crop follow", context_pixels=8)
    (out,) = run(video.VideoPainterCompositeVideo, inpaint=follow, generated=images, dilate=DILATE, feather=FEATHER,
                 codec="ffv1")
    with pytest.raises(ValueError, match="the crop box moves between sampled frames"):
        out.get_components()
