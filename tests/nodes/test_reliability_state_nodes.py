"""Reliability matrix, issue #16, with ``execute`` called directly where the server cannot produce the input: a state
made with another model, a state file of an older version, a VAE that overflows to NaN, and the checks that run
before any step. Messages come from ``tests/reliability_cases.py`` (the README table)."""
from __future__ import annotations

import dataclasses
import logging
from unittest import mock

import folder_paths
import pytest
import torch

from reliability_cases import message as msg
from videopainter.nodes import decode, encode, id_state, loaders, memory, sampler
from videopainter.vp_core.pipeline import id_state_io
from videopainter.vp_core.pipeline.id_state import MODEL_FIELDS, model_fingerprint
from videopainter.vp_core.model.transformer import CogVideoXTransformer

from vp_node_helpers import run

WIDTH, HEIGHT = 80, 96


@pytest.fixture(scope="module")
def model(loaded):
    """Branch + ID LoRA: the state then holds every block's tokens."""
    (out,) = run(loaders.VideoPainterApplyBranch, model=loaded.model, branch=loaded.branch)
    (out,) = run(loaders.VideoPainterApplyIDLora, model=out,
                 lora_name="videopainter/VideoPainterID/checkpoints/pytorch_lora_weights.safetensors")
    return out


@pytest.fixture(scope="module")
def part(loaded, model, clip_tensors):
    """The encoded demo clip and the ID state after it (2 windows, 1 step)."""
    video, mask = clip_tensors
    inpaint = run(encode.VideoPainterEncode, video=video, mask=mask, width=WIDTH, height=HEIGHT, source_fps=0.0)[0]
    _, state = sample(loaded, model, inpaint, output_id_state=True)
    return inpaint, state


def sample(loaded, model, inpaint, **given):
    return run(sampler.VideoPainterSampler, model=model, vae=loaded.vae, inpaint=inpaint, positive=loaded.positive,
               negative=loaded.negative, steps=1, window_frames=17, **given)


def no_steps():
    """The transformer must not be called: the state is refused first."""
    return mock.patch.object(CogVideoXTransformer, "forward", side_effect=AssertionError("a step ran"))


def test_16_2_a_state_made_with_another_model_is_refused_before_any_step(loaded, model, part):
    inpaint, state = part
    other = dict(state.made_with["model"], num_layers=6)
    foreign = dataclasses.replace(state, hidden=state.hidden + state.hidden[:2],
                                  made_with=dict(state.made_with, model=other, model_fingerprint=model_fingerprint(other)))
    with no_steps(), pytest.raises(ValueError) as e:
        sample(loaded, model, inpaint, id_state=foreign)
    assert str(e.value) == msg("state_other_model")


@pytest.mark.parametrize("change, words", [
    (dict(window_frames=33), "window_frames 33 (this run: 17)"),
    (dict(overlap_frames=5), "overlap_frames 5 (this run: 1)"),
    (dict(height=480, width=720), "working size 720x480 (WxH; this run: 80x96)"),
])
def test_16_2_recorded_settings_that_differ_are_spelled_out(loaded, model, part, change, words):
    inpaint, state = part
    with no_steps(), pytest.raises(ValueError, match=r"^id_state: this state does not fit this run: ") as e:
        sample(loaded, model, inpaint, id_state=dataclasses.replace(state, made_with={**state.made_with, **change}))
    assert words in str(e.value)


def test_16_2_without_recorded_settings_the_shapes_are_still_checked(loaded, model, part):
    """A state without ``made_with`` (an old file) of another size still fails clearly, from its tensor shapes."""
    inpaint, state = part
    small = dataclasses.replace(state, made_with=None, prev_latents=state.prev_latents[..., :8, :],
                                token_mask=torch.zeros(2, 120, dtype=torch.bool))
    with no_steps(), pytest.raises(ValueError) as e:
        sample(loaded, model, inpaint, id_state=small)
    assert "window latents (L, C, h, w) (5, 16, 8, 10) (this run: (5, 16, 12, 10))" in str(e.value)
    assert "video tokens per window 120 (this run: 150)" in str(e.value)
    cfg_off = dataclasses.replace(state, made_with=None)
    with no_steps(), pytest.raises(ValueError, match=r"CFG batch \(2 with cfg > 1, 1 without\) 2 \(this run: 1\)"):
        sample(loaded, model, inpaint, id_state=cfg_off, cfg=1.0)


def test_16_2_an_old_state_file_is_accepted_with_a_warning(loaded, model, part, tmp_path, monkeypatch, caplog):
    inpaint, state = part
    monkeypatch.setattr(folder_paths, "input_directory", str(tmp_path))
    id_state_io.save_state(dataclasses.replace(state, made_with=None), tmp_path / "e2e_old_state.safetensors")
    with caplog.at_level(logging.WARNING):
        (old,) = run(id_state.VideoPainterLoadIDState, state_file="e2e_old_state.safetensors")
    assert msg("state_old_file", input=tmp_path) in caplog.text
    assert old.made_with is None
    latent, _ = sample(loaded, model, inpaint, id_state=old)  # completes: its shapes fit
    fresh, _ = sample(loaded, model, inpaint, id_state=state)
    assert torch.equal(latent["samples"], fresh["samples"])


def test_16_2_saved_states_keep_what_they_were_made_with(part, tmp_path):
    _, state = part
    loaded_state = id_state_io.load_state(id_state_io.save_state(state, tmp_path / "s.safetensors"))
    assert loaded_state.made_with == state.made_with
    assert set(state.made_with["model"]) == set(MODEL_FIELDS)
    assert state.made_with["tokens"] == 5 * 6 * 5 and state.made_with["batch"] == 2


def test_16_3_nan_from_the_vae_while_decoding(loaded, memory_calls):
    latent = {"samples": torch.zeros(1, 16, 5, 12, 10), "videopainter": {"output_frames": 17}}
    real = type(loaded.vae.model.decoder).forward

    def overflowing(self, *args, **kwargs):  # what an fp16 overflow gives
        out, cache = real(self, *args, **kwargs)
        return torch.full_like(out, float("nan")), cache

    with mock.patch.object(type(loaded.vae.model.decoder), "forward", overflowing):
        with pytest.raises(memory.VideoPainterNonFiniteError) as e:
            run(decode.VideoPainterDecode, vae=loaded.vae, latent=latent, tiling=False)
    assert str(e.value) == msg("nan_decode")
    assert e.value.__context__ is None
    empty, unload = memory_calls
    assert empty.called and unload.called


def test_16_3_nan_in_a_step_names_the_window_and_step_and_releases_memory(loaded, model, part, memory_calls):
    inpaint, _ = part
    real = CogVideoXTransformer.forward
    calls = []

    def nan_in_window_2(self, *args, **kwargs):
        calls.append(1)
        out = real(self, *args, **kwargs)
        return out * float("nan") if len(calls) == 2 else out

    with mock.patch.object(CogVideoXTransformer, "forward", nan_in_window_2):
        with pytest.raises(memory.VideoPainterNonFiniteError, match=r"^non-finite values in the latents after step 1 "
                                                                      r"of 1 of window 2 of 3: 9600 NaN and 0 infinite"):
            sample(loaded, model, inpaint)
    empty, unload = memory_calls
    assert empty.called and unload.called
