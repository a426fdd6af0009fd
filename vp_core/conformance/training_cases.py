"""The training-step cases (``train_branch_step``, ``train_id_lora_step``): one step of ``vp_core.training`` on the
fixture's batch with every random value injected, compared tensor by tensor (``grad.<name>``,
``param_after.<name>``, the losses, prediction, target and latents)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..checkpoints import loaders
from ..training import optim, parts, step
from ..training.lora import TrainableLora


def _batch(inp: dict) -> step.PixelBatch:
    def pix(u8: Tensor) -> Tensor:  # [B, T, H, W, 3] uint8 -> [B, T, 3, H, W] in [-1, 1]
        return (u8.float() / 127.5 - 1.0).permute(0, 1, 4, 2, 3)

    return step.PixelBatch(pix(inp["video_u8"]), pix(inp["masked_video_u8"]), inp["masks_u8"].float()[:, :, None],
                           inp["prompt_embeds"])


def _noise(inp: dict) -> step.StepNoise:
    return step.StepNoise(inp["image_noise_sigma"], inp["image_noise"], inp["posterior_noise_image"],
                          inp["posterior_noise_video"], inp["posterior_noise_masked_video"], inp["noise"],
                          inp["timesteps"], bool(inp["noised_image_dropout_applied"]))


def _optim_config(params: dict) -> optim.OptimConfig:
    h = params["hyperparameters"]
    return optim.OptimConfig(learning_rate=params["learning_rate_used"], adam_beta1=h["adam_beta1"],
                             adam_beta2=h["adam_beta2"], adam_epsilon=h["adam_epsilon"],
                             adam_weight_decay=h["adam_weight_decay"], max_grad_norm=h["max_grad_norm"])


def _one_step(fx, inp: dict, params: dict, model: step.InpaintModel, named: dict[str, Tensor], frozen: dict) -> dict:
    h = params["hyperparameters"]
    model.set_gradient_checkpointing(bool(h.get("gradient_checkpointing", False)))
    sched = step.training_scheduler(params["scheduler_config"])
    lat = step.encode_batch(fx.vae(), _batch(inp), _noise(inp), tiling=bool(h.get("enable_tiling", True)))
    res = step.forward_loss(model, sched, lat, inp["noise"], inp["timesteps"], h["inpainting_loss_weight"])
    res.loss.backward()
    trainable = list(named.values())
    out = {f"grad.{k}": p.grad.detach().clone() for k, p in named.items() if p.grad is not None}
    cfg = _optim_config(params)
    norm, coef = optim.clip(trainable, cfg.max_grad_norm)
    opt = optim.make_optimizer(trainable, cfg)
    opt.step()
    out.update({f"param_after.{k}": p.detach().clone() for k, p in named.items()})
    out.update({f"param_after.{k}": v for k, v in frozen.items()})
    out.update(image_latents=lat.image_latents, model_input=lat.model_input, conditioning_latents=lat.conditioning_latents,
               masks_latent=lat.masks_latent, noisy_video_latents=res.noisy_video_latents, model_output=res.model_output,
               model_pred=res.model_pred, target=res.target, weights=res.weights, loss_mse=res.loss_mse,
               inpainting_loss=res.inpainting_loss, loss=res.loss, grad_norm_before_clip=norm, clip_coef=coef)
    out.update({f"branch_block_sample_{i}": s for i, s in enumerate(res.branch_samples)})
    return {k: v.detach() for k, v in out.items()}


def train_branch_step(fx, inp: dict, params: dict) -> dict[str, Tensor]:
    transformer = fx.backbone(False).model.diffusion_model
    branch = parts.load_trainable_branch(fx.root / "branch")
    h = params["hyperparameters"]
    model = step.InpaintModel(transformer.eval(), branch.module, mask_add=h["mask_add"])
    named = dict(branch.module.named_parameters())
    try:
        return _one_step(fx, inp, params, model, named, branch.unused)
    finally:
        model.set_gradient_checkpointing(False)


def train_id_lora_step(fx, inp: dict, params: dict) -> dict[str, Tensor]:
    transformer = fx.backbone(False).model.diffusion_model
    branch = fx.branch().model.branch
    spec = params["lora"]
    init = loaders.read_safetensors(fx.root / "id_lora" / parts.LORA_FILE)
    lora = TrainableLora(transformer, spec["rank"], spec["lora_alpha"], spec["target_modules"], init)
    h = params["hyperparameters"]
    model = step.InpaintModel(transformer.train(), branch.eval(), mask_add=h["mask_add"], id_resample=True, lora=lora)
    try:
        return _one_step(fx, inp, params, model, lora.trainable(), {})
    finally:
        lora.detach_from_backbone()
        model.set_gradient_checkpointing(False)
        transformer.eval()
