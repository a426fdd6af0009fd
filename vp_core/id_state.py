"""The ID-resample state carried from one window to the next (spec §4.1), small and device-agnostic.

Only what the next window reads is kept: each block's output video tokens at the last denoising step, at the token
positions the next window can read (the previous window's holes, plus the next window's own holes when known), the
token mask the last transformer call returned, the previous window's final latents (the next window's first-frame
latent), and where the run stands (window index, generator state) so a long job can resume exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass
class IDState:
    """Parameters:
        hidden: per backbone block, ``[2B, n, D]`` video tokens (CFG batch order [uncond, cond]).
        token_index: ``[n]`` video-token positions of ``hidden`` (sorted).
        token_mask: ``[2B, V]`` bool, the hole tokens of the last transformer call (``r_prev``).
        prev_latents: ``[B, L, 16, h, w]`` final latents of the window that produced the state.
        window_index: index of that window in its plan.
        rng_state: CPU generator state after that window (``torch.Generator.get_state()``), or None.
        resume_window: set in an autosave checkpoint: the next window of the same plan to run.
        merged: with ``resume_window``, the sum of the latents merged so far ``[B, L_total, 16, h, w]``.
        counts: with ``resume_window``, how many windows were added at each merged latent ``[L_total]``.
    """

    hidden: list[Tensor]
    token_index: Tensor
    token_mask: Tensor
    prev_latents: Tensor
    window_index: int
    rng_state: Tensor | None = None
    resume_window: int | None = None
    merged: Tensor | None = None
    counts: Tensor | None = None

    def to(self, device: torch.device | str) -> "IDState":
        return replace(
            self, hidden=[h.to(device) for h in self.hidden], token_index=self.token_index.to(device),
            token_mask=self.token_mask.to(device), prev_latents=self.prev_latents.to(device),
        )

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.hidden, self.token_index, self.token_mask, self.prev_latents))
