"""Pixel-exact background: paste the original frames back outside the (dilated, feathered) hole (§9 item 11)."""
from __future__ import annotations

import kornia
import torch.nn.functional as F
from torch import Tensor

from .preprocess import dilate as dilate_masks


def paste(original: Tensor, generated: Tensor, mask: Tensor, dilate: int = 16, feather: int = 8) -> Tensor:
    """``original``/``generated`` ``[T, H, W, 3]`` and ``mask`` ``[T or 1, H, W]`` in [0, 1] -> ``[T, H, W, 3]``."""
    t = min(original.shape[0], generated.shape[0])
    if original.shape[0] != generated.shape[0]:
        raise ValueError(
            f"generated has {generated.shape[0]} frames but original has {original.shape[0]}: use the Encode node's "
            "'frames' output as original and window_mode 'fixed' (same frame count in and out)"
        )
    if mask.shape[0] not in (1, t) or mask.shape[1:] != original.shape[1:3]:
        raise ValueError(f"mask is {tuple(mask.shape)}; expected [{t} or 1, {original.shape[1]}, {original.shape[2]}]")
    h, w = original.shape[1:3]
    if generated.shape[1:3] != (h, w):
        generated = F.interpolate(generated.movedim(-1, 1), size=(h, w), mode="bicubic", align_corners=False).movedim(1, -1).clamp(0, 1)
    m = dilate_masks((mask > 0.5).float(), 2 * dilate + 1) if dilate > 0 else (mask > 0.5).float()
    if feather > 0:
        k = 2 * feather + 1
        m = kornia.filters.gaussian_blur2d(m[:, None], (k, k), (feather / 2.0, feather / 2.0), border_type="replicate")[:, 0]
    m = m.expand(t, -1, -1)[..., None].to(original.dtype)
    return original * (1 - m) + generated.to(original.dtype) * m
