"""Mask checks: per-frame hole sizes and the masks that will not inpaint what the user expects.

A frame's hole is every pixel above ``threshold`` (the same binarisation as the encode step). Three cases are
flagged:

* empty: no hole pixel, so nothing is filled in that frame;
* full: every pixel is a hole, so nothing of the frame is kept as context;
* tiny: a hole smaller than ``min_fraction`` of the frame. The model sees masks on the 8x VAE latent grid and its
  transformer on 2x2 latent patches (one token = 16x16 px at the model's size), so a hole of a few hundred pixels
  (0.1% of 720x480 is 346 px, about one token) may be missed or blurred away.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

DEFAULT_MIN_FRACTION = 0.001
TOKEN_PX = 16  # 8x VAE downsampling x 2x2 patches


@dataclass(frozen=True)
class MaskReport:
    """Hole pixels per frame and the frames flagged empty / full / tiny (0-based indices)."""

    height: int
    width: int
    threshold: float
    min_fraction: float
    hole_pixels: tuple[int, ...]
    empty: tuple[int, ...]
    full: tuple[int, ...]
    tiny: tuple[int, ...]

    @property
    def frames(self) -> int:
        return len(self.hole_pixels)

    @property
    def frame_pixels(self) -> int:
        return self.height * self.width

    def warnings(self) -> list[str]:
        """One line per problem, naming the frames; [] for a usable mask."""
        n, out = self.frames, []
        if self.empty:
            what = "every frame" if len(self.empty) == n else f"{len(self.empty)} of {n} frame(s): {format_frames(self.empty)}"
            out.append(f"empty mask (no hole: nothing to fill) in {what}")
        if self.full:
            what = "every frame" if len(self.full) == n else f"{len(self.full)} of {n} frame(s): {format_frames(self.full)}"
            out.append(f"full mask (everything masked: no context is kept) in {what}")
        if self.tiny:
            smallest = min(self.hole_pixels[i] for i in self.tiny)
            out.append(
                f"tiny hole (below {self.min_fraction:.3%} of the frame, smallest {smallest} px; one model token "
                f"covers {TOKEN_PX}x{TOKEN_PX} px, so it may be missed by the 8x latent / 2x2 token grid) in "
                f"{len(self.tiny)} of {n} frame(s): {format_frames(self.tiny)}"
            )
        return out

    def summary(self) -> str:
        """Readable report: size, hole share (min / mean / max), warnings, then the hole pixels of every frame."""
        total = self.frame_pixels
        shares = [p / total for p in self.hole_pixels]
        lines = [
            f"mask check: {self.frames} frame(s) of {self.width}x{self.height}, hole = value > {self.threshold:g}",
            f"hole share of the frame: min {min(shares):.2%}, mean {sum(shares) / len(shares):.2%}, max {max(shares):.2%}",
        ]
        warnings = self.warnings()
        lines += [f"WARNING: {w}" for w in warnings] or ["OK: no empty, full or tiny masks"]
        lines.append("hole pixels per frame: " + ", ".join(str(p) for p in self.hole_pixels))
        return "\n".join(lines)


def format_frames(indices: tuple[int, ...] | list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    parts, start, prev = [], None, None
    for i in list(indices) + [None]:
        if start is not None and (i is None or i != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)


def mask_report(mask: Tensor, threshold: float = 0.5, min_fraction: float = DEFAULT_MIN_FRACTION) -> MaskReport:
    """Analyse a ComfyUI ``MASK`` (``[frames, H, W]`` or ``[H, W]``, 1 = region to fill); the input is not changed."""
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3 or mask.shape[0] == 0 or mask.shape[1] == 0 or mask.shape[2] == 0:
        raise ValueError(f"mask: expected a MASK batch [frames, height, width] with at least one frame; got shape {tuple(mask.shape)}")
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be within [0, 1] (a share of the frame, 0.001 = 0.1%); got {min_fraction}")
    counts = (mask > threshold).sum(dim=(1, 2)).to(torch.int64).tolist()
    return report_from_counts(counts, mask.shape[1], mask.shape[2], threshold, min_fraction)


def video_mask_report(source, channel: str, threshold: float = 0.5, min_fraction: float = DEFAULT_MIN_FRACTION,
                      chunk: int = 16) -> MaskReport:
    """``mask_report`` of a mask video file (every frame; ``channel`` > ``threshold`` as the encoder reads it), read
    ``chunk`` frames at a time."""
    from ..video.video_io import FileSource, mask_from_rgb

    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be within [0, 1] (a share of the frame, 0.001 = 0.1%); got {min_fraction}")
    src = FileSource(source, name="mask")
    if len(src) == 0:
        raise ValueError("mask: the mask video has no frames; load a mask video with at least one frame")
    counts: list[int] = []
    for a in range(0, len(src), chunk):
        holes = mask_from_rgb(src.read(a, min(a + chunk, len(src))), channel, threshold)
        counts += (holes > 0).sum(dim=(1, 2)).to(torch.int64).tolist()
    return report_from_counts(counts, src.height, src.width, threshold, min_fraction)


@dataclass(frozen=True)
class HoleScan:
    """The mask pre-pass: per sampled frame, the hole's bounding box ``(y0, y1, x0, x1)`` (end exclusive, source
    pixels; None for a frame without hole) and its area in pixels. One cheap pass over the mask alone, before
    sampling: it feeds crop mode's box (``crop.plan_crop``) and the mask report of the VIDEO path."""

    height: int
    width: int
    boxes: tuple[tuple[int, int, int, int] | None, ...]
    areas: tuple[int, ...]

    def report(self, threshold: float, min_fraction: float = DEFAULT_MIN_FRACTION) -> MaskReport:
        return report_from_counts(list(self.areas), self.height, self.width, threshold, min_fraction)


def frame_boxes(holes: Tensor) -> tuple[list[tuple[int, int, int, int] | None], list[int]]:
    """Bounding boxes and areas of binary holes ``[n, H, W]`` (nonzero = hole), one per frame.

    The rows and columns that hold a hole come from each axis' maximum, and the area is counted inside the box only:
    at 1080p, counting over the whole frame took 14 ms of the pre-pass's ~26 ms per frame (``bench_mask_scan.py``)."""
    if holes.dtype not in (torch.uint8, torch.bool):
        holes = holes != 0
    rows, cols = holes.amax(2) > 0, holes.amax(1) > 0
    boxes: list[tuple[int, int, int, int] | None] = []
    areas: list[int] = []
    for i in range(holes.shape[0]):
        r, c = torch.nonzero(rows[i]).flatten(), torch.nonzero(cols[i]).flatten()
        if r.numel() == 0:
            boxes.append(None)
            areas.append(0)
            continue
        box = (int(r[0]), int(r[-1]) + 1, int(c[0]), int(c[-1]) + 1)
        boxes.append(box)
        areas.append(int(torch.count_nonzero(holes[i, box[0]:box[1], box[2]:box[3]])))
    return boxes, areas


def scan_holes(source, chunk: int = 8) -> HoleScan:
    """:class:`HoleScan` of a binary hole source (``video_io.FrameSource`` of ``uint8 [n, H, W]``, 255 = hole, e.g.
    the encoder's sampled mask), read ``chunk`` frames at a time through a reader of its own (a streamed mask
    video is decoded once more, the frames are not kept)."""
    from ..video.video_io import close, frame_size, read_frames, reader

    height, width = frame_size(source)
    src = reader(source)
    boxes: list = []
    areas: list[int] = []
    try:
        n = len(src)
        for a in range(0, n, chunk):
            b, s = frame_boxes(read_frames(src, a, min(a + chunk, n)))
            boxes += b
            areas += s
    finally:
        close(src)
    return HoleScan(height, width, tuple(boxes), tuple(areas))


def report_from_counts(counts: list[int], height: int, width: int, threshold: float, min_fraction: float) -> MaskReport:
    total = height * width
    return MaskReport(
        height=height, width=width, threshold=threshold, min_fraction=min_fraction,
        hole_pixels=tuple(counts),
        empty=tuple(i for i, c in enumerate(counts) if c == 0),
        full=tuple(i for i, c in enumerate(counts) if c == total),
        tiny=tuple(i for i, c in enumerate(counts) if 0 < c < min_fraction * total),
    )
