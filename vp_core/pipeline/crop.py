"""Crop to the mask: the model sees a box around the hole instead of the whole frame (issue 25, item 2).

The box is ONE size for the whole clip, of the working aspect exactly (720x480 -> 3:2, so the resize to the working
size never stretches), so every window and every carried latent (ID state, chained parts) sees the same geometry.
It holds the hole plus a context margin (``context_factor`` x the hole's extent, plus ``context_pixels`` on each
side, like Inpaint-CropAndStitch's context expand factor / pixels). Its position is either fixed (one box that
covers the hole over the whole clip) or follows the hole: the hole's centre track, smoothed over time by a centred
moving average, then moved just enough that each frame's hole stays inside, clamped to the frame. Where the hole
plus margin does not fit a box smaller than the frame, the whole frame is used (today's geometry) and the log says
so. Everything is decided from the mask pre-pass (``masks.scan_holes``), before sampling.

Each window then resizes the box to the working size (PIL Lanczos, as every frame today: upsampled when the box is
smaller, so a small object gets more model pixels than source pixels); the composite puts the generated box back
at source resolution (``composite.place``) and pastes it with the same exact-background rule as full frame.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage
from torch import Tensor

from .masks import HoleScan

log = logging.getLogger(__name__)

FULL_FRAME, FIXED, FOLLOW = "full frame", "crop fixed", "crop follow"
CROP_MODES = (FULL_FRAME, FIXED, FOLLOW)


@dataclass(frozen=True)
class CropPlan:
    """Where the model's box lies in each sampled frame: ``size`` = (height, width) of the box (one for the clip),
    ``positions[k]`` = (top, left) of frame k's box, in source pixels."""

    source: tuple[int, int]
    working: tuple[int, int]
    size: tuple[int, int]
    positions: tuple[tuple[int, int], ...]
    mode: str

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def scale(self) -> float:
        """Model pixels per source pixel (linear; the same on both axes: the box has the working aspect)."""
        return self.working[1] / self.size[1]

    def box(self, k: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) of frame ``k``'s box (frames past the end keep the last box: the fixed window
        mode's padding repeats the last frame)."""
        top, left = self.positions[min(k, len(self.positions) - 1)]
        return top, left, self.size[0], self.size[1]

    def cut(self, x: Tensor, start: int) -> Tensor:
        """Frames ``start..start+n-1`` of the clip (``[n, H, W, ...]`` at source size) -> their boxes
        ``[n, box_h, box_w, ...]`` (a copy)."""
        if self.mode == FIXED:
            top, left, h, w = self.box(start)
            return x[:, top:top + h, left:left + w].contiguous()
        out = x.new_empty((x.shape[0], *self.size, *x.shape[3:]))
        for i in range(x.shape[0]):
            top, left, h, w = self.box(start + i)
            out[i] = x[i, top:top + h, left:left + w]
        return out

    def slice(self, start: int, end: int) -> "CropPlan":
        """The plan of frames ``start..end-1`` (a part of the clip: same box size, its own frames' positions)."""
        return replace(self, positions=self.positions[start:end])

    def spec(self) -> dict:
        """What a chained part / ID state must share with the run that made it: the box size and mode."""
        return {"mode": self.mode, "box": [self.size[1], self.size[0]]}

    def describe(self) -> str:
        (h, w), (sh, sw) = self.size, self.source
        tops, lefts = [p[0] for p in self.positions], [p[1] for p in self.positions]
        where = (f"at x={lefts[0]}, y={tops[0]}" if self.mode == FIXED else
                 f"following the hole: x {min(lefts)}..{max(lefts)}, y {min(tops)}..{max(tops)}")
        return (f"crop to the mask ({self.mode}): box {w}x{h} (WxH) of the {sw}x{sh} source, {where}; the model sees "
                f"it at {self.working[1]}x{self.working[0]}: {self.scale:.3f} model pixels per source pixel (linear)")


def full_frame_scale(source: tuple[int, int], working: tuple[int, int]) -> float:
    """Model pixels per source pixel (linear) when the whole frame is resized to the working size: the smaller of
    the two axes' factors (a stretch gives the hole fewer pixels along that axis)."""
    return min(working[0] / source[0], working[1] / source[1])


def box_size(extent: tuple[int, int], source: tuple[int, int], working: tuple[int, int], context_factor: float,
             context_pixels: int) -> tuple[int, int] | None:
    """(height, width) of the smallest box of the working aspect (whole multiples of its reduced ratio, so the
    aspect is exact) that holds ``extent`` (height, width) x ``context_factor`` + 2 x ``context_pixels``; None
    when that box is not smaller than the frame on some side (then the whole frame is used)."""
    g = math.gcd(working[0], working[1])
    ah, aw = working[0] // g, working[1] // g
    need_h = extent[0] * context_factor + 2 * context_pixels
    need_w = extent[1] * context_factor + 2 * context_pixels
    k = max(1, math.ceil(max(need_h / ah, need_w / aw) - 1e-9))
    h, w = k * ah, k * aw
    if h > source[0] or w > source[1] or (h, w) == tuple(source):
        return None
    return h, w


def _fill_empty(centres: list[tuple[float, float] | None]) -> np.ndarray:
    """Centres of frames without hole taken from the nearest frame with one (earlier wins a tie)."""
    known = [i for i, c in enumerate(centres) if c is not None]
    out = np.empty((len(centres), 2))
    for i, c in enumerate(centres):
        j = c if c is not None else centres[min(known, key=lambda k: (abs(k - i), k))]
        out[i] = j
    return out


def _place(centre: float, size: int, lo: int, hi: int, frame: int) -> int:
    """Start of a ``size`` box centred on ``centre``, moved the least to hold ``lo..hi`` and then into the frame."""
    start = int(round(centre - size / 2))
    start = min(max(start, hi - size), lo)  # covers the hole (size >= hi - lo, so the range is not empty)
    return min(max(start, 0), frame - size)


def plan_crop(scan: HoleScan, working: tuple[int, int], mode: str = FIXED, context_factor: float = 1.5,
              context_pixels: int = 32, pad: int = 0, smooth_frames: int = 9) -> CropPlan | None:
    """The box for each sampled frame from the mask pre-pass, or None for the whole frame (``mode`` full frame, a
    clip without hole, or a hole + margin that needs the whole frame; the last two are logged).

    ``working``: the model's (height, width). ``pad``: source pixels the hole grows by before it is boxed (the
    encoder's dilation: the grown hole, not only the drawn one, must lie inside). ``smooth_frames``: the moving
    average's length (frames) of the follow mode's centre track.
    """
    if mode not in CROP_MODES:
        raise ValueError(f"crop_mode: expected one of {', '.join(CROP_MODES)}; got {mode!r}")
    if not (math.isfinite(context_factor) and context_factor >= 1.0):
        raise ValueError(f"context_factor: expected a finite number >= 1 (box side = hole side x factor); got {context_factor}")
    if context_pixels < 0 or smooth_frames < 1:
        raise ValueError(f"context_pixels must be >= 0 and smooth_frames >= 1; got {context_pixels}, {smooth_frames}")
    if mode == FULL_FRAME:
        return None
    sh, sw = scan.height, scan.width
    grown = [None if b is None else (max(b[0] - pad, 0), min(b[1] + pad, sh), max(b[2] - pad, 0), min(b[3] + pad, sw))
             for b in scan.boxes]
    present = [b for b in grown if b is not None]
    if not present:
        log.warning("crop_mode %r: the mask has no hole in any frame, so there is nothing to crop to: the whole frame "
                    "is used", mode)
        return None
    if mode == FIXED:
        union = (min(b[0] for b in present), max(b[1] for b in present), min(b[2] for b in present),
                 max(b[3] for b in present))
        extent = (union[1] - union[0], union[3] - union[2])
    else:
        extent = (max(b[1] - b[0] for b in present), max(b[3] - b[2] for b in present))
    size = box_size(extent, (sh, sw), working, context_factor, context_pixels)
    if size is None:
        log.warning(
            "crop_mode %r: the hole (%dx%d px WxH%s, grown by the dilation %d) plus the context margin (x%.2f + %d px "
            "each side) does not fit a box of the working aspect %d:%d smaller than the %dx%d frame: the whole frame is "
            "used (full-frame geometry)", mode, extent[1], extent[0], " over the whole clip" if mode == FIXED else "",
            pad, context_factor, context_pixels, working[1], working[0], sw, sh)
        return None
    bh, bw = size
    if mode == FIXED:
        top = _place((union[0] + union[1]) / 2, bh, union[0], union[1], sh)
        left = _place((union[2] + union[3]) / 2, bw, union[2], union[3], sw)
        positions = ((top, left),) * len(grown)
    else:
        centres = _fill_empty([None if b is None else ((b[0] + b[1]) / 2, (b[2] + b[3]) / 2) for b in grown])
        # a centred moving average: no lag behind the hole (scipy's running mean; the ends repeat the end values)
        smooth = ndimage.uniform_filter1d(centres, size=smooth_frames, axis=0, mode="nearest")
        positions = []
        for k, b in enumerate(grown):
            lo_y, hi_y, lo_x, hi_x = b if b is not None else (sh, 0, sw, 0)  # no hole: nothing to hold
            positions.append((_place(smooth[k, 0], bh, min(lo_y, sh - bh), max(hi_y, bh), sh),
                              _place(smooth[k, 1], bw, min(lo_x, sw - bw), max(hi_x, bw), sw)))
        positions = tuple(positions)
    plan = CropPlan((sh, sw), tuple(working), size, positions, mode)
    log.info("encode: %s", plan.describe())
    return plan
