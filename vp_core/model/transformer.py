"""CogVideoX-I2V backbone with VideoPainter's branch injection and ID-resample attention (spec §3, §4)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .config import CogVideoXConfig
from .id_resample import IDResample
from .layers import Block, PatchEmbed, Rope, TimestepEmbedding


def token_mask(latent_mask: Tensor, patch_size: int) -> Tensor:
    """Hole tokens ``[B, F*h*w]`` (bool) from a latent mask ``[B, F, 1, H, W]`` (1 = hole).

    A token is a hole if ANY of its latent pixels is masked (2x2 average pool, threshold > 0, as the reference).
    The one place that computes the token mask: used for mask-selective fusion and for ID resampling (§9 item 26).
    """
    b, f, _, h, w = latent_mask.shape
    pooled = F.avg_pool2d(latent_mask.reshape(b * f, 1, h, w).float(), kernel_size=patch_size, stride=patch_size)
    return (pooled.view(b, f, -1) > 0).flatten(1)


@dataclass
class Injection:
    """Branch features to add into the backbone.

    Parameters:
        samples: one ``[B, V, D]`` tensor per branch block (already scaled).
        hole_tokens: ``[B, V]`` bool; with ``mask_add`` the features go to background tokens only (False entries).
        mask_add: the reference's mask-selective fusion (on in every script).
    """

    samples: list[Tensor]
    hole_tokens: Tensor | None
    mask_add: bool = True


@dataclass
class Capture:
    """Collects each block's output video tokens (after the branch addition) at the given token positions."""

    token_index: Tensor
    hidden: list[Tensor] = field(default_factory=list)
    text: list[Tensor] | None = None  # also keep the text tokens (conformance checks the whole sequence)
    device: torch.device | str | None = None  # where to keep the tokens (None: where they are computed)


class CogVideoXTransformer(nn.Module):
    """The CogVideoX-5B-I2V transformer (``transformer/`` of the diffusers folder), key-compatible with it."""

    # Recompute each block in the backward pass instead of keeping its activations (training only: the reference's
    # --gradient_checkpointing; torch's non-reentrant checkpoint, which needs no input that requires grad).
    gradient_checkpointing = False

    def __init__(self, cfg: CogVideoXConfig, dtype=None, device=None, operations=None):
        super().__init__()
        self.cfg = cfg
        kw = dict(dtype=dtype, device=device, operations=operations)
        self.patch_embed = PatchEmbed(cfg, cfg.in_channels, **kw)
        self.time_embedding = TimestepEmbedding(cfg, **kw)
        self.transformer_blocks = nn.ModuleList([Block(cfg, **kw) for _ in range(cfg.num_layers)])
        d = cfg.inner_dim
        self.norm_final = operations.LayerNorm(d, eps=cfg.norm_eps, elementwise_affine=cfg.norm_elementwise_affine, dtype=dtype, device=device)
        norm_out = nn.Module()
        norm_out.linear = operations.Linear(cfg.time_embed_dim, 2 * d, dtype=dtype, device=device)
        norm_out.norm = operations.LayerNorm(d, eps=cfg.norm_eps, elementwise_affine=cfg.norm_elementwise_affine, dtype=dtype, device=device)
        self.norm_out = norm_out
        p = cfg.patch_size
        self.proj_out = operations.Linear(d, p * p * cfg.out_channels, dtype=dtype, device=device)

    def branch_index(self, block: int, branch_blocks: int) -> int:
        """Branch sample that backbone block ``block`` adds: ``block // ceil(num_layers / branch_blocks)``."""
        return block // math.ceil(len(self.transformer_blocks) / branch_blocks)

    def forward(
        self,
        x: Tensor,
        context: Tensor,
        timestep: Tensor,
        rope: Rope,
        injection: Injection | None = None,
        id_resample: IDResample | None = None,
        capture: Capture | None = None,
        transformer_options: dict | None = None,
    ) -> Tensor:
        """Predict v for ``x`` = channel concat [noisy latents; image latents] ``[B, F, 32, H, W]``.

        Parameters:
            context: text embeddings ``[B, T, text_dim]``.
            timestep: ``[B]``.
            rope: (cos, sin) ``[F*h*w, head_dim]`` for the video tokens.
            injection: branch features (None: plain CogVideoX).
            id_resample: extra keys/values from the previous clip or the clip's own holes (None: standard attention).
            capture: when given, block outputs are stored there (the ID state of the next window).
            transformer_options: ComfyUI's (the MODEL's ``model_options["transformer_options"]``), passed to its
                attention so overrides from other nodes apply.
        """
        b, f, _, h, w = x.shape
        temb = self.time_embedding(timestep, x.dtype)
        tokens = self.patch_embed(context, x)
        t_len = context.shape[1]
        text, video = tokens[:, :t_len], tokens[:, t_len:]
        grid = (f, h // self.cfg.patch_size, w // self.cfg.patch_size)
        for i, block in enumerate(self.transformer_blocks):
            extra = None if id_resample is None else id_resample.attention(i, block, temb, rope, t_len, grid)
            if self.gradient_checkpointing and torch.is_grad_enabled():
                video, text = checkpoint(block, video, text, temb, rope, extra, transformer_options, use_reentrant=False)
            else:
                video, text = block(video, text, temb, rope, extra, transformer_options)
            if injection is not None and injection.samples:
                add = injection.samples[self.branch_index(i, len(injection.samples))]
                if injection.mask_add:
                    video = torch.where(injection.hole_tokens[..., None], video, video + add)
                else:
                    video = video + add
            if capture is not None:
                kept = video[:, capture.token_index]
                capture.hidden.append(kept if capture.device is None else kept.to(capture.device))
                if capture.text is not None:
                    capture.text.append(text)
        x_out = self.norm_final(torch.cat([text, video], dim=1))[:, t_len:]
        shift, scale = self.norm_out.linear(F.silu(temb)).chunk(2, dim=1)
        x_out = self.norm_out.norm(x_out) * (1 + scale[:, None]) + shift[:, None]
        x_out = self.proj_out(x_out)
        p = self.cfg.patch_size
        x_out = x_out.reshape(b, f, h // p, w // p, -1, p, p)
        return x_out.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
