"""Loader / apply / encode / sampler / decode / composite nodes on the tiny demo checkpoints, ``execute`` called
directly: inputs are never changed, applying the branch or a LoRA twice equals applying it once, style LoRAs
stack, a strength change reads no base weights, and the sampler + decode return as many frames as were encoded.

Sampler runs are 1 step at the demo size (80x96): on 9 frames (one window) to compare, and on a 40-frame 16 fps
clip sampled to 20 frames (two 17-frame windows in fixed mode) for the frame count.
"""
from __future__ import annotations

import copy
from pathlib import Path
from unittest import mock

import comfy.lora
import pytest
import torch

from videopainter.nodes import decode, encode, loaders, sampler
from videopainter.vp_core.checkpoints import attach
from videopainter.vp_core.checkpoints import loaders as vp_loaders
from videopainter.vp_core.checkpoints.tiny_checkpoints import STYLE_LORA_NAME

from vp_node_helpers import CLIP_FPS, SECOND_STYLE_LORA, run

ID_LORA = "videopainter/VideoPainterID/checkpoints/pytorch_lora_weights.safetensors"
STYLE_A, STYLE_B = f"loras/{STYLE_LORA_NAME}", f"loras/{SECOND_STYLE_LORA}"
SHORT_FRAMES = 9


def snapshot(patcher) -> dict:
    """What a node could change on a MODEL: weight patches (per key, by identity), attachments, extra models."""
    return {
        "patches": {k: [(p[0], id(p[1])) for p in v] for k, v in patcher.patches.items()},
        "patches_uuid": patcher.patches_uuid,
        "attachments": dict(patcher.attachments),
        "additional_models": {k: list(v) for k, v in patcher.additional_models.items()},
        "object_patches": dict(patcher.object_patches),
        "model_options": copy.copy(patcher.model_options),
    }


def encoded(clip_tensors, first_frame: torch.Tensor | None = None):
    video, mask = clip_tensors
    return run(encode.VideoPainterEncode, video=video, mask=mask, first_frame=first_frame, width=80, height=96,
               source_fps=CLIP_FPS, target_fps=8.0)


def sample(loaded, model, inpaint, window_frames: int = SHORT_FRAMES) -> dict:
    latent, _ = run(sampler.VideoPainterSampler, model=model, vae=loaded.vae, inpaint=inpaint, positive=loaded.positive,
                    negative=loaded.negative, seed=7, steps=1, window_frames=window_frames, overlap_frames=1,
                    window_mode="fixed")
    return latent


def with_branch(loaded, model=None):
    (out,) = run(loaders.VideoPainterApplyBranch, model=model or loaded.model, branch=loaded.branch)
    return out


@pytest.fixture(scope="module")
def inpaint(clip_tensors):
    """The first 9 frames, every frame kept: one 9-frame window (3 latents), the cheapest run that compares."""
    video, mask = clip_tensors
    return run(encode.VideoPainterEncode, video=video[:SHORT_FRAMES], mask=mask[:SHORT_FRAMES], width=80, height=96,
               source_fps=0.0)[0]


# ------------------------------------------------------------------------------------------ inputs are not changed


def test_encode_does_not_change_its_inputs(clip_tensors):
    video, mask = clip_tensors
    first = torch.rand(1, *video.shape[1:])
    before = [t.clone() for t in (video, mask, first)]
    job, frames, hole, fps, _info = encoded(clip_tensors, first_frame=first)
    assert all(torch.equal(a, b) for a, b in zip(before, (video, mask, first)))
    assert frames.shape[0] == hole.shape[0] == job.pipeline.video.shape[0] == 20 and fps == 8.0


def test_composite_does_not_change_its_inputs(clip_tensors):
    _, frames, hole, *_ = encoded(clip_tensors)
    generated = torch.rand(frames.shape[0], 96, 80, 3)
    before = [t.clone() for t in (frames, generated, hole)]
    (out,) = run(decode.VideoPainterComposite, original=frames, generated=generated, mask=hole)
    assert all(torch.equal(a, b) for a, b in zip(before, (frames, generated, hole)))
    assert out.shape == frames.shape and not torch.equal(out, frames)


@pytest.mark.parametrize("apply", ["branch", "id_lora", "style_lora"])
def test_apply_nodes_do_not_change_the_input_model(loaded, apply):
    model = with_branch(loaded)
    before = snapshot(model)
    if apply == "branch":
        (out,) = run(loaders.VideoPainterApplyBranch, model=model, branch=loaded.branch, strength=0.5)
    elif apply == "id_lora":
        (out,) = run(loaders.VideoPainterApplyIDLora, model=model, lora_name=ID_LORA)
    else:
        (out,) = run(loaders.VideoPainterStyleLora, model=model, lora_name=STYLE_A, strength=0.7)
    assert out is not model
    assert snapshot(model) == before
    assert snapshot(out) != before  # the output did change


# ------------------------------------------------------------------------------------------ twice == once


def test_branch_applied_twice_equals_once(loaded, inpaint):
    once = with_branch(loaded)
    twice = with_branch(loaded, with_branch(loaded, with_branch(loaded)))
    assert twice.get_additional_models_with_key(attach.BRANCH_KEY) == [loaded.branch]
    assert attach.branch_of(twice) == attach.branch_of(once)
    assert {k: len(v) for k, v in twice.additional_models.items()} == {k: len(v) for k, v in once.additional_models.items()}
    assert torch.equal(sample(loaded, twice, inpaint)["samples"], sample(loaded, once, inpaint)["samples"])


def test_id_lora_applied_twice_equals_once(loaded, inpaint):
    base = with_branch(loaded)
    (once,) = run(loaders.VideoPainterApplyIDLora, model=base, lora_name=ID_LORA)
    (twice,) = run(loaders.VideoPainterApplyIDLora, model=once, lora_name=ID_LORA)
    counts = {k: len(v) for k, v in once.patches.items()}
    assert counts and set(counts.values()) == {1}
    assert {k: len(v) for k, v in twice.patches.items()} == counts
    assert list(attach.loras_of(twice)) == list(attach.loras_of(once))
    a, b = sample(loaded, once, inpaint)["samples"], sample(loaded, twice, inpaint)["samples"]
    assert torch.equal(a, b)
    assert not torch.equal(a, sample(loaded, base, inpaint)["samples"])  # the LoRA does act


def test_two_style_loras_stack(loaded):
    base = with_branch(loaded)
    (a,) = run(loaders.VideoPainterStyleLora, model=base, lora_name=STYLE_A, strength=1.0)
    (ab,) = run(loaders.VideoPainterStyleLora, model=a, lora_name=STYLE_B, strength=0.5)
    (aa,) = run(loaders.VideoPainterStyleLora, model=a, lora_name=STYLE_A, strength=1.0)
    (b,) = run(loaders.VideoPainterStyleLora, model=base, lora_name=STYLE_B, strength=0.5)
    assert set(ab.patches) == set(a.patches) == set(b.patches)
    assert {len(v) for v in ab.patches.values()} == {2} and {len(v) for v in aa.patches.values()} == {1}
    assert [r.kind for r in attach.loras_of(ab).values()] == ["style", "style"]
    # the stacked weight is the base weight plus both deltas (ComfyUI's own patch arithmetic)
    weights = base.model.state_dict()
    for key in sorted(ab.patches)[:6]:
        w = weights[key].float()
        delta = lambda m: comfy.lora.calculate_weight(m.patches[key], w.clone(), key) - w  # noqa: E731
        torch.testing.assert_close(delta(ab), delta(a) + delta(b), rtol=1e-5, atol=1e-6)
        assert delta(a).abs().max() > 0 and delta(b).abs().max() > 0


def test_style_lora_tensors_all_match_the_demo_backbone(loaded):
    """The demo LoRA uses every published CogVideoX key family (attention + feed-forward): nothing is unmatched."""
    _, lora = attach.attach_lora(loaded.model, _lora_path(STYLE_A), 1.0, "style")
    assert lora.unmatched == [] and len(lora.patches) == 4 * 6


def _lora_path(name: str) -> str:
    from videopainter.nodes import paths

    return str(paths.resolve("loras", name))


# ------------------------------------------------------------------------------------------ no reload on strength


def test_style_lora_strength_change_reads_no_base_weights(demo_models):
    reads = mock.patch.object(vp_loaders, "read_safetensors", wraps=vp_loaders.read_safetensors)
    backbone_loads = mock.patch.object(vp_loaders, "load_backbone", wraps=vp_loaders.load_backbone)
    with reads as read, backbone_loads as load:
        model, _ = run(loaders.VideoPainterBackboneLoader, model_folder="CogVideoX-5b-I2V", weight_dtype="fp32")

        def base_reads() -> int:
            return sum(1 for c in read.call_args_list if "transformer" in Path(c.args[0]).parts)

        assert load.call_count == 1 and base_reads() == 1  # the counters see the base load
        (half,) = run(loaders.VideoPainterStyleLora, model=model, lora_name=STYLE_A, strength=0.5)
        (full,) = run(loaders.VideoPainterStyleLora, model=model, lora_name=STYLE_A, strength=1.0)
        (back,) = run(loaders.VideoPainterStyleLora, model=full, lora_name=STYLE_A, strength=0.5)
        assert load.call_count == 1 and base_reads() == 1
    assert {p[0] for v in half.patches.values() for p in v} == {0.5}
    assert {p[0] for v in full.patches.values() for p in v} == {1.0}
    assert {p[0] for v in back.patches.values() for p in v} == {0.5}
    assert half.model is model.model is full.model  # the same loaded weights, patched differently


# ------------------------------------------------------------------------------------------ sampler + decode


def test_sampler_and_decode_return_as_many_frames_as_encoded(loaded, clip_tensors):
    inpaint_job, frames, *_ = encoded(clip_tensors)
    (model,) = run(loaders.VideoPainterApplyIDLora, model=with_branch(loaded), lora_name=ID_LORA)
    latent = sample(loaded, model, inpaint_job, window_frames=17)
    (images,) = run(decode.VideoPainterDecode, vae=loaded.vae, latent=latent)
    assert frames.shape[0] == 20  # 40 frames at 16 fps, down-sampled to 8 fps
    assert images.shape == (frames.shape[0], 96, 80, 3), images.shape
    assert torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
