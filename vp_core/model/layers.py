"""CogVideoX building blocks on ``comfy.ops`` layers, with the diffusers key names of the released checkpoints.

Why not diffusers' own modules: they are built from ``torch.nn`` layers, which ComfyUI's memory manager cannot
partially load (it needs ``comfy.ops`` layers that cast their weights per call). The maths follows diffusers'
``CogVideoXBlock``, ``CogVideoXLayerNormZero``, ``AdaLayerNorm`` and ``CogVideoXPatchEmbed``; the embedding tables
(timestep, sin-cos, RoPE) come from diffusers itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb, get_3d_sincos_pos_embed, get_timestep_embedding
from torch import Tensor, nn

import comfy.model_management
from comfy.ldm.modules.attention import optimized_attention

from .config import CogVideoXConfig

Rope = tuple[Tensor, Tensor]
FF_CHUNK_TOKENS = 4096  # feed-forward rows per call (see FeedForward.forward)


def cast_buffer(t: Tensor, like: Tensor) -> Tensor:
    """A buffer (e.g. the learned positional embedding) on the compute device/dtype of ``like``."""
    return comfy.model_management.cast_to_device(t, like.device, like.dtype)


class TimestepEmbedding(nn.Module):
    """Sinusoidal projection (cos first, shift 0) then ``linear_1 -> SiLU -> linear_2`` (diffusers' ``TimestepEmbedding``)."""

    def __init__(self, cfg: CogVideoXConfig, dtype=None, device=None, operations=None):
        super().__init__()
        self.in_dim = cfg.inner_dim
        self.flip_sin_to_cos = cfg.flip_sin_to_cos
        self.freq_shift = cfg.freq_shift
        self.linear_1 = operations.Linear(cfg.inner_dim, cfg.time_embed_dim, dtype=dtype, device=device)
        self.linear_2 = operations.Linear(cfg.time_embed_dim, cfg.time_embed_dim, dtype=dtype, device=device)

    def forward(self, timestep: Tensor, dtype: torch.dtype) -> Tensor:
        t = get_timestep_embedding(timestep, self.in_dim, self.flip_sin_to_cos, self.freq_shift).to(dtype)
        return self.linear_2(F.silu(self.linear_1(t)))


class PatchEmbed(nn.Module):
    """Per-frame conv patchify + text projection + (learned or sin-cos) positional embedding.

    Token order is frame, then row, then column; text tokens come first.
    """

    def __init__(self, cfg: CogVideoXConfig, in_channels: int, dtype=None, device=None, operations=None):
        super().__init__()
        self.cfg = cfg
        p = cfg.patch_size
        self.proj = operations.Conv2d(in_channels, cfg.inner_dim, kernel_size=p, stride=p, bias=True, dtype=dtype, device=device)
        self.text_proj = operations.Linear(cfg.text_embed_dim, cfg.inner_dim, dtype=dtype, device=device)
        if cfg.use_learned_positional_embeddings:
            rows = cfg.max_text_seq_length + cfg.sample_latent_frames * (cfg.sample_height // p) * (cfg.sample_width // p)
            self.register_buffer("pos_embedding", torch.zeros(1, rows, cfg.inner_dim, dtype=dtype, device=device))
        else:
            self.pos_embedding = None

    def _sincos(self, latent_frames: int, height: int, width: int, like: Tensor) -> Tensor:
        """The reference's on-the-fly table when the frame count differs from the checkpoint's (text rows zero)."""
        cfg, p = self.cfg, self.cfg.patch_size
        table = get_3d_sincos_pos_embed(
            cfg.inner_dim, (width // p, height // p), latent_frames, cfg.spatial_interpolation_scale,
            cfg.temporal_interpolation_scale, output_type="pt",
        ).flatten(0, 1)
        text = torch.zeros(cfg.max_text_seq_length, cfg.inner_dim, dtype=torch.float32)
        return torch.cat([text, table.float()], 0)[None].to(like.device, like.dtype)

    def forward(self, text: Tensor, video: Tensor) -> Tensor:
        b, f, c, h, w = video.shape
        text = self.text_proj(text)
        x = self.proj(video.reshape(b * f, c, h, w))
        x = x.view(b, f, *x.shape[1:]).flatten(3).transpose(2, 3).flatten(1, 2)
        x = torch.cat([text, x], dim=1)
        if self.pos_embedding is None:
            return x
        cfg = self.cfg
        if (h, w) != (cfg.sample_height, cfg.sample_width):
            raise ValueError(
                f"this checkpoint's learned positional embedding fixes the latent size to "
                f"{cfg.sample_height}x{cfg.sample_width} ({cfg.sample_height * 8}x{cfg.sample_width * 8} px); "
                f"got {h}x{w} latents ({h * 8}x{w * 8} px). Resize the video to {cfg.sample_width * 8}x{cfg.sample_height * 8}."
            )
        if text.shape[1] != cfg.max_text_seq_length:
            raise ValueError(
                f"the text embedding has {text.shape[1]} tokens but this model needs exactly "
                f"{cfg.max_text_seq_length} (max_text_seq_length); encode the prompt with VideoPainter Text Encode"
            )
        if (f - 1) * cfg.temporal_compression_ratio + 1 == cfg.sample_frames:
            pos = cast_buffer(self.pos_embedding, x)
        else:  # reference behaviour: other frame counts silently switch to a sin-cos table
            pos = self._sincos(f, h, w, x)
        return x + pos


class LayerNormZero(nn.Module):
    """``CogVideoXLayerNormZero``: one LayerNorm for text and video, modulated by (shift, scale, gate) for each."""

    def __init__(self, cfg: CogVideoXConfig, dtype=None, device=None, operations=None):
        super().__init__()
        d = cfg.inner_dim
        self.linear = operations.Linear(cfg.time_embed_dim, 6 * d, bias=True, dtype=dtype, device=device)
        self.norm = operations.LayerNorm(d, eps=cfg.norm_eps, elementwise_affine=cfg.norm_elementwise_affine, dtype=dtype, device=device)

    def modulation(self, temb: Tensor) -> tuple[Tensor, ...]:
        """(shift, scale, gate, enc_shift, enc_scale, enc_gate), each ``[B, 1, D]``."""
        return tuple(c[:, None, :] for c in self.linear(F.silu(temb)).chunk(6, dim=1))

    def modulate(self, x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
        # not named `apply`: that would shadow nn.Module.apply, which DeepSpeed (and any init walk) calls on every module
        return self.norm(x) * (1 + scale) + shift


class Attention(nn.Module):
    """Self-attention with per-head LayerNorm on q/k (eps 1e-6) and RoPE on video tokens (diffusers ``Attention``)."""

    def __init__(self, cfg: CogVideoXConfig, dtype=None, device=None, operations=None):
        super().__init__()
        d, hd = cfg.inner_dim, cfg.attention_head_dim
        self.heads = cfg.num_attention_heads
        self.head_dim = hd
        kw = dict(bias=cfg.attention_bias, dtype=dtype, device=device)
        self.to_q = operations.Linear(d, d, **kw)
        self.to_k = operations.Linear(d, d, **kw)
        self.to_v = operations.Linear(d, d, **kw)
        self.norm_q = operations.LayerNorm(hd, eps=1e-6, elementwise_affine=True, dtype=dtype, device=device)
        self.norm_k = operations.LayerNorm(hd, eps=1e-6, elementwise_affine=True, dtype=dtype, device=device)
        self.to_out = nn.ModuleList([operations.Linear(d, d, bias=True, dtype=dtype, device=device)])

    def split_heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def keys(self, x: Tensor) -> Tensor:
        """LayerNorm'd keys ``[B, H, L, d]`` (before RoPE) of the already-projected ``x``."""
        return self.norm_k(self.split_heads(x))

    def null_key(self, like: Tensor) -> Tensor:
        """``LN_k(0)``: the key of an all-zero projection (the norm's bias), ``[H(1), d]``."""
        return self.norm_k(torch.zeros(1, self.head_dim, device=like.device, dtype=like.dtype))

    def forward(self, x: Tensor, text_len: int, rope: Rope, id_attention=None, transformer_options: dict | None = None) -> Tensor:
        """Joint attention over ``x = [text; video]`` (normalised). ``id_attention(q, k, v) -> [B, L, H*d]``, when
        given, replaces plain attention (ID resampling, ``id_resample.IDResample.attention``); q/k/v are
        ``[B, H, L, d]`` with RoPE applied. ``transformer_options`` reach ComfyUI's attention (overrides set by
        other nodes)."""
        q = self.norm_q(self.split_heads(self.to_q(x)))
        k = self.keys(self.to_k(x))
        v = self.split_heads(self.to_v(x))
        q = rope_video(q, rope, text_len)
        k = rope_video(k, rope, text_len)
        if id_attention is not None:
            out = id_attention(q, k, v)
        else:
            out = optimized_attention(q, k, v, self.heads, skip_reshape=True, transformer_options=transformer_options or {})
        return self.to_out[0](out)


def rope_video(x: Tensor, rope: Rope, text_len: int) -> Tensor:
    """Apply RoPE (in fp32, then cast back, as diffusers does) to the video positions of ``[B, H, L, d]``."""
    return torch.cat([x[:, :, :text_len], apply_rotary_emb(x[:, :, text_len:], rope)], dim=2)


class FeedForward(nn.Module):
    """``Linear -> GELU(tanh) -> Linear`` with diffusers' keys ``net.0.proj`` and ``net.2``."""

    def __init__(self, cfg: CogVideoXConfig, dtype=None, device=None, operations=None):
        super().__init__()
        if cfg.activation_fn != "gelu-approximate":
            raise ValueError(f"unsupported activation_fn {cfg.activation_fn!r}; CogVideoX uses 'gelu-approximate'")
        d = cfg.inner_dim
        proj = nn.Module()
        proj.proj = operations.Linear(d, 4 * d, bias=True, dtype=dtype, device=device)
        self.net = nn.ModuleList([proj, nn.Identity(), operations.Linear(4 * d, d, bias=True, dtype=dtype, device=device)])

    def forward(self, x: Tensor) -> Tensor:
        """Per token, so long sequences run in chunks of ``FF_CHUNK_TOKENS``: the 4x intermediate (the largest
        activation, ~0.9 GB in bf16 for a CFG batch at 49 x 480 x 720) stays a fraction of that. Exact."""
        n = x.shape[1]
        if n <= FF_CHUNK_TOKENS:
            return self._rows(x)
        out = None
        for s in range(0, n, FF_CHUNK_TOKENS):
            y = self._rows(x[:, s:s + FF_CHUNK_TOKENS])
            if out is None:
                out = y.new_empty(x.shape[0], n, y.shape[-1])
            out[:, s:s + y.shape[1]] = y
        return out

    def _rows(self, x: Tensor) -> Tensor:
        return self.net[2](F.gelu(self.net[0].proj(x), approximate="tanh"))


class Block(nn.Module):
    """One CogVideoX block: AdaLN-zero attention over [text; video] then a shared feed-forward."""

    def __init__(self, cfg: CogVideoXConfig, dtype=None, device=None, operations=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device, operations=operations)
        self.norm1 = LayerNormZero(cfg, **kw)
        self.attn1 = Attention(cfg, **kw)
        self.norm2 = LayerNormZero(cfg, **kw)
        self.ff = FeedForward(cfg, **kw)

    def forward(self, video: Tensor, text: Tensor, temb: Tensor, rope: Rope, id_attention=None,
                transformer_options: dict | None = None) -> tuple[Tensor, Tensor]:
        t_len = text.shape[1]
        shift, scale, gate, e_shift, e_scale, e_gate = self.norm1.modulation(temb)
        x = torch.cat([self.norm1.modulate(text, e_shift, e_scale), self.norm1.modulate(video, shift, scale)], dim=1)
        attn = self.attn1(x, t_len, rope, id_attention, transformer_options)
        video = video + gate * attn[:, t_len:]
        text = text + e_gate * attn[:, :t_len]
        shift, scale, gate, e_shift, e_scale, e_gate = self.norm2.modulation(temb)
        x = torch.cat([self.norm2.modulate(text, e_shift, e_scale), self.norm2.modulate(video, shift, scale)], dim=1)
        ff = self.ff(x)
        return video + gate * ff[:, t_len:], text + e_gate * ff[:, :t_len]
