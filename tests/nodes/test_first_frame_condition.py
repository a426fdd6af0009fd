"""What conditions the video on frame 0, through the Encode and Sampler nodes on the tiny demo weights: without a
first frame the original pixels inside frame 0's hole reach nothing (documented fallback: frame 0 is a hole, zero
image latent, a warning naming the remedy); with one and ``first_frame_gt`` they do. Also the sampler's
``replace_gt`` / ``mask_add`` inputs and the encoder's frame-rate rule.

Sampler runs are 1 step on 9 frames at 80x96 (one window, 3 latents), as in ``test_model_nodes.py``.
"""
from __future__ import annotations

import logging

import pytest
import torch

from videopainter.nodes import encode, loaders, sampler
from videopainter.vp_core.pipeline import preprocess

from vp_node_helpers import run

FRAMES = 9


@pytest.fixture(scope="module")
def model(loaded):
    (out,) = run(loaders.VideoPainterApplyBranch, model=loaded.model, branch=loaded.branch)
    return out


@pytest.fixture(scope="module")
def clip(clip_tensors):
    """9 frames and masks, plus the same clip with only the pixels inside frame 0's hole replaced (by noise)."""
    video, mask = clip_tensors
    video, mask = video[:FRAMES].clone(), mask[:FRAMES].clone()
    hole0 = mask[0] > 0.5
    assert 0 < int(hole0.sum()) < hole0.numel()
    other = video.clone()
    noise = torch.rand(other[0].shape, generator=torch.Generator().manual_seed(3))
    other[0][hole0] = noise[hole0]
    assert not torch.equal(other, video) and torch.equal(other[0][~hole0], video[0][~hole0])
    assert torch.equal(other[1:], video[1:])
    return video, other, mask


def encoded(video, mask, **given):
    return run(encode.VideoPainterEncode, video=video, mask=mask, width=80, height=96, source_fps=0.0, **given)[0]


def sampled(loaded, model, inpaint, **given) -> torch.Tensor:
    latent, _ = run(sampler.VideoPainterSampler, model=model, vae=loaded.vae, inpaint=inpaint, positive=loaded.positive,
                    negative=loaded.negative, seed=7, steps=1, window_frames=FRAMES, overlap_frames=1,
                    window_mode="fixed", **given)
    return latent["samples"]


# ------------------------------------------------------------------------------------------ the hole of frame 0


def test_without_a_first_frame_the_hole_pixels_of_frame_0_change_nothing(loaded, model, clip, caplog):
    video, other, mask = clip
    with caplog.at_level(logging.WARNING):
        job = encoded(video, mask)
    assert "no first_frame given" in caplog.text and "FLUX Fill" in caplog.text and "first_frame_gt is ignored" in caplog.text
    assert job.pipeline.image is None  # zero image latent
    assert bool((job.pipeline.masks[0] > 0).any()), "frame 0 must stay a hole without a first frame"
    assert torch.equal(sampled(loaded, model, job), sampled(loaded, model, encoded(other, mask)))


def test_with_that_frame_as_first_frame_and_first_frame_gt_the_hole_pixels_matter(loaded, model, clip):
    video, other, mask = clip
    a = sampled(loaded, model, encoded(video, mask, first_frame=video[:1], first_frame_gt=True))
    b = sampled(loaded, model, encoded(other, mask, first_frame=other[:1], first_frame_gt=True))
    assert not torch.allclose(a, b)


def test_first_frame_gt_off_without_first_frame_is_the_same_fallback_and_only_informs(clip, caplog):
    video, _, mask = clip
    with caplog.at_level(logging.INFO):
        off = encoded(video, mask, first_frame_gt=False)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "first_frame" in r.getMessage()]
    assert "unless an id_state from an earlier part is given" in caplog.text
    on = encoded(video, mask, first_frame_gt=True)
    assert off.pipeline.image is None and torch.equal(off.pipeline.masks, on.pipeline.masks)
    assert torch.equal(off.pipeline.video, on.pipeline.video)


def test_first_frame_inputs_never_passes_the_hole_pixels_on():
    """The decision itself (vp_core): 0/255 pixels, hole in frame 0, no first frame."""
    video = torch.full((3, 8, 8, 3), 200, dtype=torch.uint8)
    hole = torch.zeros(3, 8, 8, dtype=torch.uint8)
    hole[:, 2:5, 2:5] = 255
    pipe = preprocess.first_frame_inputs(video, hole, None, 0, first_frame_gt=True)
    assert pipe.image is None
    assert torch.equal(pipe.masks, hole)  # frame 0 keeps its mask
    assert int(pipe.video[0][2:5, 2:5].max()) == 0 and int(pipe.video[0][0, 0].min()) == 200
    given = preprocess.first_frame_inputs(video, hole, video[0], 0, first_frame_gt=True)
    assert torch.equal(given.image, video[0]) and int(given.masks[0].max()) == 0


# ------------------------------------------------------------------------------------------ replace_gt, mask_add


@pytest.mark.parametrize("name", ["replace_gt", "mask_add"])
def test_turning_off_replace_gt_or_mask_add_changes_the_output(loaded, model, clip, name):
    video, _, mask = clip
    job = encoded(video, mask, first_frame=video[:1])
    default = sampled(loaded, model, job)
    assert torch.equal(default, sampled(loaded, model, job, **{name: True}))  # default on, as the reference
    assert not torch.allclose(default, sampled(loaded, model, job, **{name: False}))


def test_replace_gt_and_mask_add_are_optional_inputs_defaulting_on():
    inputs = {i.id: i for i in sampler.VideoPainterSampler.define_schema().inputs}
    for name in ("replace_gt", "mask_add"):
        assert inputs[name].optional and inputs[name].default is True


# ------------------------------------------------------------------------------------------ frame-rate rule


@pytest.mark.parametrize("fps, reference, exact", [
    (23.976, 3, 2), (24.0, 3, 3), (29.97, 3, 3), (25.0, 3, 3), (59.94, 7, 7), (15.9, 2, 1), (7.0, 1, 1), (0.0, 1, 1),
])
def test_frame_step_rules(fps, reference, exact):
    assert preprocess.frame_step(fps, 8.0, "reference") == reference
    assert preprocess.frame_step(fps, 8.0, "float") == exact
    assert preprocess.frame_step(fps, 8.0) == reference  # the default is the reference's rule


def test_frame_step_refuses_an_unknown_rule():
    with pytest.raises(ValueError, match=r"^fps_rule: expected one of reference, float; got 'nearest'"):
        preprocess.frame_step(24.0, 8.0, "nearest")


def test_encoder_fps_rule_decides_the_kept_frames_and_logs_rule_and_step(clip_tensors, caplog):
    video, mask = clip_tensors  # 40 frames
    with caplog.at_level(logging.INFO):
        _, frames, _, fps, _info = run(encode.VideoPainterEncode, video=video, mask=mask, width=80, height=96,
                                source_fps=23.976, first_frame=video[:1])
    assert frames.shape[0] == 14 and fps == pytest.approx(23.976 / 3)  # frames 0, 3, ..., 39
    assert "fps_rule reference" in caplog.text and "step 3" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _, frames, *_ = run(encode.VideoPainterEncode, video=video, mask=mask, width=80, height=96,
                              source_fps=23.976, fps_rule="float", first_frame=video[:1])
    assert frames.shape[0] == 20 and "fps_rule float" in caplog.text and "step 2" in caplog.text
