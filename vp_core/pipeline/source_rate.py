"""Output at the SOURCE's frame rate (issue 25, item 1): every source frame after skip / cap, at the source's rate
and timing, each with the source's exact background outside its own dilated hole.

The encoder decides the sampling (``ClipSettings.output_rate``): with ``source`` it keeps a ``SourceTimeline`` on
the job, the source frames and holes between the first sampled frame and the end of the last sampled frame's
period (``frame_load_cap`` sampled frames are ``cap * step`` source frames). The model still makes the sampled
frames (generated frame ``k`` is source frame ``k * step``); the hole of the source frames in between is filled by
motion-compensated interpolation of the two generated frames around it (``interpolate``), or taken from another
node's frames at the source rate (e.g. a RIFE / FILM interpolator's IMAGE batch). Source frames after the last
generated frame carry the last pair's motion on. Then ``composite.paste`` puts the source's exact bytes back
outside the dilated hole of THAT source frame, as on the sampled frames.

Streaming: the generated frames are read one at a time; only the two around the frame being written (in source
coordinates) and the source frames of one sampled period (uint8) are in memory.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Callable, Iterator

import torch
from torch import Tensor

from . import composite, interpolate
from ..video.video_io import Frames, close, frame_size, read_frames, reader, slice_frames

log = logging.getLogger(__name__)

OUTPUT_RATES = ("source", "sampled")
# Flow context around the holes (source pixels): the optical flow sees this much of the surroundings, so content
# that moves into the hole between two sampled frames is inside the box.
FLOW_MARGIN = 48
Chunks = Callable[[], Iterator[Tensor]]


@dataclass
class SourceTimeline:
    """The source frames (uint8 RGB) and undilated binary holes (uint8, 255 = hole) of a job, every frame from the
    first sampled one on; sampled frame ``k`` is source frame ``k * step``. ``fps``: the source's rate."""

    frames: Frames
    hole: Frames
    step: int
    fps: Fraction

    def __len__(self) -> int:
        return len(self.frames)

    def part(self, start: int, end: int, last: bool) -> "SourceTimeline":
        """The source frames of sampled frames ``start..end-1`` (a part of the clip, ``parts.cut_part``); the last
        part keeps the source frames after its last sampled frame."""
        b = len(self) if last else min(end * self.step, len(self))
        a = start * self.step
        return replace(self, frames=slice_frames(self.frames, a, b), hole=slice_frames(self.hole, a, b))


def source_count(sampled: int, step: int, available: int) -> int:
    """Source frames of ``sampled`` sampled frames: each one's period of ``step`` frames, within ``available``."""
    return min(sampled * step, available)


def spacing(timeline: SourceTimeline, sampled: int, generated: int, name: str = "generated") -> int:
    """Source frames between two ``generated`` frames: ``step`` for frames at the sampled rate (the model's), 1 for
    frames at the source rate (another node's interpolation: ``(sampled - 1) * step + 1`` frames, up to the last
    sampled frame, or every source frame). Anything else is an error that says what was expected."""
    n = len(timeline)
    if generated == sampled:
        return timeline.step
    if generated in (n, (sampled - 1) * timeline.step + 1):
        return 1
    raise ValueError(
        f"{name} has {generated} frames; this clip has {sampled} sampled frames (step {timeline.step}) and {n} source "
        f"frames: give the {sampled} generated frames (VideoPainter Decode), or frames at the source rate "
        f"({(sampled - 1) * timeline.step + 1} from an interpolator run on them with multiplier {timeline.step}, or "
        f"{n}); or set the encoder's output_rate to 'sampled'"
    )


def place(frame: Tensor, j: int, originals, timeline: SourceTimeline, space: int, crop=None) -> Tensor:
    """Generated frame ``j`` (``[h, w, 3]``) in SOURCE coordinates ``[H, W, 3]`` (``composite.place``); it is source
    frame ``j * space`` of the timeline. Crop mode (``crop``, the encoder's ``CropPlan`` of the sampled frames): its
    box goes back where the encoder cut it, over that source frame, read from ``originals`` (the composite's own
    reader, ``_frames``: each source frame is decoded once). Frames at the source rate between two sampled frames
    take the sampled frames' box, which must then be the same for both (``crop fixed``, or a ``crop follow`` box that
    did not move)."""
    if crop is None:  # full frame: ``place`` reads only the size
        h, w = frame_size(timeline.hole)
        return composite.place(frame[None], torch.empty(1, h, w, 3, device="meta"))[0]
    src = j * space
    k, r = divmod(src, timeline.step)
    if r and k + 1 < len(crop) and crop.box(k) != crop.box(k + 1):
        raise ValueError(
            f"generated: frames at the source rate in crop mode {crop.mode!r}: the crop box moves between sampled "
            f"frames {k} and {k + 1}, so source frame {src} has no box of its own. Give the generated frames at the "
            "sampled rate (VideoPainter Decode; the composite interpolates them), or encode with crop_mode 'crop fixed'")
    original = read_frames(originals, src, src + 1).float() / 255.0
    return composite.place(frame[None], original, crop, first_index=min(k, len(crop) - 1))[0]


def _box(holes: Tensor, margin: int) -> interpolate.Box | None:
    return composite.reach(holes.any(0), margin)


def composited_chunks(timeline: SourceTimeline, generated: Chunks, space: int, dilate: int, feather: int,
                      crop=None) -> Chunks:
    """Every source frame of ``timeline`` composited, one frame per chunk. ``generated``: frames ``space`` source
    frames apart (``spacing``), at the working size or the source's, or crop boxes (``crop``: the encoder's
    ``CropPlan``); ``place`` puts them in source coordinates."""

    def chunks() -> Iterator[Tensor]:
        frames, hole = reader(timeline.frames), reader(timeline.hole)
        try:
            raw = (frame for chunk in generated() for frame in chunk)
            yield from _frames(frames, hole, raw, timeline, space, dilate, feather, crop)
        finally:  # decoders and kept frames go at once
            close(frames)
            close(hole)

    return chunks


def _frames(frames, hole, raw: Iterator[Tensor], timeline: SourceTimeline, space: int, dilate: int, feather: int,
            crop=None) -> Iterator[Tensor]:
    """The composite of every source frame from the generated frames (``raw``, one by one, placed in source
    coordinates by ``place``); after the last generated frame at most a sampled period (``step``).

    One reader (``frames``) serves the paste and crop mode's placement, strictly in order: a period's source frames
    are read before the next generated frame is placed over the source frame that follows them."""
    n, step = len(frames), timeline.step
    margin = dilate + 2 * feather + FLOW_MARGIN  # paste changes pixels up to dilate + feather from the hole, reads 2x
    first = next(raw, None)
    if first is None:
        raise ValueError("generated has no frames")
    prev, a, j, done = None, place(first, 0, frames, timeline, space, crop), 0, 0
    while done < n:
        end = min(done + space, n)
        original = read_frames(frames, done, end)
        following = next(raw, None)
        if following is None:  # a was the last generated frame: the rest of the clip, at most a sampled period
            if n - done > max(space, step):
                raise ValueError(f"generated ends at source frame {done}, {n - done - 1} source frames before the "
                                 f"clip's end: give a generated frame every {space} source frame(s) up to the last "
                                 "sampled frame")
            if end < n:
                original = torch.cat([original, read_frames(frames, end, n)])
            b, end = None, n
        else:  # prev is needed only past the last generated frame: two generated frames in memory
            prev, j = None, j + 1
            b = place(following, j, frames, timeline, space, crop)
        holes = read_frames(hole, done, end) > 127
        # between a and b; past the last generated frame, the last pair's motion carried on (t > 1)
        pair, t0 = ((a, b), 0.0) if b is not None else ((prev, a), 1.0)
        box = _box(holes[1:], margin) if end - done > 1 and pair[0] is not None else None
        flows = interpolate.PairFlow(pair[0], pair[1], box) if box is not None else None
        base = a.clone() if flows is not None else None  # one copy per period; each frame writes its box into it
        for i in range(end - done):
            g = a if i == 0 or flows is None else interpolate.frame_at(pair[0], pair[1], t0 + i / space, box, flows,
                                                                       base)
            yield composite.paste(original[i:i + 1].float() / 255.0, g[None], holes[i:i + 1].float(), dilate, feather,
                                  first_index=done + i)
        done = end
        prev, a = a, b
    if a is not None:  # the clip ended before the generated frames did
        raise ValueError(f"generated has more frames than the clip's {n} source frames need (one every {space})")
