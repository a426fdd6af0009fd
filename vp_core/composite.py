"""Pixel-exact background: paste the original frames back outside the (dilated, feathered) hole (§9 item 11)."""
from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from .preprocess import dilate as dilate_masks


def paste(original: Tensor, generated: Tensor, mask: Tensor, dilate: int = 16, feather: int = 8,
          first_index: int = 0) -> Tensor:
    """``original``/``generated`` ``[T, H, W, 3]`` and ``mask`` ``[T or 1, H, W]`` in [0, 1] -> ``[T, H, W, 3]``.

    Outside the pasted region the original is *selected*, not multiplied by 0, so NaN or infinite generated pixels
    can never reach the background; non-finite pixels inside it are an error (``first_index``: the number of the
    first frame, for the message when frames are composited a chunk at a time).
    """
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
    generated = generated.to(original.dtype)
    inside = m > 0
    bad = (inside & ~torch.isfinite(generated)).any(-1)  # per pixel
    if bool(bad.any()):
        frames = torch.nonzero(bad.flatten(1).any(1)).flatten() + first_index
        raise ValueError(
            f"generated: {int(bad.sum())} NaN or infinite pixels inside the hole in {frames.numel()} frame(s) (first: "
            f"frame {int(frames[0])}); the model produced no picture there. Likely causes: fp16 overflow on "
            "CogVideoX-5B (load the backbone in bf16) or a broken checkpoint"
        )
    return torch.where(inside, original * (1 - m) + generated * m, original)
