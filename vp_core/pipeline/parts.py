"""A clip in parts, cut in the SAMPLED timeline at window boundaries of the one-run plan, so parts chained through
the ID state (and joined with ``join_latents``) equal the single run by construction.

Part ``k`` holds windows ``[k * n, (k + 1) * n)`` of ``plan_windows(clip)``; it starts on the first frame of its
first window (the frames it shares with the part before are the windows' overlap). A cut is refused, with the
numbers, when the part's own plan would not be those windows (e.g. the end-aligned last window of the clip would
start a part, or a part's latent count would be even), because the join would then not be exact.
"""
from __future__ import annotations

import logging
from dataclasses import replace

from .preprocess import AudioRef, InpaintInput, PipelineInputs
from ..video.video_io import slice_frames
from .windows import WindowPlan, plan_windows

log = logging.getLogger(__name__)


def part_count(plan: WindowPlan, windows_per_part: int) -> int:
    return -(-len(plan.windows) // windows_per_part)


def _check(plan: WindowPlan, part_plan: WindowPlan, first: int, last: int, start: int, part: int) -> None:
    """The part's own plan must be windows ``first..last-1`` of the clip's plan, shifted to the part's start."""
    wins = plan.windows[first:last]
    off0 = wins[0].latent_offset
    want = [(w.frame_start - start, w.frame_end - start, w.latent_offset - off0) for w in wins]
    got = [(w.frame_start, w.frame_end, w.latent_offset) for w in part_plan.windows]
    problems = []
    if got != want:
        problems.append(f"its own plan has windows at frames {[g[0] for g in got]} but in the clip they are at "
                        f"{[w[0] for w in want]} (relative to frame {start})")
    if first > 0 and wins[0].cond_latent_index != plan.continue_cond_index:
        problems.append(f"its first window continues latent {wins[0].cond_latent_index} of the window before, a "
                        f"chained part always continues latent {plan.continue_cond_index}")
    if first > 0 and plan.latents_per_window - (wins[0].latent_offset - plan.windows[first - 1].latent_offset) != plan.shared_latents:
        problems.append("it would share another number of latents with the part before than the join averages")
    if problems:
        raise ValueError(
            f"part {part}: sampled frames {start}..{start + part_plan.total_frames - 1} (windows {first}..{last - 1} "
            f"of {len(plan.windows)}) cannot be joined exactly to the single run: " + "; ".join(problems)
            + ". Choose another windows_per_part (the clip's plan is shown by 'VideoPainter Window Plan')"
        )


def cut_part(job: InpaintInput, window_frames: int, overlap_frames: int, mode: str, windows_per_part: int,
             part: int) -> tuple[InpaintInput, str]:
    """Part ``part`` (0-based) of an encoded clip, ``windows_per_part`` windows each. Returns the part's input
    and a one-line description."""
    if windows_per_part < 1:
        raise ValueError(f"windows_per_part: expected at least 1; got {windows_per_part}")
    plan = plan_windows(job.frame_count, window_frames, overlap_frames, mode)
    n = part_count(plan, windows_per_part)
    if not 0 <= part < n:
        raise ValueError(
            f"part: the clip has {len(plan.windows)} windows, {n} part(s) of {windows_per_part} window(s) "
            f"(0..{n - 1}); got {part}"
        )
    first, last = part * windows_per_part, min((part + 1) * windows_per_part, len(plan.windows))
    start = plan.windows[first].frame_start
    end = plan.windows[last - 1].frame_end if last < len(plan.windows) else job.frame_count
    part_plan = plan_windows(end - start, window_frames, overlap_frames, mode)
    _check(plan, part_plan, first, last, start, part)
    p = job.pipeline
    image = p.image if part == 0 else None  # a continued part: its I2V latent comes from the id_state
    pipe = PipelineInputs(slice_frames(p.video, start, end), slice_frames(p.masks, start, end), image)
    audio = job.audio
    if audio is not None and job.fps > 0:
        audio = AudioRef(audio.source, audio.start + start / job.fps)
    source = job.source.part(start, end, last=end == job.frame_count) if job.source is not None else None
    out = replace(job, pipeline=pipe, frames=slice_frames(job.frames, start, end), hole=slice_frames(job.hole, start, end),
                  audio=audio, window_settings=(window_frames, overlap_frames, mode), source=source,
                  part=(part, n),
                  crop=job.crop.slice(start, end) if job.crop is not None else None)
    text = (f"part {part} of {n} (0-based): sampled frames {start}..{end - 1} ({end - start} frames), windows "
            f"{first}..{last - 1} of {len(plan.windows)}; " + ("first part" if part == 0 else
            f"continues part {part - 1} (wire its sampler's id_state; the parts share {plan.shared_latents} latent(s), "
            "joined by 'VideoPainter Join Latents')"))
    log.info("cut: %s", text)
    return out, text


def check_window_settings(job: InpaintInput, window_frames: int, overlap_frames: int, mode: str) -> None:
    """A part cut for other window settings than the sampler's would not join exactly."""
    cut = job.window_settings
    if cut is not None and cut != (window_frames, overlap_frames, mode):
        raise ValueError(
            f"inpaint: this part was cut for windows of {cut[0]} frames, overlap {cut[1]}, mode {cut[2]!r}, but the "
            f"sampler uses {window_frames}, {overlap_frames}, {mode!r}; give the cut node and the sampler the same "
            "window settings"
        )


def check_continuation(job: InpaintInput, id_state) -> None:
    """A continued part (``part`` > 0 of 'VideoPainter Cut Part') sampled without the ID state of the part before
    would be an unrelated run (no first-frame latent, no identity carried over) that Join Latents could not join."""
    if job.part is not None and job.part[0] > 0 and id_state is None:
        part, n = job.part
        raise ValueError(
            f"id_state: this is part {part} of {n} (0-based, from 'VideoPainter Cut Part'), which continues part "
            f"{part - 1}, but the sampler's id_state input is not connected. Wire the id_state output of part "
            f"{part - 1}'s sampler (with output_id_state on) into this sampler's id_state, or load part {part - 1}'s "
            "saved state with 'VideoPainter Load ID State'"
        )


def part_info(job: InpaintInput) -> dict:
    """What a sampled latent records of its part, for :func:`check_join` (empty for a whole clip)."""
    return {} if job.part is None else {"parts": [job.part[0], job.part[0], job.part[1]]}


def check_join(first: dict, second: dict) -> None:
    """Join Latents joins a run with the run continued from its ID state (``shared_latents`` > 0), and parts of a
    cut in order; otherwise the result would hold two unrelated runs, more frames than the clip."""
    if not second.get("shared_latents"):
        raise ValueError(
            "second: this latent was not sampled with an id_state, so it does not continue 'first' and joining would "
            "put two unrelated runs end to end. Wire the id_state output of the sampler that made 'first' (with "
            "output_id_state on) into the id_state input of the sampler that makes 'second'"
        )
    a, b = first.get("parts"), second.get("parts")
    if a is not None and b is not None and (b[0] != a[1] + 1 or b[2] != a[2]):
        raise ValueError(
            f"second: it is part {b[0]} of {b[2]}, which does not continue 'first' (parts {a[0]}..{a[1]} of {a[2]}); "
            f"join the parts in order: 'second' must be part {a[1] + 1}"
        )
