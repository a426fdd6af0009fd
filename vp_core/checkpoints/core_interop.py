"""Interop with ComfyUI's own CogVideoX support (core has it since 0.2x: ``comfy/ldm/cogvideo/``).

Adapters, so the pack's nodes take what core's loaders give and what users already downloaded:

- :func:`vp_core.checkpoints.vae.video_vae` (in ``vae.py``, beside the VAE it builds): core's ``VAE`` (``VAELoader`` on a CogVideoX VAE file) becomes this pack's :class:`VideoVAE`
  (diffusers' ``AutoencoderKLCogVideoX``, the reference's encode/decode), over the same weight tensors. Core's
  CogVideoX VAE keeps diffusers' key names, so only the sizes are read back (from the weights and, for the group
  count, from core's module); the scaling factor is CogVideoX-5B-I2V's (core keeps it in the model's latent format,
  not in the VAE).
- :data:`CORE_TO_DIFFUSERS` and :func:`to_diffusers_keys` / :func:`to_core_keys`: the transformer key layout of
  core's ``CogVideoXTransformer3DModel`` (``blocks.N.q``, ``attn_out``, ``ff_proj`` ...) against diffusers' (what
  this pack's model uses: ``transformer_blocks.N.attn1.to_q`` ...); the one table for both directions.
- The text encoder needs no adapter: core's ``CLIPLoader`` type ``cogvideox`` gives a T5-XXL ``CLIP`` that
  :func:`vp_core.checkpoints.text.encode_prompt` takes like any other T5-XXL CLIP.

On hosts without core CogVideoX (0.3.75) the VAE adapter is never reached with a core VAE holding CogVideoX: core
cannot load one there.
"""
from __future__ import annotations

import re

from torch import Tensor

# Whole-name renames (outside the blocks), core -> diffusers.
_TOP_LEVEL = {
    "time_embedding_linear_1": "time_embedding.linear_1",
    "time_embedding_linear_2": "time_embedding.linear_2",
    "ofs_embedding_linear_1": "ofs_embedding.linear_1",
    "ofs_embedding_linear_2": "ofs_embedding.linear_2",
}
# Inside ``blocks.N.`` (core) / ``transformer_blocks.N.`` (diffusers), core -> diffusers.
_BLOCK = {
    "q": "attn1.to_q",
    "k": "attn1.to_k",
    "v": "attn1.to_v",
    "norm_q": "attn1.norm_q",
    "norm_k": "attn1.norm_k",
    "attn_out": "attn1.to_out.0",
    "ff_proj": "ff.net.0.proj",
    "ff_out": "ff.net.2",
    "norm1.linear": "norm1.linear",
    "norm1.norm": "norm1.norm",
    "norm2.linear": "norm2.linear",
    "norm2.norm": "norm2.norm",
}
# Everything else (patch_embed.*, norm_final, norm_out.*, proj_out) has the same name in both layouts.
CORE_TO_DIFFUSERS = {"top_level": _TOP_LEVEL, "block": _BLOCK}

CORE_BLOCK_PREFIX, DIFFUSERS_BLOCK_PREFIX = "blocks.", "transformer_blocks."
CORE_MARKER = "blocks.0.norm1.linear.weight"  # what core's model detection looks for (comfy/model_detection.py)
COGVIDEOX_5B_SCALING_FACTOR = 0.7  # CogVideoX-5b-I2V vae/config.json


def is_core_layout(sd: dict[str, Tensor]) -> bool:
    return CORE_MARKER in sd


def _rename(key: str, table: dict[str, str], block_from: str, block_to: str) -> str:
    match = re.match(rf"^{re.escape(block_from)}(\d+)\.(.+)\.(weight|bias)$", key)
    if match:
        index, module, param = match.groups()
        if module not in table["block"]:
            raise KeyError(f"{key}: no mapping for block module {module!r}")
        return f"{block_to}{index}.{table['block'][module]}.{param}"
    module, dot, param = key.rpartition(".")
    if module in table["top_level"]:
        return f"{table['top_level'][module]}{dot}{param}"
    return key


def _inverted() -> dict[str, dict[str, str]]:
    return {part: {v: k for k, v in names.items()} for part, names in CORE_TO_DIFFUSERS.items()}


def to_diffusers_keys(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """A transformer state dict in core's layout -> diffusers' (the tensors themselves are not copied)."""
    return {_rename(k, CORE_TO_DIFFUSERS, CORE_BLOCK_PREFIX, DIFFUSERS_BLOCK_PREFIX): v for k, v in sd.items()}


def to_core_keys(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """A transformer state dict in diffusers' layout -> core's (e.g. to write a file core's loaders read)."""
    return {_rename(k, _inverted(), DIFFUSERS_BLOCK_PREFIX, CORE_BLOCK_PREFIX): v for k, v in sd.items()}
