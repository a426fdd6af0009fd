"""Cheap latent previews: a linear latent -> RGB map measured from the loaded VAE itself.

CogVideoX has no published latent-to-RGB factors, so they are measured once per VAE: decode an all-zero latent and
one unit latent per channel (one 2x2 frame each, a single small batch) and take the mean colour change per channel.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..checkpoints.vae import VideoVAE


@torch.no_grad()
def rgb_factors(vae: VideoVAE) -> tuple[Tensor, Tensor]:
    """(factors ``[16, 3]``, bias ``[3]``) mapping a *scaled* latent pixel to RGB in [-1, 1]; cached on ``vae``."""
    cached = getattr(vae, "_preview_factors", None)
    if cached is not None:
        return cached
    vae.load()
    channels = vae.model.config.latent_channels
    z = torch.zeros(channels + 1, channels, 1, 2, 2)
    for c in range(channels):
        z[c + 1, c] = 1.0
    rgb = vae.model.decode(z.to(vae.patcher.load_device, vae.dtype)).sample.float().mean(dim=(2, 3, 4)).cpu()
    bias, factors = rgb[0], (rgb[1:] - rgb[0]) / vae.scaling_factor
    vae._preview_factors = (factors, bias)
    return factors, bias


def preview_frame(latents: Tensor) -> Tensor:
    """The middle latent frame of ``[B, F, C, h, w]`` in ComfyUI's video layout ``[1, C, 1, h, w]``."""
    mid = latents.shape[1] // 2
    return latents[:1, mid:mid + 1].permute(0, 2, 1, 3, 4).float().cpu()


MASK_TINT = (1.0, 0.0, 1.0)  # magenta: rare in natural video
BOX_COLOUR = (0.0, 1.0, 0.0)  # crop mode: the box the model sees, outlined in green


def draw_box(image: Tensor, box: tuple[int, int, int, int], colour=BOX_COLOUR) -> Tensor:
    """``image`` ``[H, W, 3]`` with the outline of ``box`` = (top, left, height, width) drawn in place, about 0.4 %
    of the frame's smaller side thick (at least 2 px)."""
    top, left, h, w = box
    t = max(2, min(image.shape[:2]) // 250)
    c = torch.tensor(colour, dtype=image.dtype)
    image[top:top + t, left:left + w] = c
    image[max(top + h - t, top):top + h, left:left + w] = c
    image[top:top + h, left:left + t] = c
    image[top:top + h, max(left + w - t, left):left + w] = c
    return image


def mask_overlay(job, count: int = 4, opacity: float = 0.5) -> Tensor:
    """``count`` evenly spaced frames of an encoded job (first and last included) with the dilated hole the sampler
    will fill tinted (crop mode: and the box the model sees outlined in green), as a ComfyUI IMAGE batch ``[count, H, W, 3]`` in [0, 1] (read through
    ``preprocess.frames_and_holes``, whose own readers leave the sampler's in place)."""
    from . import preprocess

    total = preprocess.frame_count(job)
    if total == 0:
        raise ValueError("inpaint: the encoded clip has no frames")
    count = max(1, min(count, total))
    picks = [round(i * (total - 1) / (count - 1)) for i in range(count)] if count > 1 else [0]
    tint = torch.tensor(MASK_TINT)
    out = []
    for index, (frame, hole) in zip(sorted(picks), preprocess.frames_and_holes(job, picks)):
        image = frame.float() / 255.0
        tinted = image * (1 - opacity) + tint * opacity
        image = torch.where(hole[..., None], tinted, image)
        out.append(draw_box(image, job.crop.box(index)) if job.crop is not None else image)
    return torch.stack(out)
