"""Scaled dot-product attention that also returns the log-sum-exp of each query's scores.

The reduced ID-resample attention (``id_resample``) needs the log-sum-exp to add the null keys' softmax mass after
the kernel. ComfyUI's ``optimized_attention`` and ``torch.nn.functional.scaled_dot_product_attention`` return only
the output, so the ATen kernels behind SDPA are called directly; each already computes the log-sum-exp for its
backward pass. ``flex_attention(return_lse=True)`` would do too, but is only fast under ``torch.compile``.

Per device:
* CPU: ``_scaled_dot_product_flash_attention_for_cpu`` (any float dtype, optional additive mask);
* CUDA: ``_scaled_dot_product_flash_attention`` for fp16/bf16 without a bias, else
  ``_scaled_dot_product_efficient_attention`` (fp32 too); NOT RUN on a GPU yet (no device was lent), so any error
  there makes the caller fall back to the literal form;
* anything else: ``None`` (the caller uses the literal form).
"""
from __future__ import annotations

import torch
from torch import Tensor


def supports_bias(device: torch.device) -> bool:
    """Whether ``attention_with_lse`` takes an additive key bias on this device (only the CPU kernel is used so)."""
    return device.type == "cpu"


def attention_with_lse(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None) -> tuple[Tensor, Tensor] | None:
    """``(softmax(q k^T / sqrt(d) + bias) v, logsumexp)`` for ``[B, H, L, d]`` inputs: output ``[B, H, L, d]`` and
    log-sum-exp ``[B, H, L]`` (fp32, natural log), or None where no such kernel is available.

    Parameters:
        bias: additive bias broadcastable to ``[B, H, L, S]`` (e.g. ``[1, 1, 1, S]``), same dtype as q; only where
            ``supports_bias(q.device)``.
    """
    if q.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, attn_mask=bias)
        return out, lse
    if q.device.type != "cuda" or bias is not None:
        return None
    try:  # untested on a GPU: any refusal of a kernel (arch, head dim, layout) means "use the literal form"
        if q.dtype in (torch.float16, torch.bfloat16):
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False)[:2]
        else:
            out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True, 0.0, False)[:2]
    except RuntimeError:
        return None
    return out, lse[..., : q.shape[2]].float()  # the efficient kernel pads the query axis of its log-sum-exp
