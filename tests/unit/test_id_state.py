"""The ID-resample state as a value: two chained runs equal one run (bit-identical, reference mode), it survives a
safetensors round trip, and resetting it at a window changes only what it should."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from videopainter.vp_core.pipeline import preprocess, sampling
from videopainter.vp_core.conformance.runner import Fixture
from videopainter.vp_core.pipeline.id_state_io import load_state, save_state
from videopainter.vp_core.pipeline.windows import plan_windows

from conformance_fixture import FIXTURE, needs_fixture

needs = needs_fixture("cases", "any_length")
STEPS = 2


@pytest.fixture(scope="module")
def setup():
    case = FIXTURE / "cases" / "any_length"
    params = json.loads((case / "params.json").read_text())
    inp = load_file(str(case / "inputs.safetensors"))
    pipe = preprocess.reference_inputs(inp["video_u8"], inp["masks_u8"], inp["first_frame_inpainted_u8"], params["dilate_size"])
    fx = Fixture(FIXTURE)
    models = fx.models(id_lora=True)
    settings = sampling.SamplerSettings(steps=STEPS, prev_clip_weight=params["prev_clip_weight"], vae_tiling=False, seed=42)
    return models, pipe, inp, settings, params


def _run(setup, video, masks, image, state=None, capture=False, reset=()):
    models, _, inp, settings, params = setup
    cond = sampling.InpaintConditioning(video, masks, image, inp["prompt_embeds"], inp["negative_prompt_embeds"],
                                        params["height"], params["width"])
    plan = plan_windows(video.shape[0], 17, 0, "reference")
    per_window = {}

    def on_step(info):
        if info.step == STEPS - 1:
            per_window[info.window] = info.latents.clone()

    result = sampling.Sampler(models, cond, plan, settings, on_step=on_step).run(state, capture, reset)
    return result, per_window


@needs
@torch.no_grad()
def test_two_chained_runs_equal_one_run(setup):
    _, pipe, *_ = setup
    single, single_w = _run(setup, pipe.video, pipe.masks, pipe.image)
    first, first_w = _run(setup, pipe.video[:34], pipe.masks[:34], pipe.image, capture=True)
    assert first.id_state is not None and first.id_state.window_index == 1
    assert len(first.id_state.hidden) == 4  # one entry per backbone block
    second, second_w = _run(setup, pipe.video[34:], pipe.masks[34:], pipe.image, state=first.id_state)
    assert torch.equal(first_w[0], single_w[0]) and torch.equal(first_w[1], single_w[1])
    assert torch.equal(second_w[0], single_w[2])  # ID pool, I2V latent and random draws all carried over
    joined = sampling.join_latents(first.latents, second.latents, second.plan.shared_latents)
    assert torch.equal(joined, single.latents)


@needs
@torch.no_grad()
def test_state_round_trips_through_safetensors(setup, tmp_path):
    _, pipe, *_ = setup
    first, _ = _run(setup, pipe.video[:34], pipe.masks[:34], pipe.image, capture=True)
    state = first.id_state
    loaded = load_state(save_state(state, tmp_path / "state.safetensors"))
    assert loaded.window_index == state.window_index
    assert all(torch.equal(a, b) for a, b in zip(loaded.hidden, state.hidden))
    for name in ("token_index", "token_mask", "prev_latents", "rng_state"):
        assert torch.equal(getattr(loaded, name), getattr(state, name)), name
    _, direct = _run(setup, pipe.video[34:], pipe.masks[34:], pipe.image, state=state)
    _, resumed = _run(setup, pipe.video[34:], pipe.masks[34:], pipe.image, state=loaded)
    assert torch.equal(direct[0], resumed[0])


def test_a_foreign_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a VideoPainter ID state"):
        load_state(tmp_path / "other.safetensors")


@needs
@torch.no_grad()
def test_reset_drops_only_the_identity_pool(setup):
    _, pipe, *_ = setup
    _, plain = _run(setup, pipe.video, pipe.masks, pipe.image)
    _, reset = _run(setup, pipe.video, pipe.masks, pipe.image, reset=(1,))
    assert torch.equal(plain[0], reset[0])
    assert not torch.equal(plain[1], reset[1])


class _Stop(Exception):
    pass


@needs
@torch.no_grad()
def test_interrupted_run_resumes_from_its_checkpoint(setup, tmp_path):
    models, pipe, inp, settings, params = setup
    single, _ = _run(setup, pipe.video, pipe.masks, pipe.image)
    cond = sampling.InpaintConditioning(pipe.video, pipe.masks, pipe.image, inp["prompt_embeds"], inp["negative_prompt_embeds"],
                                        params["height"], params["width"])
    plan = plan_windows(pipe.video.shape[0], 17, 0, "reference")
    saved = []
    steps = []

    def interrupt():  # like ComfyUI's Cancel, raised at the first step of window 1
        if len(steps) == STEPS:
            raise _Stop()

    def on_step(info):
        steps.append(info)

    def on_checkpoint(state):
        saved.append(save_state(state, tmp_path / f"ckpt_{state.resume_window}.safetensors"))

    with pytest.raises(_Stop):
        sampling.Sampler(models, cond, plan, settings, on_step=on_step, interrupt=interrupt).run(on_checkpoint=on_checkpoint)
    assert [p.name for p in saved] == ["ckpt_1.safetensors"]
    resumed = sampling.Sampler(models, cond, plan, settings).run(load_state(saved[0]))
    assert torch.equal(resumed.latents, single.latents)
