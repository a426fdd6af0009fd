"""Transformer configuration, with the field names of the released ``config.json`` files."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CogVideoXConfig:
    """Fields of a diffusers ``CogVideoXTransformer3DModel`` / VideoPainter ``CogvideoXBranchModel`` config.

    Parameters:
        num_layers: transformer blocks (42 for CogVideoX-5B-I2V, 2 for the VideoPainter branch).
        in_channels: the config field; the backbone's patch embedding takes this many channels (32 for I2V:
            noisy latents + image latents). The branch's real input width is derived in ``branch_in_channels``.
        sample_height, sample_width: latent grid the learned positional embedding was made for (60x90).
        sample_frames: *pixel* frames of that grid (49 -> 13 latents), as diffusers documents it.
        max_text_seq_length: text tokens (226); the learned positional embedding has this many text rows.
    """

    num_attention_heads: int = 48
    attention_head_dim: int = 64
    in_channels: int = 32
    out_channels: int = 16
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    time_embed_dim: int = 512
    text_embed_dim: int = 4096
    num_layers: int = 42
    attention_bias: bool = True
    sample_width: int = 90
    sample_height: int = 60
    sample_frames: int = 49
    patch_size: int = 2
    temporal_compression_ratio: int = 4
    max_text_seq_length: int = 226
    activation_fn: str = "gelu-approximate"
    timestep_activation_fn: str = "silu"
    norm_elementwise_affine: bool = True
    norm_eps: float = 1e-5
    spatial_interpolation_scale: float = 1.875
    temporal_interpolation_scale: float = 1.0
    use_rotary_positional_embeddings: bool = True
    use_learned_positional_embeddings: bool = True

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def latent_channels(self) -> int:
        """Channels of one latent video (16): the I2V backbone takes noisy latents and image latents side by side."""
        return self.in_channels // 2

    @property
    def branch_in_channels(self) -> int:
        """Input width of the branch's patch embedding: 2*16+1 when the field is 16, field+1 otherwise (33)."""
        return self.in_channels * 2 + 1 if self.in_channels == 16 else self.in_channels + 1

    @property
    def sample_latent_frames(self) -> int:
        return (self.sample_frames - 1) // self.temporal_compression_ratio + 1

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "CogVideoXConfig":
        """Build from a ``config.json`` dict; unknown fields (``_class_name``, ``wo_text``...) are ignored."""
        if data.get("patch_size_t") is not None or data.get("ofs_embed_dim") is not None:
            raise ValueError(
                f"{source}: this is a CogVideoX 1.5 transformer (patch_size_t/ofs_embed_dim set); VideoPainter is "
                "trained on CogVideoX-5B-I2V (1.0). Use THUDM/CogVideoX-5b-I2V."
            )
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        if data.get("wo_text"):
            raise ValueError(f"{source}: branch checkpoints built with wo_text=true are not supported")
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
