"""Pixel-exact background: paste the original frames back outside the (dilated, feathered) hole (§9 item 11)."""
from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from .crop import CropPlan
from .preprocess import dilate as dilate_masks


def resize_frames(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """``[n, h, w, 3]`` floats in [0, 1] -> ``[n, *size, 3]``, bicubic (antialiased when shrinking), clamped."""
    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    shrink = size[0] < frames.shape[1] or size[1] < frames.shape[2]
    return F.interpolate(frames.movedim(-1, 1), size=size, mode="bicubic", align_corners=False,
                         antialias=shrink).movedim(1, -1).clamp(0, 1)


def place(generated: Tensor, original: Tensor, crop: CropPlan | None = None, first_index: int = 0) -> Tensor:
    """Generated frames ``first_index..`` (``[n, h, w, 3]``, [0, 1]) placed into SOURCE coordinates
    ``[n, H, W, 3]``: the one place that decides where a generated frame lies in the source frame. The composite
    (``paste``), the source-rate interpolation (``source_rate``) and the IMAGE composite node all start from it.

    Full frame (``crop`` None): the whole generated frame, bicubic-resized to the source size (``original`` only
    gives the size). Crop mode: frame k's generated box is resized to the box size (bicubic) and put at the box's
    position in a copy of ``original`` (the source frames of the same times), so everything outside the box is the
    original's."""
    if crop is None:
        height, width = original.shape[1:3]
        if generated.shape[1:3] == (height, width):
            return generated
        return F.interpolate(generated.movedim(-1, 1), size=(height, width), mode="bicubic",
                             align_corners=False).movedim(1, -1).clamp(0, 1)
    if tuple(original.shape[1:3]) != tuple(crop.source):
        raise ValueError(f"original is {tuple(original.shape[1:3])} (HxW) but the crop box was planned on "
                         f"{tuple(crop.source)}: give the frames of the clip that was encoded")
    boxes = resize_frames(generated.to(original.dtype), crop.size)
    out = original.clone()
    for i in range(out.shape[0]):
        top, left, h, w = crop.box(first_index + i)
        out[i, top:top + h, left:left + w] = boxes[i]
    return out


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
    generated = place(generated, original)
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


def reach(hole: Tensor, margin: int) -> tuple[int, int, int, int] | None:
    """Rows ``y0:y1`` and columns ``x0:x1`` of the box around ``hole`` ``[H, W]`` grown by ``margin`` (clipped to
    the frame); None when there is no hole."""
    rows, cols = torch.nonzero(hole.any(1)).flatten(), torch.nonzero(hole.any(0)).flatten()
    if rows.numel() == 0:
        return None
    h, w = hole.shape
    return (max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, h),
            max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, w))
