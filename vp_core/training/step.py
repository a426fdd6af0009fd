"""One training step of the reference (``train/train_cogvideox_inpainting_i2v_video.py`` and its ``_resample``
twin), on the sampler's own modules.

Order of the step, as the scripts form it (every intermediate is a field of ``StepResult``):

1. latents (``encode_batch``): image latents from the ground-truth frame 0 plus noise of ``sigma = exp(N(-3, 0.5))``
   per sample, VAE posterior x scaling factor, zero-padded to F latent frames (all zero under noised-image dropout:
   ONE draw per step for the whole batch); the clean video latents (``model_input``) and the masked video's latents
   likewise; ``masks_latent`` = nearest interpolation of the pixel masks (``preprocess.latent_mask``);
   ``conditioning_latents`` = [masked-video latents | masks_latent];
2. ``noisy = scheduler.add_noise(model_input, noise, t)``; branch(noisy, cond) -> block samples; backbone(
   [noisy | image latents]) with the samples added outside the hole (mask_add) and, for the ID LoRA, ID-resample
   attention over the clip's own hole tokens (no previous clip in training) -> ``model_output`` (v);
3. ``model_pred = scheduler.get_velocity(model_output, noisy, t)`` (an x0 estimate), ``target = model_input``,
   ``weights = 1 / (1 - alphas_cumprod[t])`` in float32; ``loss = mean_b(mean(w (pred - target)^2)) +
   inpainting_loss_weight * mean_b(mean(w (pred m - target m)^2))`` (the masked term averaged over ALL elements).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from diffusers import CogVideoXDPMScheduler
from torch import Tensor, nn

from ..checkpoints.vae import VideoVAE
from ..model.branch import VideoPainterBranch
from ..model.id_resample import IDResample
from ..model.rope import video_rope
from ..model.transformer import CogVideoXTransformer, Injection, token_mask
from ..pipeline.preprocess import latent_mask

IMAGE_NOISE_LOG_MEAN, IMAGE_NOISE_LOG_STD = -3.0, 0.5  # the scripts' torch.normal(mean=-3.0, std=0.5) then exp


@dataclass
class PixelBatch:
    """A collated batch as it reaches the step (the scripts' collate output).

    Parameters:
        pixel_values: ``[B, T, 3, H, W]`` float in [-1, 1].
        conditioning_pixel_values: the masked video, same form (frame 0 = ground truth under first_frame_gt).
        masks: ``[B, T, 1, H, W]`` float, 1 = hole (frame 0 all zero under first_frame_gt).
        prompt_embeds: ``[B, L, D]`` text embeddings (T5 output, cached).
    """

    pixel_values: Tensor
    conditioning_pixel_values: Tensor
    masks: Tensor
    prompt_embeds: Tensor


@dataclass
class StepNoise:
    """Every random value of one step (drawn by ``draw_noise`` or injected by the conformance cases)."""

    image_noise_sigma: Tensor  # [B], already exp'd
    image_noise: Tensor  # [B, 3, 1, H, W]
    posterior_noise_image: Tensor  # [B, 16, 1, h, w] (channels first, as the VAE posterior)
    posterior_noise_video: Tensor  # [B, 16, F, h, w]
    posterior_noise_masked_video: Tensor  # [B, 16, F, h, w]
    noise: Tensor  # [B, F, 16, h, w]
    timesteps: Tensor  # [B] int64
    dropout: bool  # noised-image dropout applied to the whole batch


def latent_frames(frames: int, temporal: int = 4) -> int:
    return (frames - 1) // temporal + 1


def draw_noise(batch: PixelBatch, generator: torch.Generator, latent_channels: int, spatial: int,
               noised_image_dropout: float, num_train_timesteps: int = 1000) -> StepNoise:
    """Draw a step's random values from ``generator`` (CPU) in the scripts' order: sigma, image noise, the three
    posterior samples, the dropout coin, the latent noise, the timesteps. The scripts take the coin from Python's
    ``random``; here everything comes from one torch generator so a checkpoint's generator state resumes it exactly."""
    b, t, _, hp, wp = batch.pixel_values.shape
    f, h, w = latent_frames(t), hp // spatial, wp // spatial

    def randn(*shape):
        return torch.randn(shape, generator=generator, dtype=torch.float32)

    sigma = torch.exp(IMAGE_NOISE_LOG_MEAN + IMAGE_NOISE_LOG_STD * randn(b))
    image_noise = randn(b, 3, 1, hp, wp)
    post_image, post_video, post_masked = randn(b, latent_channels, 1, h, w), randn(b, latent_channels, f, h, w), \
        randn(b, latent_channels, f, h, w)
    dropout = bool(torch.rand((), generator=generator) < noised_image_dropout)
    noise = randn(b, f, latent_channels, h, w)
    timesteps = torch.randint(0, num_train_timesteps, (b,), generator=generator, dtype=torch.int64)
    return StepNoise(sigma, image_noise, post_image, post_video, post_masked, noise, timesteps, dropout)


@dataclass
class StepLatents:
    """What the networks see (the conformance cases' ``image_latents``, ``model_input`` ...)."""

    image_latents: Tensor  # [B, F, 16, h, w]
    model_input: Tensor  # clean video latents [B, F, 16, h, w]
    conditioning_latents: Tensor  # [B, F, 17, h, w]
    masks_latent: Tensor  # [B, F, 1, h, w]
    prompt_embeds: Tensor

    def to(self, device, dtype=None) -> "StepLatents":
        return StepLatents(*(getattr(self, f.name).to(device, dtype) for f in fields(self)))


@torch.no_grad()
def encode_batch(vae: VideoVAE, batch: PixelBatch, rnd: StepNoise, tiling: bool = True,
                 dtype: torch.dtype = torch.float32) -> StepLatents:
    """Step 1 of the module docstring (frozen VAE, no gradient)."""
    pix = batch.pixel_values.to(dtype)
    images = pix[:, :1].permute(0, 2, 1, 3, 4)  # [B, 3, 1, H, W]
    noisy_images = images + rnd.image_noise.to(dtype) * rnd.image_noise_sigma.to(dtype)[:, None, None, None, None]
    image_latents = vae.encode(noisy_images, None, tiling, dtype, noise=rnd.posterior_noise_image)
    model_input = vae.encode(pix.permute(0, 2, 1, 3, 4), None, tiling, dtype, noise=rnd.posterior_noise_video)
    masked = vae.encode(batch.conditioning_pixel_values.to(dtype).permute(0, 2, 1, 3, 4), None, tiling, dtype,
                        noise=rnd.posterior_noise_masked_video)
    b, f = model_input.shape[:2]
    pad = image_latents.new_zeros(b, f - 1, *image_latents.shape[2:])
    image_latents = torch.cat([image_latents, pad], 1)
    if rnd.dropout:
        image_latents = torch.zeros_like(image_latents)
    masks = latent_mask(batch.masks.to(dtype).permute(0, 2, 1, 3, 4), f, *model_input.shape[3:]).to(masked.device)
    cond = torch.cat([masked, masks], 2)
    return StepLatents(image_latents, model_input, cond, masks, batch.prompt_embeds.to(model_input.device, dtype))


class InpaintModel(nn.Module):
    """Branch + backbone as one module (what accelerate/DDP wraps): ``forward`` is the scripts' two network calls.

    Parameters:
        id_resample: the ``_resample`` script's ``id_pool_resample_learnable`` (the clip is its own pool).
        lora: the ``TrainableLora`` attached to the backbone (held here so its parameters are this module's).
    """

    def __init__(self, transformer: CogVideoXTransformer, branch: VideoPainterBranch, mask_add: bool = True,
                 id_resample: bool = False, lora: nn.Module | None = None):
        super().__init__()
        self.transformer, self.branch, self.lora = transformer, branch, lora
        self.mask_add, self.id_resample = mask_add, id_resample

    def set_gradient_checkpointing(self, on: bool) -> None:
        self.transformer.gradient_checkpointing = on
        self.branch.gradient_checkpointing = on

    def forward(self, noisy: Tensor, lat: StepLatents, timesteps: Tensor) -> tuple[Tensor, list[Tensor]]:
        cfg = self.transformer.cfg
        if self.lora is not None:
            self.lora.attach()
        _, f, _, h, w = noisy.shape
        rope = video_rope(cfg, f, h, w, noisy.device)
        samples = self.branch(noisy, lat.conditioning_latents, lat.prompt_embeds, timesteps, rope)
        hole = token_mask(lat.masks_latent, cfg.patch_size)
        x = torch.cat([noisy, lat.image_latents.to(noisy.dtype)], 2)
        idr = IDResample(hole) if self.id_resample else None
        out = self.transformer(x, lat.prompt_embeds, timesteps, rope, Injection(samples, hole, self.mask_add), idr)
        return out, samples


def training_scheduler(config: dict) -> CogVideoXDPMScheduler:
    """The scripts' noise scheduler (``CogVideoXDPMScheduler`` from the folder's config): add_noise, get_velocity and
    alphas_cumprod only, so timestep spacing does not matter."""
    return CogVideoXDPMScheduler.from_config({k: v for k, v in config.items() if not k.startswith("_")})


@dataclass
class StepResult:
    noisy_video_latents: Tensor
    model_output: Tensor
    branch_samples: list[Tensor]
    model_pred: Tensor
    target: Tensor
    weights: Tensor
    loss_mse: Tensor
    inpainting_loss: Tensor
    loss: Tensor


def forward_loss(model: nn.Module, scheduler: CogVideoXDPMScheduler, lat: StepLatents, noise: Tensor,
                 timesteps: Tensor, inpainting_loss_weight: float = 1.0) -> StepResult:
    """Steps 2-3 of the module docstring; ``model`` is an ``InpaintModel`` (possibly wrapped by accelerate)."""
    device = lat.model_input.device
    timesteps = timesteps.to(device)
    noise = noise.to(device, lat.model_input.dtype)
    noisy = scheduler.add_noise(lat.model_input, noise, timesteps)
    model_output, samples = model(noisy, lat, timesteps)
    model_pred = scheduler.get_velocity(model_output, noisy, timesteps)
    alphas = scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
    weights = 1 / (1 - alphas[timesteps])
    w = weights.view(-1, *([1] * (model_pred.ndim - 1)))
    target = lat.model_input
    b = model_pred.shape[0]
    loss_mse = torch.mean((w * (model_pred - target) ** 2).reshape(b, -1), dim=1).mean()
    m = lat.masks_latent.to(model_pred.dtype)
    inpainting = torch.mean((w * (model_pred * m - target * m) ** 2).reshape(b, -1), dim=1).mean()
    loss = loss_mse + inpainting_loss_weight * inpainting
    return StepResult(noisy, model_output, samples, model_pred, target, weights, loss_mse, inpainting, loss)
