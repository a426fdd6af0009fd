"""VideoPainter Mask Preview: evenly spaced frames of the encoded clip, the dilated hole tinted, the rest untouched."""
from __future__ import annotations

import pytest
import torch

from videopainter.nodes import encode
from videopainter.nodes.preview import VideoPainterMaskPreview
from videopainter.vp_core.pipeline import preprocess
from videopainter.vp_core.pipeline.preview import MASK_TINT
from vp_node_helpers import CLIP_FPS, run


@pytest.fixture(scope="module")
def job(clip_tensors):
    video, mask = clip_tensors
    (inpaint, *_rest) = run(encode.VideoPainterEncode, video=video, mask=mask, width=80, height=96,
                            source_fps=CLIP_FPS, dilate=8)
    return inpaint


def test_preview_tints_exactly_the_dilated_hole_of_evenly_spaced_frames(job):
    (image,) = run(VideoPainterMaskPreview, inpaint=job, frames=4, opacity=0.5)
    total = preprocess.frame_count(job)
    assert total == 20 and image.shape == (4, 96, 80, 3) and image.dtype == torch.float32
    frames = list(preprocess.frames_and_holes(job, [0, 6, 13, 19]))  # first and last included
    for out, (frame, hole) in zip(image, frames):
        original = frame.float() / 255.0
        assert torch.equal(out[~hole], original[~hole])
        want = original[hole] * 0.5 + torch.tensor(MASK_TINT) * 0.5
        assert torch.allclose(out[hole], want)
    assert frames[0][1].any()  # no first_frame given: frame 0 is a hole (the fallback)
    assert frames[-1][1].any()


def test_more_frames_than_the_clip_shows_every_frame_once(job):
    (image,) = run(VideoPainterMaskPreview, inpaint=job, frames=64)
    assert image.shape[0] == preprocess.frame_count(job)
