"""Models for the native-CogVideoX interop tests (hosts with ``comfy/ldm/cogvideo``, ComfyUI 0.2x).

Core's VAELoader builds its CogVideoX VAE at the real size whatever the file holds (``comfy/sd.py``:
``AutoencoderKLCogVideoX(latent_channels=...)``, channels 128-512, 3 layers per block, 32 groups), so no tiny VAE can
go through it: :func:`write_full_size_vae` writes a random VAE of the real shapes (215.6M parameters, ~431 MB in
fp16, diffusers key names, the layout core reads) and its diffusers config. The tests run it on tiny frames (16x16).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

HAS_CORE_COGVIDEOX = False
try:
    import comfy.ldm.cogvideo.vae  # noqa: F401

    HAS_CORE_COGVIDEOX = True
except ImportError:
    pass
NO_CORE_COGVIDEOX = "this ComfyUI host lacks native CogVideoX (comfy/ldm/cogvideo, VAELoader/CLIPLoader 'cogvideox', 0.2x)"

# CogVideoX-5b-I2V vae/config.json (the sizes core hard-codes)
FULL_VAE = dict(
    act_fn="silu", block_out_channels=[128, 256, 256, 512], down_block_types=["CogVideoXDownBlock3D"] * 4,
    up_block_types=["CogVideoXUpBlock3D"] * 4, force_upcast=True, in_channels=3, latent_channels=16, layers_per_block=3,
    norm_eps=1e-6, norm_num_groups=32, out_channels=3, sample_height=480, sample_width=720, scaling_factor=0.7,
    temporal_compression_ratio=4, use_post_quant_conv=False, use_quant_conv=False,
)


def write_full_size_vae(folder: Path, seed: int = 0) -> Path:
    """``folder/config.json`` + ``folder/diffusion_pytorch_model.safetensors`` (fp16); returns the weights file."""
    from diffusers import AutoencoderKLCogVideoX

    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "diffusion_pytorch_model.safetensors"
    if weights.is_file():
        return weights
    torch.manual_seed(seed)
    sd = {k: v.to(torch.float16).contiguous() for k, v in AutoencoderKLCogVideoX(**FULL_VAE).state_dict().items()}
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLCogVideoX", **FULL_VAE}, indent=2))
    save_file(sd, str(weights))
    return weights
