"""Memory budget and host integration (issue #18 item 2) on the tiny demo weights, nodes called directly:
attention overrides in the MODEL's ``transformer_options`` reach every attention call, the sampler budgets the ID
states with ``memory_required``, the VAE passes an estimate and falls back to tiled decoding on out-of-memory, and
the feed-forward's token chunks are exact.
"""
from __future__ import annotations

import logging
from unittest import mock

import comfy.model_management
import torch

from videopainter.nodes import decode, encode, loaders, sampler
from videopainter.vp_core.pipeline import sampling
from videopainter.vp_core.model import layers

from vp_node_helpers import CLIP_FPS, run

ID_LORA = "videopainter/VideoPainterID/checkpoints/pytorch_lora_weights.safetensors"


def _inpaint(clip_tensors):
    video, mask = clip_tensors
    return run(encode.VideoPainterEncode, video=video, mask=mask, width=80, height=96, source_fps=CLIP_FPS,
               target_fps=8.0)[0]


def _sample(loaded, model, inpaint):
    return run(sampler.VideoPainterSampler, model=model, vae=loaded.vae, inpaint=inpaint, positive=loaded.positive,
               negative=loaded.negative, seed=1, steps=1, window_frames=17, overlap_frames=1, window_mode="fixed")


def test_attention_override_from_transformer_options_is_used(loaded, clip_tensors):
    (model,) = run(loaders.VideoPainterApplyBranch, model=loaded.model, branch=loaded.branch)
    calls = []

    def override(func, *args, **kwargs):
        calls.append(args[0].shape)
        return func(*args, **kwargs)

    patched = model.clone()
    patched.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = override
    inpaint = _inpaint(clip_tensors)
    plain, _ = _sample(loaded, model, inpaint)
    assert not calls
    overridden, _ = _sample(loaded, patched, inpaint)
    layers_n = len(model.model.diffusion_model.transformer_blocks)
    assert len(calls) == 2 * layers_n  # 2 windows x 1 step x every backbone block
    assert torch.equal(plain["samples"], overridden["samples"])


def test_sampler_budgets_the_id_states(loaded, clip_tensors):
    (branch,) = run(loaders.VideoPainterApplyBranch, model=loaded.model, branch=loaded.branch)
    (model,) = run(loaders.VideoPainterApplyIDLora, model=branch, lora_name=ID_LORA)
    asked = []
    real = comfy.model_management.load_models_gpu

    def spy(models, memory_required=0, **kwargs):
        if any(m is model or getattr(m, "model", None) is model.model for m in models):
            asked.append(memory_required)
        return real(models, memory_required=memory_required, **kwargs)

    budget = mock.patch.object(sampling.Sampler, "activation_bytes", return_value=0)
    with mock.patch.object(comfy.model_management, "load_models_gpu", spy), budget:
        _sample(loaded, model, _inpaint(clip_tensors))
    cfg = model.model.diffusion_model.cfg
    token_bytes = 2 * cfg.inner_dim * 4 * cfg.num_layers  # CFG batch, fp32, every block
    assert len(asked) == 2
    # window 0: the state it captures (its holes and window 1's), on the compute device; the last window's goes
    # to host memory at once, and the previous one lives in host memory here (CPU run: the same device)
    assert asked[0] > 0 and asked[0] % token_bytes == 0
    assert asked[1] == asked[0]


def test_vae_decode_falls_back_to_tiles_on_out_of_memory(loaded, caplog):
    latent = {"samples": torch.randn(1, 16, 5, 12, 10, generator=torch.Generator().manual_seed(0)),
              "videopainter": {"output_frames": 17}}
    vae = loaded.vae
    real = type(vae)._decode_iter
    tried = []

    def first_untiled_fails(self, latents, tiling, interrupt):
        tried.append(tiling)
        if not tiling:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        yield from real(self, latents, tiling, interrupt)

    with mock.patch.object(type(vae), "_decode_iter", first_untiled_fails), caplog.at_level(logging.WARNING):
        (frames,) = run(decode.VideoPainterDecode, vae=vae, latent=latent, tiling=False)
    assert tried == [False, True]
    assert "retrying with tiled decoding" in caplog.text
    (tiled,) = run(decode.VideoPainterDecode, vae=vae, latent=latent, tiling=True)
    assert torch.equal(frames, tiled)


def test_vae_passes_an_estimate_to_the_memory_manager(loaded):
    vae = loaded.vae
    seen = []
    real = comfy.model_management.load_models_gpu
    with mock.patch.object(comfy.model_management, "load_models_gpu",
                           lambda models, memory_required=0, **k: (seen.append(memory_required), real(models, **k))):
        vae.decode_stream(torch.zeros(1, 3, 16, 12, 10), False, lambda x: None)
        vae.decode_stream(torch.zeros(1, 3, 16, 12, 10), True, lambda x: None)
    assert seen[0] > 0 and seen[1] <= seen[0]


def test_feed_forward_chunks_are_exact():
    ff = loaded_ff()
    x = torch.randn(2, 37, ff.net[0].proj.in_features, dtype=torch.float64)
    whole = ff(x)
    with mock.patch.object(layers, "FF_CHUNK_TOKENS", 8):
        chunked = ff(x)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


def loaded_ff():
    import comfy.ops

    from videopainter.vp_core.model.config import CogVideoXConfig

    cfg = CogVideoXConfig(num_attention_heads=2, attention_head_dim=16, num_layers=1)
    ff = layers.FeedForward(cfg, dtype=torch.float64, operations=comfy.ops.manual_cast)
    for p in ff.parameters():
        p.data = torch.randn(p.shape, dtype=torch.float64) * 0.1
    return ff
