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
    generated = placed(generated, *original.shape[1:3])
    hole = mask > 0.5
    box = reach(hole.any(0), dilate + 2 * feather)
    if box is None:  # no hole: nothing is pasted
        return original.clone()
    # Only the hole's surroundings can change: the dilated, feathered mask is 0 farther than dilate + feather from
    # the hole, and the blur reads feather more. So the work runs on that box (with its edges exactly as in the
    # whole frame: zeros inside the image, the image's own edge where the box reaches it), not the 1080p frame.
    y0, y1, x0, x1 = box
    o, g = original[:, y0:y1, x0:x1], generated[:, y0:y1, x0:x1].to(original.dtype)
    m = hole[:, y0:y1, x0:x1].float()
    m = dilate_masks(m, 2 * dilate + 1) if dilate > 0 else m
    if feather > 0:
        k = 2 * feather + 1
        m = kornia.filters.gaussian_blur2d(m[:, None], (k, k), (feather / 2.0, feather / 2.0), border_type="replicate",
                                              separable=False)[:, 0]  # kornia's separable path: 7x slower on CPU
    m = m.expand(t, -1, -1)[..., None].to(original.dtype)
    inside = m > 0
    bad = (inside & ~torch.isfinite(g)).any(-1)  # per pixel
    if bool(bad.any()):
        frames = torch.nonzero(bad.flatten(1).any(1)).flatten() + first_index
        raise ValueError(
            f"generated: {int(bad.sum())} NaN or infinite pixels inside the hole in {frames.numel()} frame(s) (first: "
            f"frame {int(frames[0])}); the model produced no picture there. Likely causes: fp16 overflow on "
            "CogVideoX-5B (load the backbone in bf16) or a broken checkpoint"
        )
    out = original.clone()
    out[:, y0:y1, x0:x1] = torch.where(inside, o * (1 - m) + g * m, o)
    return out


def placed(generated: Tensor, height: int, width: int) -> Tensor:
    """Generated frames ``[T, h, w, 3]`` in SOURCE coordinates ``[T, height, width, 3]``: the one place that decides
    where a generated frame goes in the source frame (today the whole frame, bicubic-resized; a crop mode puts its
    box here). Everything after it (interpolation between sampled frames, the paste) works in source coordinates."""
    if generated.shape[1:3] == (height, width):
        return generated
    return F.interpolate(generated.movedim(-1, 1), size=(height, width), mode="bicubic",
                         align_corners=False).movedim(1, -1).clamp(0, 1)


def reach(hole: Tensor, margin: int) -> tuple[int, int, int, int] | None:
    """Rows ``y0:y1`` and columns ``x0:x1`` of the box around ``hole`` ``[H, W]`` grown by ``margin`` (clipped to
    the frame); None when there is no hole."""
    rows, cols = torch.nonzero(hole.any(1)).flatten(), torch.nonzero(hole.any(0)).flatten()
    if rows.numel() == 0:
        return None
    h, w = hole.shape
    return (max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, h),
            max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, w))
