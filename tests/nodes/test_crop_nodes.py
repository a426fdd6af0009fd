"""Crop mode through the nodes: the encoder's crop inputs and info output, the mask preview's box, and the first-frame
helper cropping the same box as the encoder (issue 25 item 2)."""
from __future__ import annotations

import pytest
import torch

from videopainter.nodes import encode, first_frame
from videopainter.nodes.preview import VideoPainterMaskPreview
from videopainter.vp_core.pipeline import crop, preprocess
from videopainter.vp_core.pipeline.preview import BOX_COLOUR
from vp_node_helpers import run


@pytest.fixture(scope="module")
def clip():
    g = torch.Generator().manual_seed(3)
    video = torch.rand(6, 200, 300, 3, generator=g)
    mask = torch.zeros(6, 200, 300)
    for k in range(6):
        mask[k, 90:105, 100 + 10 * k:120 + 10 * k] = 1  # 20x15 px moving 10 px a frame
    return video, mask


def encoded(clip, **kw):
    video, mask = clip
    return run(encode.VideoPainterEncode, video=video, mask=mask, width=48, height=32, source_fps=8.0, dilate=4, **kw)


def test_old_workflows_keep_the_full_frame_and_the_info_says_how_many_model_pixels(clip):
    inpaint, frames, hole, fps, info = encoded(clip)
    assert inpaint.crop is None and frames.shape == (6, 200, 300, 3)
    assert "full frame: the 300x200 frame is resized to 48x32: 0.160 model pixels per source pixel" in info


def test_crop_follow_encodes_the_box_and_keeps_the_source_frames(clip):
    inpaint, frames, hole, fps, info = encoded(clip, crop_mode=crop.FOLLOW, context_factor=1.5, context_pixels=4)
    box = inpaint.crop
    assert box is not None and box.size[1] * 2 == box.size[0] * 3 and box.size[1] < 300
    assert frames.shape == (6, 200, 300, 3) and hole.shape == (6, 200, 300)  # the composite's frames: source size
    assert (inpaint.pipeline.video.height, inpaint.pipeline.video.width) == box.size  # the model's frames: the box
    assert f"{box.scale:.3f} model pixels per source pixel" in info and box.scale > 0.16


def test_the_mask_preview_outlines_the_box(clip):
    inpaint, *_ = encoded(clip, crop_mode=crop.FIXED, context_pixels=4)
    (image,) = run(VideoPainterMaskPreview, inpaint=inpaint, frames=2, opacity=0.5)
    top, left, h, w = inpaint.crop.box(0)
    green = torch.tensor(BOX_COLOUR)
    assert (image[0, top, left:left + w] == green).all() and (image[0, top:top + h, left + w - 1] == green).all()
    assert not (image[0, top + h // 2, left + 3:left + w - 3] == green).all(-1).any()  # only the outline
    full, *_ = encoded(clip)
    (plain,) = run(VideoPainterMaskPreview, inpaint=full, frames=2, opacity=0.5)
    assert not (plain == green).all(-1).any()


def test_the_first_frame_helper_crops_the_encoders_box(clip):
    video, mask = clip
    inpaint, *_ = encoded(clip, crop_mode=crop.FOLLOW, context_pixels=4)
    image, grown = run(first_frame.VideoPainterFirstFrame, video=video, mask=mask, dilate=4, crop_from=inpaint)
    top, left, h, w = inpaint.crop.box(0)
    assert image.shape == (1, h, w, 3) and grown.shape == (1, h, w)
    assert torch.equal(image[0], preprocess.to_uint8(video[0, top:top + h, left:left + w]).float() / 255)
    assert grown[0].sum() >= 20 * 15 and grown[0, 0].sum() == 0  # the grown hole, inside the box
    # the painted box goes back into an encoder with the same settings: taken as frame 0's box
    painted = torch.full_like(image, 0.25)
    again, *_ = encoded(clip, crop_mode=crop.FOLLOW, context_pixels=4, first_frame=painted)
    assert again.crop == inpaint.crop
    assert torch.equal(again.pipeline.image, preprocess.to_uint8(painted[0]))
    with pytest.raises(ValueError, match="crop_from: this encoder already has a first_frame"):
        run(first_frame.VideoPainterFirstFrame, video=video, mask=mask, dilate=4, crop_from=again)


def test_the_image_composite_places_the_box_with_the_encoders_inpaint(clip):
    from videopainter.nodes.decode import VideoPainterComposite

    video, mask = clip
    inpaint, frames, hole, *_ = encoded(clip, crop_mode=crop.FOLLOW, context_pixels=4)
    generated = torch.ones(6, 32, 48, 3)  # the model's working-size boxes, all white
    (out,) = run(VideoPainterComposite, original=frames, generated=generated, mask=hole, dilate=2, feather=0,
                 inpaint=inpaint)
    for k in range(6):
        top, left, h, w = inpaint.crop.box(k)
        filled = out[k] != frames[k]
        rows, cols = torch.nonzero(filled.any(-1).any(1)).flatten(), torch.nonzero(filled.any(-1).any(0)).flatten()
        assert top <= rows.min() and rows.max() < top + h and left <= cols.min() and cols.max() < left + w
        assert torch.allclose(out[k][hole[k] > 0.5], torch.ones(1, 3))  # the hole is the generated box's (white)
