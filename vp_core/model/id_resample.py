"""ID-resample attention (spec §4): extra keys/values carried from the previous clip's hole tokens.

With the ID LoRA attached, every backbone block attends over ``[K_cur; K_ext]`` / ``[V_cur; V_ext]``, both of the
full sequence length (text + video). ``K_ext``/``V_ext`` are non-zero only at "hole" positions ``r``:

* previous clip (``weight > 0`` and a state is given): ``K_ext = RoPE(LN_k(w * to_k(norm1(P))))``,
  ``V_ext = w * to_v(norm1(P))`` where ``P`` is the previous window's output of the same block, re-normalised with
  the *current* timestep embedding, and RoPE uses the *current* window's positions (no temporal offset);
* otherwise the clip is its own pool: ``K_ext = K_cur``, ``V_ext = V_cur`` at its own hole tokens.

Everywhere else the reference multiplies the projections by zero *before* the key LayerNorm, so those positions are
"null keys" ``LN_k(0)`` (= the norm's bias, rotated at video positions) with zero values. They still take softmax
mass, so they are kept (REPRODUCE, §9 item 4). Only the previous clip's tokens at the positions that can be read
(``token_index``) are stored, not whole hidden states (§9 item 19).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.embeddings import apply_rotary_emb
from torch import Tensor

from .layers import Block, Rope, rope_video


@dataclass
class IDResample:
    """Per-call inputs of ID-resample attention.

    Parameters:
        mask: ``[B, V]`` bool, the hole tokens ``r`` read from the pool in this call.
        weight: ``prev_clip_weight`` (w); ``<= 0`` makes the clip its own pool.
        prev: per block, the previous clip's video tokens ``[B, n, D]`` at ``prev_index`` (or None: no previous clip).
        prev_index: ``[n]`` video-token positions stored in ``prev`` (sorted, unique).
    """

    mask: Tensor
    weight: float = 0.0
    prev: list[Tensor] | None = None
    prev_index: Tensor | None = None

    @property
    def uses_prev(self) -> bool:
        return self.prev is not None and self.weight > 0.0

    def check(self) -> None:
        """Every position read from the previous clip must have been stored."""
        if not self.uses_prev:
            return
        stored = torch.zeros(self.mask.shape[1], dtype=torch.bool, device=self.mask.device)
        stored[self.prev_index.to(self.mask.device)] = True
        missing = self.mask & ~stored
        if bool(missing.any()):
            raise ValueError(
                f"the ID state holds {int(stored.sum())} token positions but this window reads "
                f"{int(missing.sum())} more; the state was saved for a different mask (pass the whole clip's mask "
                "to the sampler that saves it, or reset the state at this window)"
            )

    def extra_kv(self, layer: int, block: Block, temb: Tensor, rope: Rope, text_len: int):
        """The function that block ``layer``'s attention calls with its own (k, v) to get (k_ext, v_ext)."""
        attn = block.attn1

        def build(k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
            b, h, length, d = k.shape
            hole = torch.cat([torch.zeros(b, text_len, dtype=torch.bool, device=k.device), self.mask.to(k.device)], 1)
            hole = hole[:, None, :, None]
            null_k = rope_video(attn.null_key(k).expand(b, h, length, d), rope, text_len)
            if not self.uses_prev:
                return torch.where(hole, k, null_k), torch.where(hole, v, torch.zeros_like(v))
            idx = self.prev_index.to(k.device)
            shift, scale = block.norm1.modulation(temb)[:2]
            p_hat = block.norm1.apply(self.prev[layer].to(k.dtype), shift, scale)
            kp = attn.keys(attn.to_k(p_hat) * self.weight)
            vp = attn.split_heads(attn.to_v(p_hat) * self.weight)
            kp = apply_rotary_emb(kp, (rope[0][idx], rope[1][idx]))
            pos = idx + text_len
            sel = hole[:, :, pos]
            k_ext = null_k.clone()
            k_ext[:, :, pos] = torch.where(sel, kp, null_k[:, :, pos])
            v_ext = torch.zeros_like(v)
            v_ext[:, :, pos] = torch.where(sel, vp, v_ext[:, :, pos])
            return k_ext, v_ext

        return build
