"""Interop with ComfyUI's own CogVideoX support (core has it since 0.2x: ``comfy/ldm/cogvideo/``).

Three adapters, so the pack's nodes take what core's loaders give and what users already downloaded:

- :func:`video_vae`: core's ``VAE`` (``VAELoader`` on a CogVideoX VAE file) becomes this pack's :class:`VideoVAE`
  (diffusers' ``AutoencoderKLCogVideoX``, the reference's encode/decode), over the same weight tensors. Core's
  CogVideoX VAE keeps diffusers' key names, so only the sizes are read back (from the weights and, for the group
  count, from core's module); the scaling factor is CogVideoX-5B-I2V's (core keeps it in the model's latent format,
  not in the VAE).
- :data:`CORE_TO_DIFFUSERS` and :func:`to_diffusers_keys` / :func:`to_core_keys`: the transformer key layout of
  core's ``CogVideoXTransformer3DModel`` (``blocks.N.q``, ``attn_out``, ``ff_proj`` ...) against diffusers' (what
  this pack's model uses: ``transformer_blocks.N.attn1.to_q`` ...); the one table for both directions.
- The text encoder needs no adapter: core's ``CLIPLoader`` type ``cogvideox`` gives a T5-XXL ``CLIP`` that
  :func:`vp_core.text.encode_prompt` takes like any other T5-XXL CLIP.

On hosts without core CogVideoX (0.3.75) the VAE adapter is never reached with a core VAE holding CogVideoX: core
cannot load one there.
"""
from __future__ import annotations

import re

import torch
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


# ------------------------------------------------------------------------------------------------------- VAE
def is_core_cogvideox_vae(vae) -> bool:
    """True for core's ``comfy.sd.VAE`` holding core's CogVideoX VAE (only hosts with native CogVideoX have it)."""
    try:
        from comfy.ldm.cogvideo.vae import AutoencoderKLCogVideoX as CoreCogVideoXVAE
    except ImportError:
        return False
    return isinstance(getattr(vae, "first_stage_model", None), CoreCogVideoXVAE)


def diffusers_vae_config(core_model) -> dict:
    """The diffusers ``AutoencoderKLCogVideoX`` config of core's CogVideoX VAE module, read from its weights."""
    sd = core_model.state_dict()
    down = sorted({int(k.split(".")[2]) for k in sd if k.startswith("encoder.down_blocks.")})
    channels = [sd[f"encoder.down_blocks.{i}.resnets.0.conv2.conv.weight"].shape[0] for i in down]
    layers = len({k.split(".")[4] for k in sd if k.startswith("encoder.down_blocks.0.resnets.")})
    return dict(
        in_channels=sd["encoder.conv_in.conv.weight"].shape[1], out_channels=sd["decoder.conv_out.conv.weight"].shape[0],
        latent_channels=core_model.latent_channels, block_out_channels=channels, layers_per_block=layers,
        down_block_types=["CogVideoXDownBlock3D"] * len(channels), up_block_types=["CogVideoXUpBlock3D"] * len(channels),
        norm_num_groups=core_model.encoder.norm_out.num_groups, norm_eps=core_model.encoder.norm_out.eps,
        temporal_compression_ratio=core_model.temporal_compression_ratio, scaling_factor=COGVIDEOX_5B_SCALING_FACTOR,
        use_quant_conv=False, use_post_quant_conv=False,
    )


def video_vae(vae, what: str = "vae"):
    """This pack's :class:`VideoVAE` for what a ``vae`` input received: ours as it is, or core's CogVideoX VAE
    (``VAELoader``) wrapped over the same tensors (built once per core VAE object).

    Raises:
        ValueError: a core VAE of another model (SD, FLUX, Wan ...), or something that is no VAE.
    """
    from .vae import VideoVAE, video_vae_from_module

    if isinstance(vae, VideoVAE):
        return vae
    if vae is None:
        raise ValueError(
            f"{what}: no VAE (a backbone loaded from a single transformer file has none): connect Load VAE on the "
            "CogVideoX VAE (e.g. cogvideox_vae.safetensors in models/vae)"
        )
    if is_core_cogvideox_vae(vae):
        cached = getattr(vae, "_videopainter_vae", None)
        if cached is None:
            from diffusers import AutoencoderKLCogVideoX

            core = vae.first_stage_model
            with torch.device("meta"):
                module = AutoencoderKLCogVideoX.from_config(diffusers_vae_config(core))
            load_device, offload_device = vae.patcher.load_device, vae.patcher.offload_device
            sd = {k: v.to(offload_device, vae.vae_dtype) for k, v in core.state_dict().items()}
            module.load_state_dict(sd, strict=True, assign=True)
            cached = video_vae_from_module(module, vae.vae_dtype, load_device, offload_device)
            vae._videopainter_vae = cached
        return cached
    model = getattr(vae, "first_stage_model", None)
    got = type(model).__module__ + "." + type(model).__name__ if model is not None else type(vae).__name__
    raise ValueError(
        f"{what}: expected the CogVideoX VAE (VideoPainter Backbone Loader's vae, or Load VAE on a CogVideoX VAE "
        f"file such as cogvideox_vae.safetensors); got {got}. Connect a CogVideoX VAE here."
    )
