"""The composite works on the box around the hole only; it must give what the same steps give on the whole frame
(the literal form below is the oracle), with the background outside the pasted region bit for bit the original."""
from __future__ import annotations

import kornia
import pytest
import torch
import torch.nn.functional as F

from videopainter.vp_core.pipeline import composite
from videopainter.vp_core.pipeline.preprocess import dilate as dilate_masks


def whole_frame_paste(original, generated, mask, dilate, feather):
    h, w = original.shape[1:3]
    generated = F.interpolate(generated.movedim(-1, 1), size=(h, w), mode="bicubic", align_corners=False).movedim(1, -1).clamp(0, 1)
    m = (mask > 0.5).float()
    m = dilate_masks(m, 2 * dilate + 1) if dilate > 0 else m
    if feather > 0:
        k = 2 * feather + 1
        m = kornia.filters.gaussian_blur2d(m[:, None], (k, k), (feather / 2.0, feather / 2.0), border_type="replicate")[:, 0]
    m = m.expand(original.shape[0], -1, -1)[..., None]
    return torch.where(m > 0, original * (1 - m) + generated * m, original)


def holes(kind: str, t: int, h: int, w: int) -> torch.Tensor:
    m = torch.zeros(t, h, w)
    if kind == "middle":
        m[:, 40:60, 50:70] = 1
    elif kind == "corner":  # the box reaches two edges of the frame
        m[:, :10, -8:] = 1
    elif kind == "per_frame":  # a different hole in every frame, one frame without any
        for i in range(t - 1):
            m[i, 10 + 9 * i: 20 + 9 * i, 5 + 17 * i: 30 + 17 * i] = 1
    elif kind == "full":
        m[:] = 1
    elif kind == "single":  # one mask for every frame
        m = m[:1]
        m[:, 70:75, 3:9] = 1
    return m


@pytest.mark.parametrize("kind", ["middle", "corner", "per_frame", "full", "single", "none"])
@pytest.mark.parametrize("dilate,feather", [(16, 8), (3, 0), (0, 5)])
def test_box_paste_equals_the_whole_frame_paste(kind, dilate, feather):
    g = torch.Generator().manual_seed(0)
    t, h, w = 4, 90, 120
    original = torch.rand(t, h, w, 3, generator=g)
    generated = torch.rand(t, 24, 32, 3, generator=g)
    mask = holes(kind, t, h, w)
    got = composite.paste(original, generated, mask, dilate, feather)
    want = whole_frame_paste(original, generated, mask, dilate, feather)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-6, rtol=0)
    same = want == original
    assert torch.equal(got[same], original[same])  # the background is the original, bit for bit
    if kind == "none":
        assert torch.equal(got, original)


def test_the_oracle_sees_a_box_too_small():
    """The comparison can fail: cutting the box at the hole's edge (no room for dilation and blur) differs."""
    g = torch.Generator().manual_seed(1)
    original, generated = torch.rand(1, 90, 120, 3, generator=g), torch.rand(1, 24, 32, 3, generator=g)
    mask = holes("middle", 1, 90, 120)
    reach = composite.reach
    try:
        composite.reach = lambda hole, margin: reach(hole, 0)
        cut = composite.paste(original, generated, mask, 16, 8)
    finally:
        composite.reach = reach
    assert not torch.allclose(cut, whole_frame_paste(original, generated, mask, 16, 8), atol=1e-3)
