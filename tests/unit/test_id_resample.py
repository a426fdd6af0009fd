"""Reduced ID-resample attention == the literal ``[K_cur; K_ext]`` form with null keys (spec §4, §9 item 4).

Random blocks and inputs at several head dims, token grids, hole fractions (0, 10 %, 30 %, 100 %), text lengths and
both pools (the clip's own holes, the previous clip's tokens), in float64 (agreement to rounding) and float32. The
same comparison fails when the null keys' mass is dropped, and the analytic null mass equals a brute-force
log-sum-exp over the explicit null keys.
"""
from __future__ import annotations

import math
from unittest import mock

import comfy.ops
import pytest
import torch
from diffusers.models.embeddings import apply_rotary_emb

from videopainter.vp_core.model import id_resample
from videopainter.vp_core.model.config import CogVideoXConfig
from videopainter.vp_core.model.id_resample import IDResample, null_log_mass
from videopainter.vp_core.model.layers import Block, rope_video
from videopainter.vp_core.model.rope import video_rope

# heads, head_dim, (latent frames, token rows, token columns), text tokens, hole fraction
CONFIGS = [
    (3, 64, (3, 4, 6), 7, 0.3),
    (2, 16, (2, 6, 4), 0, 0.0),
    (2, 32, (1, 4, 4), 5, 1.0),
    (4, 64, (2, 6, 8), 12, 0.1),
    (1, 128, (2, 3, 5), 226, 0.1),
    (2, 64, (4, 5, 3), 3, 0.0),
]


def make_case(heads: int, head_dim: int, grid, text: int, frac: float, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    f, gh, gw = grid
    cfg = CogVideoXConfig(num_attention_heads=heads, attention_head_dim=head_dim, time_embed_dim=16, text_embed_dim=8,
                          num_layers=1, sample_height=2 * gh, sample_width=2 * gw, sample_frames=4 * (f - 1) + 1,
                          max_text_seq_length=text)
    block = Block(cfg, dtype=dtype, operations=comfy.ops.manual_cast)
    for p in block.parameters():
        p.data = (torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3).to(dtype)
    block.attn1.norm_k.bias.data = torch.randn(head_dim, generator=g, dtype=torch.float64).to(dtype)  # a null key that matters
    rope = tuple(r.to(dtype) for r in video_rope(cfg, f, 2 * gh, 2 * gw))
    v_tokens = f * gh * gw
    hole = torch.rand(v_tokens, generator=g) < frac
    if frac >= 1.0:
        hole[:] = True
    mask = hole[None].repeat(2, 1)
    length = text + v_tokens
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)  # the same draws in every dtype  # noqa: E731
    q = rope_video(rnd(2, heads, length, head_dim) * 2, rope, text)
    k = rope_video(rnd(2, heads, length, head_dim) * 2, rope, text)
    v = rnd(2, heads, length, head_dim)
    temb = rnd(2, 16)
    prev = [rnd(2, v_tokens, cfg.inner_dim)]
    return block, rope, mask, (q, k, v), temb, prev, torch.arange(v_tokens)


def both_forms(idr: IDResample, block, temb, rope, text, grid, qkv):
    with torch.no_grad():
        reduced = idr.attention(0, block, temb, rope, text, grid)(*qkv)
        with mock.patch.object(id_resample, "FORM", "literal"):
            literal = idr.attention(0, block, temb, rope, text, grid)(*qkv)
    return reduced, literal


TOL = {torch.float64: 1e-12, torch.float32: 2e-5}  # fp32: both forms are ~6e-6 from the fp64 result


def assert_forms_agree(cfg_row, dtype, pool: str, seed: int = 0):
    heads, head_dim, grid, text, frac = cfg_row
    block, rope, mask, qkv, temb, prev, index = make_case(heads, head_dim, grid, text, frac, dtype, seed)
    idr = IDResample(mask) if pool == "own" else IDResample(mask, 0.5, prev, index)
    reduced, literal = both_forms(idr, block, temb, rope, text, grid, qkv)
    torch.testing.assert_close(reduced, literal, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("pool", ["own", "prev"])
@pytest.mark.parametrize("cfg_row", CONFIGS, ids=[f"d{c[1]}-{'x'.join(map(str, c[2]))}-t{c[3]}-h{c[4]}" for c in CONFIGS])
def test_reduced_equals_literal(cfg_row, pool, dtype):
    assert_forms_agree(cfg_row, dtype, pool)


@pytest.mark.parametrize("pool", ["own", "prev"])
def test_dropping_the_null_mass_is_caught(pool):
    """The comparison above can fail: without the null keys' mass (what attending to the holes alone gives) the
    reduced form no longer matches, even with no hole at all."""
    no_mass = lambda q, *_a, **_k: torch.full(q.shape[:3], -math.inf, dtype=torch.float32)  # noqa: E731
    with mock.patch.object(id_resample, "null_log_mass", no_mass):
        for row in (CONFIGS[0], CONFIGS[1]):
            with pytest.raises(AssertionError):
                assert_forms_agree(row, torch.float64, pool)


def test_rows_with_different_holes():
    """CFG halves normally share one hole set; rows that differ are handled one by one."""
    block, rope, mask, qkv, temb, prev, index = make_case(2, 32, (2, 4, 5), 6, 0.3, torch.float64)
    mask = mask.clone()
    mask[1] = torch.roll(mask[0], 7)
    mask[1, :3] = False
    for idr in (IDResample(mask), IDResample(mask, 0.7, prev, index)):
        reduced, literal = both_forms(idr, block, temb, rope, 6, (2, 4, 5), qkv)
        torch.testing.assert_close(reduced, literal, rtol=1e-12, atol=1e-12)


def test_prev_pool_reads_only_stored_rows():
    """A state that stores only some positions (the holes) gives the same result as one that stores all."""
    block, rope, mask, qkv, temb, prev, index = make_case(2, 32, (2, 4, 5), 6, 0.3, torch.float64)
    keep = torch.nonzero(mask[0]).flatten()
    full = IDResample(mask, 0.5, prev, index).attention(0, block, temb, rope, 6, (2, 4, 5))(*qkv)
    part = IDResample(mask, 0.5, [prev[0][:, keep]], keep).attention(0, block, temb, rope, 6, (2, 4, 5))(*qkv)
    torch.testing.assert_close(part, full, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("frac", [0.0, 0.25, 1.0])
def test_null_mass_equals_brute_force(frac):
    heads, d, grid, text = 2, 64, (3, 4, 5), 9
    block, rope, mask, (q, _, _), *_ = make_case(heads, d, grid, text, frac, torch.float64, seed=3)
    null = block.attn1.null_key(q)[0]
    nonhole = ~mask[0]
    with torch.no_grad():
        got = null_log_mass(q, null, rope, grid, nonhole, text)
        keys = torch.cat([null.expand(text, d), apply_rotary_emb(null.expand(1, 1, nonhole.numel(), d), rope)[0, 0][nonhole]])
        want = torch.logsumexp(q @ keys.T / math.sqrt(d), -1) if keys.shape[0] else torch.full(q.shape[:3], -math.inf)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)  # the mass itself is computed in fp32
