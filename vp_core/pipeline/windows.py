"""Window planning for any-length inpainting: the one place that decides how frames fall into windows.

Two modes:

``reference``
    Exactly what VideoPainter's any-length pipeline does (spec §6.2/§6.5): stride ``S = N - overlap``,
    ``n = (T - N) // S + 1`` windows at input frames ``[jS, jS + N)``; frames after the last full window are
    dropped; window ``j``'s latents are merged at latent offset ``j * (L - 1 - o)`` with ``o = (N - S) // 4``.
    With ``overlap = 0`` consecutive windows still share one latent, so every boundary loses one frame of time
    (``48n + 1`` output frames for ``49n`` input frames).

``fixed`` (our default)
    Every input frame is covered and the output has exactly ``T`` frames. Windows start on multiples of the VAE's
    temporal factor so a window's first frame is exactly the last frame of the latent it is conditioned on; the
    overlap must be ``4k + 1`` frames (default 1). Leftover frames get one extra end-aligned window (its start is
    snapped to the 4-frame latent grid). The input is padded at the end by repeating its last frame so the merged
    latent count is odd (an odd count decodes to ``4(L - 1) + 1`` frames); the padding is trimmed after decoding.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

TEMPORAL_FACTOR = 4  # CogVideoX VAE: 4 frames per latent after the causal first frame
MODES = ("fixed", "reference")


@dataclass(frozen=True)
class Window:
    """One window of the plan.

    Parameters:
        index: window number, from 0.
        frame_start: first input frame (after padding, in ``fixed`` mode) of the window.
        frame_end: one past the last input frame.
        latent_offset: where the window's first latent goes in the merged latent buffer.
        cond_latent_index: index, inside the *previous* window's latents, of the latent used as this window's
            first-frame (I2V) latent; ``None`` for window 0 (which encodes the first-frame image).
    """

    index: int
    frame_start: int
    frame_end: int
    latent_offset: int
    cond_latent_index: int | None


@dataclass(frozen=True)
class WindowPlan:
    """How a clip of ``total_frames`` frames is cut into windows and merged back."""

    mode: str
    total_frames: int
    window_frames: int
    overlap_frames: int
    windows: tuple[Window, ...]
    latents_per_window: int
    merged_latents: int
    padded_frames: int = 0
    dropped_frames: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def decoded_frames(self) -> int:
        """Frames the VAE returns for the merged buffer."""
        return decoded_frame_count(self.merged_latents)

    @property
    def continue_cond_index(self) -> int:
        """Latent of the previous window that conditions this plan's first window when a run continues another
        (chained parts, resume): the same step as between the plan's own windows, ``L - 1 - o``."""
        return self.latents_per_window - 1 - self.overlap_frames // TEMPORAL_FACTOR

    @property
    def shared_latents(self) -> int:
        """Latents a continuing run shares with the run before it (averaged when the two are joined)."""
        return self.overlap_frames // TEMPORAL_FACTOR + 1

    @property
    def output_frames(self) -> int:
        """Frames the user gets back (padding trimmed in ``fixed`` mode)."""
        return self.decoded_frames - self.padded_frames

    def summary(self) -> str:
        lines = [
            f"{self.mode} plan: {self.total_frames} input frames -> {len(self.windows)} window(s) of "
            f"{self.window_frames} frames, overlap {self.overlap_frames}; {self.output_frames} output frames",
        ]
        for w in self.windows:
            cond = "first-frame image" if w.cond_latent_index is None else f"prev latent {w.cond_latent_index}"
            lines.append(
                f"  window {w.index}: frames {w.frame_start}-{w.frame_end - 1}, latents at {w.latent_offset}, "
                f"conditioned on {cond}"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def latents_for_frames(frames: int) -> int:
    """Latent frames the CogVideoX VAE produces for ``frames`` (4k+1) pixel frames."""
    return (frames - 1) // TEMPORAL_FACTOR + 1


def decoded_frame_count(latent_frames: int) -> int:
    """Frames the CogVideoX VAE returns for ``latent_frames`` (odd: 4(L-1)+1, even: 4L, as the reference: it decodes
    2 latents per batch and only an odd first batch keeps its first latent as one frame)."""
    n = latent_frames
    return TEMPORAL_FACTOR * (n - 1) + 1 if n % 2 == 1 else TEMPORAL_FACTOR * n


def check_window_frames(window_frames: int) -> None:
    if window_frames < 1 or (window_frames - 1) % TEMPORAL_FACTOR != 0:
        raise ValueError(
            f"window_frames must be 4k+1 (e.g. 49 for CogVideoX-5B-I2V, 17 for the tiny test model); got {window_frames}"
        )


def plan_windows(total_frames: int, window_frames: int = 49, overlap_frames: int = 1, mode: str = "fixed") -> WindowPlan:
    """Plan the windows for a clip. See the module docstring for the two modes.

    Raises:
        ValueError: for a mode, window length or overlap the mode cannot use, or a clip shorter than a window.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    check_window_frames(window_frames)
    if not 0 <= overlap_frames < window_frames:
        raise ValueError(
            f"overlap_frames must be between 0 and window_frames - 1 ({window_frames - 1}); got {overlap_frames}"
        )
    if total_frames < 1:
        raise ValueError(f"the video has {total_frames} frames; at least 1 is needed")
    if mode == "reference":
        plan = _plan_reference(total_frames, window_frames, overlap_frames)
    else:
        plan = _plan_fixed(total_frames, window_frames, overlap_frames)
    _log_adjustments(plan)
    return plan


def _log_adjustments(plan: WindowPlan) -> None:
    """Every change to the clip's length is logged: dropped frames as a warning (they are missing from the output),
    padding as info (it is trimmed again)."""
    if plan.dropped_frames:
        log.warning(
            "%s mode: the last %d of %d frames come after the last full window (%d frames, overlap %d) and are "
            "dropped, as the reference does: %d output frames. Use window_mode 'fixed' to keep every frame.",
            plan.mode, plan.dropped_frames, plan.total_frames, plan.window_frames, plan.overlap_frames,
            plan.output_frames,
        )
    if plan.padded_frames:
        log.info(
            "%s mode: %d frames padded with %d repeats of the last frame to fill %d window(s) of %d; the padding is "
            "trimmed from the output (%d frames)", plan.mode, plan.total_frames, plan.padded_frames,
            len(plan.windows), plan.window_frames, plan.output_frames,
        )


def _plan_reference(total: int, n: int, overlap: int) -> WindowPlan:
    if total < n:
        raise ValueError(
            f"reference mode needs at least window_frames={n} frames; the video has {total}. "
            "Use mode 'fixed' (pads short clips) or a shorter window."
        )
    stride = n - overlap
    count = (total - n) // stride + 1
    lat = latents_for_frames(n)
    o = (n - stride) // TEMPORAL_FACTOR
    step = lat - 1 - o
    windows = tuple(
        Window(j, j * stride, j * stride + n, j * step, None if j == 0 else step) for j in range(count)
    )
    merged = lat * count - (count - 1) * (o + 1)
    dropped = total - ((count - 1) * stride + n)
    notes = []
    if dropped:
        notes.append(f"the last {dropped} frame(s) are dropped, as the reference does")
    if (stride % TEMPORAL_FACTOR) != 0 and count > 1:
        notes.append("stride is not a multiple of 4: windows drift against the merged latent timeline (reference quirk)")
    return WindowPlan("reference", total, n, overlap, windows, lat, merged, 0, dropped, tuple(notes))


def _plan_fixed(total: int, n: int, overlap: int) -> WindowPlan:
    if overlap % TEMPORAL_FACTOR != 1:
        raise ValueError(
            f"fixed mode needs overlap_frames of the form 4k+1 (1, 5, 9, ...) so windows align with latents; got {overlap}"
        )
    stride = n - overlap  # a multiple of 4
    lat = latents_for_frames(n)
    if lat % 2 == 0:
        raise ValueError(
            f"fixed mode needs window_frames of the form 8k+1 (17, 33, 49, ...) so a window decodes to exactly its "
            f"frames; got {n} ({lat} latents: the VAE would widen the first latent to 4 frames). Use 'reference' mode "
            "or another window length"
        )
    starts = [0]
    while starts[-1] + n < total:
        nxt = starts[-1] + stride
        if nxt + n > total:  # extra end-aligned window, snapped to the latent grid
            nxt = starts[-1] + TEMPORAL_FACTOR * -(-(total - n - starts[-1]) // TEMPORAL_FACTOR)
        starts.append(nxt)
    if len(starts) > 1 and (starts[-1] // TEMPORAL_FACTOR + lat) % 2 == 0:
        # An even merged latent count would decode to 4L frames (the first latent would widen to 4 frames);
        # shifting the last window one latent later keeps the count odd at the cost of 4 more padded frames.
        starts[-1] += TEMPORAL_FACTOR
    covered = starts[-1] + n
    merged = starts[-1] // TEMPORAL_FACTOR + lat
    windows = []
    for j, s in enumerate(starts):
        cond = None if j == 0 else (s - starts[j - 1]) // TEMPORAL_FACTOR
        windows.append(Window(j, s, s + n, s // TEMPORAL_FACTOR, cond))
    padded = covered - total
    notes = []
    if padded:
        notes.append(f"{padded} frame(s) of padding (last frame repeated) are added and trimmed from the output")
    return WindowPlan("fixed", total, n, overlap, tuple(windows), lat, merged, padded, 0, tuple(notes))
