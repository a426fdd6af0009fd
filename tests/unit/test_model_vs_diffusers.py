"""Our comfy.ops backbone against diffusers' own CogVideoX modules on configs other than set A's (layer counts,
head sizes, frame counts that switch the learned positional embedding to the sin-cos table)."""
from __future__ import annotations

import pytest
import torch

import comfy.ops
from diffusers import CogVideoXTransformer3DModel
from diffusers.models.embeddings import CogVideoXPatchEmbed

from videopainter.vp_core.model.config import CogVideoXConfig
from videopainter.vp_core.model.layers import PatchEmbed
from videopainter.vp_core.model.rope import video_rope
from videopainter.vp_core.model.transformer import CogVideoXTransformer
from videopainter.vp_core.checkpoints.tiny_checkpoints import TRANSFORMER


def _random_state(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * (0.2 if v.ndim > 1 else 0.05) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("latent_frames", [5, 3, 9])  # 5 = the checkpoint's grid; 3, 9 -> on-the-fly sin-cos table
def test_patch_embed_matches_diffusers(latent_frames: int):
    cfg = CogVideoXConfig.from_dict(TRANSFORMER)
    ref = CogVideoXPatchEmbed(
        patch_size=2, in_channels=32, embed_dim=cfg.inner_dim, text_embed_dim=32, sample_width=10, sample_height=12,
        sample_frames=17, max_text_seq_length=16, use_positional_embeddings=False, use_learned_positional_embeddings=True,
    )
    ours = PatchEmbed(cfg, 32, dtype=torch.float32, operations=comfy.ops.manual_cast)
    sd = _random_state(ref, 0)
    ref.load_state_dict(sd)
    ours.load_state_dict(sd)
    x, t = torch.randn(2, latent_frames, 32, 12, 10), torch.randn(2, 16, 32)
    assert torch.equal(ours(t, x), ref(t, x))


@pytest.mark.parametrize("layers, heads, head_dim, latent_frames", [(3, 2, 64, 3), (5, 4, 16, 5)])
@torch.no_grad()
def test_backbone_matches_diffusers(layers: int, heads: int, head_dim: int, latent_frames: int):
    fields = dict(TRANSFORMER, num_layers=layers, num_attention_heads=heads, attention_head_dim=head_dim)
    cfg = CogVideoXConfig.from_dict(fields)
    ref = CogVideoXTransformer3DModel(**fields).eval()
    ours = CogVideoXTransformer(cfg, dtype=torch.float32, operations=comfy.ops.manual_cast).eval()
    sd = _random_state(ref, 1)
    ref.load_state_dict(sd)
    ours.load_state_dict(sd)
    x = torch.randn(2, latent_frames, 32, 12, 10)
    context = torch.randn(2, 16, 32)
    t = torch.tensor([999, 421])
    rope = video_rope(cfg, latent_frames, 12, 10)
    want = ref(hidden_states=x, encoder_hidden_states=context, timestep=t, image_rotary_emb=rope, return_dict=False)[0]
    got = ours(x, context, t, rope)
    assert (got - want).abs().max() <= 1e-5 * max(1.0, want.abs().max().item())
