"""ID-resample attention (spec §4): extra keys/values carried from the previous clip's hole tokens.

With the ID LoRA attached, every backbone block attends over ``[K_cur; K_ext]`` / ``[V_cur; V_ext]``, both of the
full sequence length (text + video). ``K_ext``/``V_ext`` are non-zero only at "hole" positions ``r``:

* previous clip (``weight > 0`` and a state is given): ``K_ext = RoPE(LN_k(w * to_k(norm1(P))))``,
  ``V_ext = w * to_v(norm1(P))`` where ``P`` is the previous window's output of the same block, re-normalised with
  the *current* timestep embedding, and RoPE uses the *current* window's positions (no temporal offset);
* otherwise the clip is its own pool: ``K_ext = K_cur``, ``V_ext = V_cur`` at its own hole tokens.

Everywhere else the reference multiplies the projections by zero *before* the key LayerNorm, so those positions are
"null keys" ``LN_k(0)`` = the norm's bias ``beta`` (rotated at video positions) with zero values. They still take
softmax mass (REPRODUCE, §9 item 4). Only the previous clip's tokens at the positions that can be read
(``token_index``) are stored, not whole hidden states (§9 item 19).

Two exact forms of the same maths:

* literal: builds ``[K_cur; K_ext]`` with every null key and calls the host's attention (the oracle, and the
  fallback where no kernel returns a log-sum-exp);
* reduced (default): attends over ``K_cur`` plus ``K_ext`` at the holes only, with a kernel that returns the
  log-sum-exp ``LSE``, and adds the null keys' mass ``M`` analytically: the output is rescaled by
  ``Z / (Z + M) = sigmoid(LSE - log M)``. Text null keys are ``text_len`` copies of ``beta``; the video ones are
  ``R_p beta``, and CogVideoX's RoPE rotates disjoint channel groups by t, h and w, so ``s q.R_p beta = a(t) + b(h)
  + c(w)`` and the mass over the non-hole positions is ``sum_{t,h,w} e^a(t) e^b(h) e^c(w) G[t,h,w]`` with ``G``
  the non-hole indicator: one small contraction, ~1% of the attention. In the clip's own pool (window 0) the
  extra keys duplicate ``K_cur`` at the holes, so on CPU they are dropped for a ``log 2`` bias on those columns.

With no hole at all (an empty or vanishing mask) both forms give the literal maths: every extra key is a null key,
so the output is the plain attention's scaled by ``Z / (Z + M)``, ``M`` over every position.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from diffusers.models.embeddings import apply_rotary_emb
from torch import Tensor

from comfy.ldm.modules.attention import optimized_attention

from .layers import Block, Rope, rope_video
from .lse_attention import attention_with_lse, supports_bias
from .rope import axis_dims

# "auto": the reduced form where a log-sum-exp kernel exists for the device, else the literal one; "literal": always
# the literal form (tests and benchmarks compare the two).
FORM = "auto"
Grid = tuple[int, int, int]  # latent frames, token rows, token columns
_CHUNK_ELEMENTS = 1 << 24  # bound on the null-mass contraction's temporaries (elements per chunk of queries)


@dataclass
class IDResample:
    """Per-call inputs of ID-resample attention.

    Parameters:
        mask: ``[B, V]`` bool, the hole tokens ``r`` read from the pool in this call.
        weight: ``prev_clip_weight`` (w); ``<= 0`` makes the clip its own pool.
        prev: per block, the previous clip's video tokens ``[B, n, D]`` at ``prev_index`` (or None: no previous clip).
            They may live on another device (host memory): only the rows a call reads are moved.
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

    def attention(self, layer: int, block: Block, temb: Tensor, rope: Rope, text_len: int,
                  grid: Grid) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
        """The function block ``layer``'s attention calls with its (q, k, v) ``[B, H, L, d]`` (RoPE applied) instead
        of plain attention; it returns ``[B, L, H * d]``."""

        def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            mask = self.mask.to(q.device)
            if q.shape[0] == 1 or bool((mask == mask[:1]).all()):  # one hole set for the batch (the CFG halves)
                return self._attend(layer, block, temb, rope, text_len, grid, q, k, v, mask[0], slice(None))
            rows = [self._attend(layer, block, temb[i:i + 1], rope, text_len, grid, q[i:i + 1], k[i:i + 1], v[i:i + 1],
                                 mask[i], slice(i, i + 1)) for i in range(q.shape[0])]
            return torch.cat(rows, 0)

        return attend

    def _attend(self, layer: int, block: Block, temb: Tensor, rope: Rope, text_len: int, grid: Grid,
                q: Tensor, k: Tensor, v: Tensor, hole: Tensor, rows: slice) -> Tensor:
        attn = block.attn1
        pos = torch.nonzero(hole).flatten()  # video positions whose extra key/value is real
        null = attn.null_key(q)[0]
        own = not self.uses_prev
        # Under autograd (training) only the literal form: the kernels' log-sum-exp output carries no gradient.
        if FORM != "literal" and not q.requires_grad and factorises(q.shape[-1], grid, rope):
            if own and supports_bias(q.device):
                # fp32 bias for half inputs: log 2 in bf16 would be off by 0.2 %
                bias_dtype = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
                bias = torch.zeros(1, 1, 1, k.shape[2], dtype=bias_dtype, device=q.device)
                bias[..., text_len + pos] = math.log(2.0)  # K_ext = K_cur at the holes: each such key counts twice
                res = attention_with_lse(q, k, v, bias)
            else:
                kx, vx = self._pool(layer, block, temb, rope, text_len, k, v, pos, rows)
                res = attention_with_lse(q, torch.cat([k, kx], 2), torch.cat([v, vx], 2))
            if res is not None:
                out, lse = res
                log_mass = null_log_mass(q, null, rope, grid, ~hole, text_len)
                out = out * torch.sigmoid(lse - log_mass)[..., None].to(out.dtype)
                return out.transpose(1, 2).flatten(2)
        kx, vx = self._pool(layer, block, temb, rope, text_len, k, v, pos, rows)
        return literal_attention(q, k, v, null, rope, text_len, pos, kx, vx, attn.heads)

    def _pool(self, layer: int, block: Block, temb: Tensor, rope: Rope, text_len: int, k: Tensor, v: Tensor,
              pos: Tensor, rows: slice) -> tuple[Tensor, Tensor]:
        """The real extra keys/values ``[B, H, n, d]`` at the hole positions ``pos`` (RoPE applied)."""
        if not self.uses_prev:
            return k[:, :, text_len + pos], v[:, :, text_len + pos]
        b, h, _, d = k.shape
        if pos.numel() == 0:
            return k.new_zeros(b, h, 0, d), v.new_zeros(b, h, 0, d)
        attn = block.attn1
        stored = torch.searchsorted(self.prev_index.to(pos.device), pos).to(self.prev[layer].device)
        p = self.prev[layer][rows][:, stored].to(k.device, k.dtype)
        shift, scale = block.norm1.modulation(temb)[:2]
        p_hat = block.norm1.modulate(p, shift, scale)
        kp = apply_rotary_emb(attn.keys(attn.to_k(p_hat) * self.weight), (rope[0][pos], rope[1][pos]))
        return kp, attn.split_heads(attn.to_v(p_hat) * self.weight)


def literal_attention(q: Tensor, k: Tensor, v: Tensor, null: Tensor, rope: Rope, text_len: int, pos: Tensor,
                      kx: Tensor, vx: Tensor, heads: int) -> Tensor:
    """The reference's maths as written: ``[K_cur; K_ext]`` of length 2L with a null key (``null`` = ``LN_k(0)``,
    rotated at video positions) and a zero value everywhere but the holes ``pos``; returns ``[B, L, H * d]``."""
    b, h, length, d = k.shape
    k_ext = rope_video(null.expand(b, h, length, d), rope, text_len)  # a new tensor (cat)
    v_ext = torch.zeros_like(v)
    k_ext[:, :, text_len + pos] = kx
    v_ext[:, :, text_len + pos] = vx
    return optimized_attention(q, torch.cat([k, k_ext], 2), torch.cat([v, v_ext], 2), heads, skip_reshape=True)


def factorises(head_dim: int, grid: Grid, rope: Rope) -> bool:
    """Whether the RoPE table has the t/h/w channel groups ``null_log_mass`` relies on (whole rotation pairs)."""
    dims = axis_dims(head_dim)
    return sum(dims) == head_dim and all(x % 2 == 0 for x in dims) and rope[0].shape[0] == math.prod(grid)


def null_log_mass(q: Tensor, null: Tensor, rope: Rope, grid: Grid, nonhole: Tensor, text_len: int) -> Tensor:
    """``log M`` ``[B, H, L]`` (fp32, fp64 for fp64 inputs): the softmax mass ``sum_j exp(q . n_j / sqrt(d))`` of the null keys ``n_j``:
    ``text_len`` copies of ``null`` and ``R_p null`` at the video positions where ``nonhole`` ``[V]`` is True.

    ``q . R_p null = a(t) + b(h) + c(w)`` (RoPE's disjoint channel groups), so the video sum is
    ``sum_t e^a(t) sum_h e^b(h) sum_w e^c(w) G[t, h, w]``: per query, an ``F*gh x gw`` contraction with the
    non-hole grid ``G``, done in chunks of queries so its temporaries stay small. Each factor is shifted by its
    maximum before ``exp``; no subtraction happens anywhere, so 0 %, 100 % and any hole fraction are equally exact.
    """
    b, h, length, d = q.shape
    f, gh, gw = grid
    scale = 1.0 / math.sqrt(d)
    dt, dh, _ = axis_dims(d)
    cos, sin = rope
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    nf = null.to(work)
    lines = (torch.arange(f) * gh * gw, torch.arange(gh) * gw, torch.arange(gw))  # positions (t,0,0), (0,h,0), (0,0,w)
    groups = ((0, dt), (dt, dt + dh), (dt + dh, d))
    keys = []  # per axis: the rotated null key's channels of that axis, at every position of the axis ([n, group])
    for idx, (lo, hi) in zip(lines, groups):
        idx = idx.to(cos.device)
        rot = apply_rotary_emb(nf.expand(1, 1, idx.numel(), d), (cos[idx].to(work), sin[idx].to(work)))[0, 0]
        keys.append(rot[:, lo:hi].to(q.device))
    mm_dtype = q.dtype if q.dtype in (torch.float16, torch.bfloat16) else work
    grid_nonhole = nonhole.view(f * gh, gw).to(q.device, mm_dtype)
    log_text = (q.to(work) @ nf.to(q.device)) * scale + (math.log(text_len) if text_len else -math.inf)
    out = torch.empty(b, h, length, dtype=work, device=q.device)
    step = max(1, _CHUNK_ELEMENTS // max(1, b * h * f * gh))
    for s in range(0, length, step):
        qc = q[:, :, s:s + step].to(work)
        logits = [(qc[..., lo:hi] @ key.T) * scale for key, (lo, hi) in zip(keys, groups)]
        peaks = [x.amax(-1, keepdim=True) for x in logits]
        ea, eb, ec = (torch.exp(x - m) for x, m in zip(logits, peaks))
        per_row = (ec.to(mm_dtype) @ grid_nonhole.T).to(work).unflatten(-1, (f, gh))  # [b, h, n, f, gh]
        mass = ((per_row * eb[..., None, :]).sum(-1) * ea).sum(-1)
        log_video = torch.log(mass) + (peaks[0] + peaks[1] + peaks[2])[..., 0]
        out[:, :, s:s + step] = torch.logaddexp(log_text[:, :, s:s + step], log_video)
    return out
