"""VideoPainter's context encoder ("branch", spec §2): two CogVideoX blocks over [z_t | masked-video latents | mask]."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .config import CogVideoXConfig
from .layers import Block, PatchEmbed, Rope, TimestepEmbedding

# Tensors the official branch checkpoint stores but the forward pass never uses (spec §1.3).
UNUSED_PREFIXES = ("branch_x_embedder.", "norm_final.", "norm_out.", "proj_out.")


class VideoPainterBranch(nn.Module):
    """Key-compatible with the official ``branch/diffusion_pytorch_model.safetensors`` (unused tensors excluded)."""

    gradient_checkpointing = False  # as CogVideoXTransformer.gradient_checkpointing (training only)

    def __init__(self, cfg: CogVideoXConfig, dtype=None, device=None, operations=None):
        super().__init__()
        self.cfg = cfg
        kw = dict(dtype=dtype, device=device, operations=operations)
        self.patch_embed = PatchEmbed(cfg, cfg.branch_in_channels, **kw)
        self.time_embedding = TimestepEmbedding(cfg, **kw)
        self.transformer_blocks = nn.ModuleList([Block(cfg, **kw) for _ in range(cfg.num_layers)])
        self.branch_blocks = nn.ModuleList(
            [operations.Linear(cfg.inner_dim, cfg.inner_dim, dtype=dtype, device=device) for _ in range(cfg.num_layers)]
        )

    def forward(self, latents: Tensor, cond: Tensor, context: Tensor, timestep: Tensor, rope: Rope, scale: float = 1.0) -> list[Tensor]:
        """Branch features, one ``[B, V, D]`` per block.

        Parameters:
            latents: noisy latents z_t ``[B, F, 16, H, W]`` (no image latents).
            cond: [masked-video latents (16) | latent mask (1)] ``[B, F, 17, H, W]``.
            scale: the reference's ``conditioning_scale``.
        """
        temb = self.time_embedding(timestep, latents.dtype)
        tokens = self.patch_embed(context, torch.cat([latents, cond], dim=2))
        t_len = context.shape[1]
        text, video = tokens[:, :t_len], tokens[:, t_len:]
        out = []
        for block, proj in zip(self.transformer_blocks, self.branch_blocks):
            if self.gradient_checkpointing and torch.is_grad_enabled():
                video, text = checkpoint(block, video, text, temb, rope, use_reentrant=False)
            else:
                video, text = block(video, text, temb, rope)
            out.append((proj(video) * scale).to(latents.dtype))
        return out
