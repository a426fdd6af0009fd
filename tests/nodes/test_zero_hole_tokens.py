"""Zero hole tokens (issue #16 item 4) through the sampler node on the tiny demo weights, with and without the ID
LoRA: an empty mask, a mask whose values all sit below the encoder's threshold, a mask that vanishes after the
first window, and one that moves out of the frame mid-clip.

"Correct" is the reference's literal maths: with no hole token, every extra key of ``[K_cur; K_ext]`` is a null key
(the key LayerNorm's bias, rotated at video positions) with a zero value, so the attention output is the plain
attention's scaled by ``Z / (Z + M_null)``. The reduced form (the default) must give what the literal form gives.
"""
from __future__ import annotations

import math
from unittest import mock

import pytest
import torch

from videopainter.nodes import encode, loaders, sampler
from videopainter.vp_core.model import id_resample

from vp_node_helpers import CLIP_FPS, run

ID_LORA = "videopainter/VideoPainterID/checkpoints/pytorch_lora_weights.safetensors"


def _masks(kind: str, mask: torch.Tensor) -> torch.Tensor:
    """The demo clip's mask turned into each zero-token case (source frames at 16 fps, 2 windows after sampling)."""
    out = mask.clone()
    if kind == "empty":
        return torch.zeros_like(mask)
    if kind == "below threshold":
        return torch.full_like(mask, 0.3)  # under the encoder's default threshold 0.5
    if kind == "vanishes":
        out[16:] = 0  # holes in the first window only
        return out
    if kind == "appears":  # no hole in the first window (source frames 0-32), holes in the second
        out[:34] = 0
        return out
    if kind == "leaves the frame":  # a square that slides out to the right (80 px wide) and is gone from frame 10 on
        out.zero_()
        for i in range(10):
            x0 = 40 + 4 * i
            out[i, 30:60, x0:x0 + 24] = 1.0
        return out
    raise AssertionError(kind)


def _sample(loaded, model, clip_tensors, kind: str):
    video, mask = clip_tensors
    inpaint = run(encode.VideoPainterEncode, video=video, mask=_masks(kind, mask), width=80, height=96,
                  source_fps=CLIP_FPS, target_fps=8.0)[0]
    latent, state = run(sampler.VideoPainterSampler, model=model, vae=loaded.vae, inpaint=inpaint,
                        positive=loaded.positive, negative=loaded.negative, seed=3, steps=2, window_frames=17,
                        overlap_frames=1, window_mode="fixed", prev_clip_weight=0.5, output_id_state=True)
    return latent["samples"], state


@pytest.fixture(scope="module")
def models(loaded):
    (branch,) = run(loaders.VideoPainterApplyBranch, model=loaded.model, branch=loaded.branch)
    (with_id,) = run(loaders.VideoPainterApplyIDLora, model=branch, lora_name=ID_LORA)
    return branch, with_id


def no_mass_without_holes(q, null, rope, grid, nonhole, text_len):
    """``null_log_mass`` that drops the null keys when no token is a hole (a naive 'nothing to attend to')."""
    if bool(nonhole.all()):
        return torch.full(q.shape[:3], -math.inf)
    return NULL_LOG_MASS(q, null, rope, grid, nonhole, text_len)


NULL_LOG_MASS = id_resample.null_log_mass


KINDS = ["empty", "below threshold", "vanishes", "appears", "leaves the frame"]


@pytest.mark.parametrize("kind", KINDS)
def test_zero_hole_tokens_with_the_id_lora_match_the_literal_form(loaded, models, clip_tensors, kind):
    _, with_id = models
    reduced, state = _sample(loaded, with_id, clip_tensors, kind)
    assert torch.isfinite(reduced).all()
    with mock.patch.object(id_resample, "FORM", "literal"):
        literal, _ = _sample(loaded, with_id, clip_tensors, kind)
    torch.testing.assert_close(reduced, literal, rtol=0, atol=2e-5)
    assert len(state.hidden) == len(with_id.model.diffusion_model.transformer_blocks)  # the state to chain on


@pytest.mark.parametrize("kind", ["empty", "leaves the frame"])
def test_zero_hole_tokens_without_the_id_lora(loaded, models, clip_tensors, kind):
    branch, _ = models
    latents, _ = _sample(loaded, branch, clip_tensors, kind)
    assert torch.isfinite(latents).all()


def test_the_null_keys_take_mass_when_no_token_is_a_hole(loaded, models, clip_tensors):
    """A window without holes still shapes the result: its block outputs are the next window's ID pool, and the
    next window's first step reads that window's (empty) hole set, all null keys. Dropping the null keys' mass in
    the calls without holes (what a naive 'skip the extra keys when empty' would do) changes the output. (With an
    empty mask throughout, replace-gt keeps only the known latents, so no model output reaches the result.)"""
    _, with_id = models
    kept, _ = _sample(loaded, with_id, clip_tensors, "appears")
    with mock.patch.object(id_resample, "null_log_mass", no_mass_without_holes):
        dropped, _ = _sample(loaded, with_id, clip_tensors, "appears")
    assert (kept - dropped).abs().max() > 1e-2
