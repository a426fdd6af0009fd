"""FLOPs of one denoising step, counted from a config (matmuls only: 2 FLOPs per multiply-add).

Used for the real-size projection of the branch / ID-resample overhead and for the MFU of the GPU benchmark.
Element-wise work (norms, RoPE, gating, the mask-selective addition) is not counted: it is memory-bound and small
next to the matmuls at the real size.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """Token layout of one transformer call.

    Parameters:
        batch: 2 with classifier-free guidance (uncond + cond in one call), 1 without.
        latent_frames, latent_height, latent_width: the latent grid (13 x 60 x 90 for 49 x 480 x 720 px).
        text: text tokens (226).
        hole_fraction: share of video tokens in the inpainting region (only the ID-resample cost depends on it).
    """

    batch: int
    latent_frames: int
    latent_height: int
    latent_width: int
    text: int
    hole_fraction: float = 0.25

    def video_tokens(self, patch: int) -> int:
        return self.latent_frames * (self.latent_height // patch) * (self.latent_width // patch)


def block_flops(d: int, tokens: int, keys: int | None = None) -> dict[str, float]:
    """One CogVideoX block for one sample: q/k/v/out (4 d^2), feed-forward (2 x 4 d^2), attention (QK^T and AV)."""
    keys = tokens if keys is None else keys
    linear = 2 * tokens * (4 * d * d + 8 * d * d)
    attention = 2 * 2 * tokens * keys * d
    return {"linear": float(linear), "attention": float(attention)}


def step_flops(cfg, branch_cfg, shape: Shape, id_resample: str | None = None, form: str = "reduced",
               own_bias: bool = False) -> dict[str, float]:
    """FLOPs of one step (one transformer call, batch included) split by part.

    Parameters:
        cfg: backbone ``CogVideoXConfig``; ``branch_cfg``: the branch's (None: no branch).
        id_resample: None, ``"own"`` (window 0: the clip's own hole tokens as extra keys) or ``"prev"`` (later
            windows: the previous clip's tokens, projected again with to_k/to_v).
        form: ``"reduced"`` (``vp_core.model.id_resample``'s default: extra keys at the holes only, null mass
            added analytically) or ``"literal"`` (the reference's 2n keys).
        own_bias: window 0 drops the duplicated hole keys for a log 2 bias (the CPU kernel; on CUDA the keys stay).
    """
    d, p = cfg.inner_dim, cfg.patch_size
    v = shape.video_tokens(p)
    n = v + shape.text
    b = shape.batch
    out: dict[str, float] = {}
    blk = block_flops(d, n)
    out["backbone_blocks"] = b * cfg.num_layers * (blk["linear"] + blk["attention"])
    out["backbone_attention"] = b * cfg.num_layers * blk["attention"]
    out["backbone_io"] = b * (
        2 * v * cfg.in_channels * p * p * d  # patch embedding
        + 2 * shape.text * cfg.text_embed_dim * d  # text projection
        + 2 * v * d * p * p * cfg.out_channels  # proj_out
    )
    if branch_cfg is not None:
        bblk = block_flops(d, n)
        out["branch_blocks"] = b * branch_cfg.num_layers * (bblk["linear"] + bblk["attention"])
        out["branch_io"] = b * (
            2 * v * branch_cfg.branch_in_channels * p * p * d
            + 2 * shape.text * branch_cfg.text_embed_dim * d
            + branch_cfg.num_layers * 2 * v * d * d  # branch_blocks projections
        )
    if id_resample is not None:
        holes = int(round(v * shape.hole_fraction))
        if form == "literal":
            # the reference appends a full-length (text + video) extra K/V: attention over 2n keys instead of n
            out["id_attention"] = b * cfg.num_layers * 2 * 2 * n * n * d
        else:
            # reduced: extra keys at the holes only (none in window 0 with a bias-capable kernel), plus the null
            # mass: per query and head, one F*gh x gw contraction with the non-hole grid (2 V FLOPs) and the
            # three per-axis logit tables (2 (F + gh + gw) d / 3 on average)
            extra = 0 if (id_resample == "own" and own_bias) else holes
            grid = (shape.latent_frames, shape.latent_height // p, shape.latent_width // p)
            out["id_attention"] = b * cfg.num_layers * 2 * 2 * n * extra * d
            out["id_null_mass"] = b * cfg.num_layers * cfg.num_attention_heads * n * (2 * v + 2 * sum(grid) * cfg.attention_head_dim / 3)
        if id_resample == "prev":
            out["id_projection"] = b * cfg.num_layers * 2 * 2 * holes * d * d  # to_k, to_v of the stored tokens
    out["total"] = sum(val for key, val in out.items() if key != "backbone_attention")
    return out
