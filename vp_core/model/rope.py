"""3-D rotary position table for the video tokens (spec §5 RoPE)."""
from __future__ import annotations

import numpy as np
import torch
from diffusers.models.embeddings import get_1d_rotary_pos_embed
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import get_resize_crop_region_for_grid

from .config import CogVideoXConfig

VAE_SPATIAL = 8
BASE_SIZE_PX = (480, 720)  # CogVideoX hard-codes this base when fitting the token grid (height, width)


def axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels of each head rotated by the t, h and w positions, in this order (CogVideoX: d/4, 3d/8, 3d/8).

    The groups are disjoint and each holds whole rotation pairs, so a rotated key's dot product with a query is a
    sum of one term per axis (what ``id_resample.null_log_mass`` factorises)."""
    return head_dim // 4, head_dim // 8 * 3, head_dim // 8 * 3


def video_rope(cfg: CogVideoXConfig, latent_frames: int, latent_height: int, latent_width: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) ``[F*h*w, head_dim]`` in fp32.

    The token grid is fitted (aspect kept, centred) into the fixed 30x45 base grid, so positions are integers
    only at 480x720; other sizes get fractional, evenly spaced positions ``linspace(top, top + rh, gh,
    endpoint=False)``. The grid is built here rather than with diffusers' ``get_3d_rotary_pos_embed`` because
    diffusers >= 0.32 changed that linspace (``stop * (n - 1) / n`` as the end point), which moves every position
    whenever the crop does not start at 0 (e.g. 96x80 px: w = 10, 14.5, 19... instead of 10, 15, 20...).
    """
    p = cfg.patch_size
    gh, gw = latent_height // p, latent_width // p
    base_h = BASE_SIZE_PX[0] // (VAE_SPATIAL * p)
    base_w = BASE_SIZE_PX[1] // (VAE_SPATIAL * p)
    (top, left), (bottom, right) = get_resize_crop_region_for_grid((gh, gw), base_w, base_h)
    grid_t = np.linspace(0, latent_frames, latent_frames, endpoint=False, dtype=np.float32)
    grid_h = np.linspace(top, bottom, gh, endpoint=False, dtype=np.float32)
    grid_w = np.linspace(left, right, gw, endpoint=False, dtype=np.float32)
    dt, dh, dw = axis_dims(cfg.attention_head_dim)
    (t_cos, t_sin), (h_cos, h_sin), (w_cos, w_sin) = (
        get_1d_rotary_pos_embed(dim, grid, use_real=True) for dim, grid in ((dt, grid_t), (dh, grid_h), (dw, grid_w))
    )

    def combine(t: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        f = latent_frames
        return torch.cat(
            [t[:, None, None].expand(-1, gh, gw, -1), h[None, :, None].expand(f, -1, gw, -1), w[None, None].expand(f, gh, -1, -1)],
            dim=-1,
        ).reshape(f * gh * gw, -1)

    return combine(t_cos, h_cos, w_cos).to(device), combine(t_sin, h_sin, w_sin).to(device)
