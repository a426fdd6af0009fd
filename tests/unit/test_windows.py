"""``vp_core.pipeline.windows.plan_windows``: the reference plan's arithmetic (spec §6.2/§6.5) and the fixed mode's promise
(output frame count = input frame count, every input frame inside a window).

The expected values are recomputed here from the spec's formulas, not read back from the planner:
``S = N - overlap``, ``n = (T - N) // S + 1``, window j covers ``[jS, jS + N)``, ``L = (N - 1)/4 + 1``,
``o = (N - S)//4``, latent offset ``j(L - 1 - o)``, merged buffer ``L·n - (n - 1)(o + 1)``, image latent of window
j >= 1 at index ``-(o + 1)`` of the previous window, frames after the last full window dropped, and an odd latent
count decoding to ``4(L - 1) + 1`` frames, an even one to ``4L``.
"""
from __future__ import annotations

import pytest

from videopainter.vp_core.pipeline import windows
from videopainter.vp_core.pipeline.windows import plan_windows

# window lengths whose latent count L is odd (the real model's 49 -> 13, the tiny model's 17 -> 5) ...
ODD_LATENT_WINDOWS = (9, 17, 25, 33, 49)
# ... and even (13 -> 4, 21 -> 6): the sampler node offers them (window_frames min 5, step 4); fixed mode refuses them
EVEN_LATENT_WINDOWS = (5, 13, 21)


def decoded(latents: int) -> int:
    return 4 * (latents - 1) + 1 if latents % 2 == 1 else 4 * latents


# ------------------------------------------------------------------------------------------------ reference
@pytest.mark.parametrize(
    "total, n, overlap",
    [
        (49, 49, 0), (98, 49, 0), (147, 49, 0), (200, 49, 0), (51, 17, 0), (34, 17, 0), (102, 17, 0),
        (100, 49, 1), (300, 49, 1), (97, 49, 8), (150, 49, 9), (120, 49, 20), (60, 17, 5), (61, 17, 3),
        (17, 17, 16), (40, 9, 1), (41, 13, 4),
    ],
)
def test_reference_plan_matches_spec_arithmetic(total: int, n: int, overlap: int):
    plan = plan_windows(total, n, overlap, "reference")
    stride = n - overlap
    count = (total - n) // stride + 1
    lat = (n - 1) // 4 + 1
    o = (n - stride) // 4
    assert plan.mode == "reference"
    assert len(plan.windows) == count
    assert plan.latents_per_window == lat
    for j, w in enumerate(plan.windows):
        assert (w.index, w.frame_start, w.frame_end) == (j, j * stride, j * stride + n)
        assert w.latent_offset == j * (lat - 1 - o)
        assert w.cond_latent_index == (None if j == 0 else lat - (o + 1))  # index -(o+1) of the previous window
    assert plan.merged_latents == lat * count - (count - 1) * (o + 1)
    assert plan.dropped_frames == total - ((count - 1) * stride + n)
    assert plan.padded_frames == 0
    assert plan.decoded_frames == plan.output_frames == decoded(plan.merged_latents)
    # the buffer holds exactly the last window's latents
    last = plan.windows[-1]
    assert last.latent_offset + lat == plan.merged_latents


@pytest.mark.parametrize("n_windows", [1, 2, 3, 5, 10])
def test_reference_overlap0_gives_48n_plus_1_frames(n_windows: int):
    """Spec §6.5: with overlap 0 (S = N = 49) consecutive windows share a latent: 49n input -> 48n+1 output frames."""
    plan = plan_windows(49 * n_windows, 49, 0, "reference")
    assert len(plan.windows) == n_windows
    assert plan.merged_latents == 12 * n_windows + 1
    assert plan.output_frames == 48 * n_windows + 1
    assert plan.dropped_frames == 0


def test_reference_drops_the_tail_like_the_fixture():
    """The any_length fixture: 51 frames, window 17, overlap 0 -> 3 windows, 49 output frames, 0 dropped;
    52 frames -> the 52nd is dropped (the reference keeps only full windows)."""
    plan = plan_windows(51, 17, 0, "reference")
    assert (len(plan.windows), plan.merged_latents, plan.output_frames) == (3, 13, 49)
    plan = plan_windows(67, 17, 0, "reference")
    assert (len(plan.windows), plan.dropped_frames) == (3, 16)
    assert any("dropped" in note for note in plan.notes)


# -------------------------------------------------------------------------------------------------- fixed
def check_fixed(total: int, n: int, overlap: int) -> None:
    plan = plan_windows(total, n, overlap, "fixed")
    lat = (n - 1) // 4 + 1
    assert plan.mode == "fixed" and plan.dropped_frames == 0
    assert plan.output_frames == total, plan.summary()
    assert plan.decoded_frames == decoded(plan.merged_latents) == total + plan.padded_frames, plan.summary()
    covered = set()
    for j, w in enumerate(plan.windows):
        assert w.index == j and w.frame_end - w.frame_start == n
        assert w.frame_start % 4 == 0 and w.latent_offset == w.frame_start // 4, plan.summary()
        covered.update(range(w.frame_start, w.frame_end))
        if j == 0:
            assert w.frame_start == 0 and w.cond_latent_index is None
        else:
            prev = plan.windows[j - 1]
            # the window's first frame is the last frame of one of the previous window's own latents
            assert 0 <= w.cond_latent_index <= lat - 1, plan.summary()
            assert prev.frame_start + 4 * w.cond_latent_index == w.frame_start, plan.summary()
            assert w.frame_start - prev.frame_start >= 4, plan.summary()  # every window makes progress
    assert set(range(total)) <= covered, plan.summary()
    assert max(covered) == total + plan.padded_frames - 1  # padding = frames past the input, at the end only
    assert plan.merged_latents == plan.windows[-1].latent_offset + lat


def test_fixed_51_frames_give_51_output_frames():
    """Issue #6 "Done when": a 51-frame input gives 51 output frames and the windows cover every frame."""
    plan = plan_windows(51, 17, 1, "fixed")
    assert plan.output_frames == 51
    covered = set().union(*(range(w.frame_start, w.frame_end) for w in plan.windows))
    assert set(range(51)) <= covered
    check_fixed(51, 17, 1)
    check_fixed(51, 49, 1)


@pytest.mark.parametrize("n, overlap", [(n, o) for n in ODD_LATENT_WINDOWS for o in (1, 5, 9) if o < n])
def test_fixed_covers_every_frame(n: int, overlap: int):
    for total in range(1, 301):
        check_fixed(total, n, overlap)


@pytest.mark.parametrize("n", EVEN_LATENT_WINDOWS)
def test_fixed_refuses_windows_with_an_even_latent_count(n: int):
    """An even latent count per window cannot be frame-exact (one window alone decodes to 4L = N + 3 frames, and
    keeping the merged count odd would need a conditioning latent past the previous window's last), so fixed mode
    refuses it with a clear error; reference mode keeps the reference's behaviour."""
    for total in (1, n, 3 * n):
        with pytest.raises(ValueError) as err:
            plan_windows(total, n, 1, "fixed")
        assert str(err.value).startswith("fixed mode needs window_frames of the form 8k+1")
    plan = plan_windows(n, n, 0, "reference")
    assert plan.output_frames == 4 * plan.merged_latents == n + 3


# ------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "args, message",
    [
        ((49, 49, 1, "best"), "mode must be one of"),
        ((49, 48, 1, "fixed"), "window_frames must be 4k+1"),
        ((49, 0, 0, "reference"), "window_frames must be 4k+1"),
        ((49, 49, 49, "fixed"), "overlap_frames must be between 0 and window_frames - 1"),
        ((49, 49, -1, "reference"), "overlap_frames must be between 0 and window_frames - 1"),
        ((0, 49, 1, "fixed"), "the video has 0 frames"),
        ((48, 49, 0, "reference"), "reference mode needs at least window_frames=49 frames"),
        ((100, 49, 0, "fixed"), "fixed mode needs overlap_frames of the form 4k+1"),
        ((100, 49, 4, "fixed"), "fixed mode needs overlap_frames of the form 4k+1"),
        ((100, 21, 1, "fixed"), "fixed mode needs window_frames of the form 8k+1"),
    ],
)
def test_invalid_plans_raise_value_error(args, message: str):
    with pytest.raises(ValueError) as err:
        plan_windows(*args)
    assert str(err.value).startswith(message)


def test_modes_and_default_is_fixed():
    assert windows.MODES == ("fixed", "reference")
    assert plan_windows(60).mode == "fixed" and plan_windows(60).output_frames == 60
