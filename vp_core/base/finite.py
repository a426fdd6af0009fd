"""Non-finite values caught where they arise (the latents after each step, the decoded frames), instead of a run
that ends in silent black frames: NaN survives every later step, and a clamp to [0, 1] does not remove it."""
from __future__ import annotations

import torch
from torch import Tensor

SAMPLER_CAUSES = (
    "Likely causes: fp16 overflow (CogVideoX-5B overflows in fp16: load the backbone with weight_dtype bf16), or a "
    "broken checkpoint with NaN weights (the backbone, the branch or a LoRA: download it again)"
)
DECODE_CAUSES = (
    "Likely causes: the VAE overflowing in fp16 (load the backbone with weight_dtype bf16), a broken VAE checkpoint "
    "(download it again), or latents that already held NaN (check the node that produced them)"
)


class NonFiniteError(RuntimeError):
    """NaN or infinite values appeared in a run; the message says where, and the likely causes."""


def require_finite(x: Tensor, where: str, causes: str) -> None:
    """Raise :class:`NonFiniteError` if ``x`` holds NaN or infinity. One fused reduction (cheap next to a step)."""
    if not bool(torch.isfinite(x).all()):
        nan = int(torch.isnan(x).sum())
        raise NonFiniteError(
            f"non-finite values in {where}: {nan} NaN and {int(torch.isinf(x).sum())} infinite of {x.numel()}. {causes}."
        )
