"""Optimizer and learning-rate schedule of the reference's .sh files: AdamW (betas 0.9 / 0.95, eps 1e-8, weight
decay 1e-4 (the scripts' default)), ``cosine_with_restarts`` with warm-up through diffusers' ``get_scheduler``,
gradient clipping at 1.0 (as DeepSpeed does it under the reference's accelerate config; see ``clip``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.optimization import get_scheduler
from torch import Tensor


@dataclass(frozen=True)
class OptimConfig:
    learning_rate: float = 1e-5  # VideoPainter.sh (the ID LoRA's VideoPainterID.sh: 5e-5)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_epsilon: float = 1e-8
    adam_weight_decay: float = 1e-4
    lr_scheduler: str = "cosine_with_restarts"
    lr_warmup_steps: int = 1000  # VideoPainterID.sh: 200
    lr_num_cycles: int = 1
    lr_power: float = 1.0
    max_grad_norm: float = 1.0
    max_train_steps: int = 1000


def make_optimizer(params, cfg: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(list(params), lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                             eps=cfg.adam_epsilon, weight_decay=cfg.adam_weight_decay)


def make_lr_scheduler(optimizer, cfg: OptimConfig, num_processes: int = 1):
    """As the scripts: warm-up and total steps counted in scheduler calls (x num_processes under accelerate)."""
    return get_scheduler(cfg.lr_scheduler, optimizer=optimizer, num_warmup_steps=cfg.lr_warmup_steps * num_processes,
                         num_training_steps=cfg.max_train_steps * num_processes, num_cycles=cfg.lr_num_cycles,
                         power=cfg.lr_power)


def clip(params: list[Tensor], max_norm: float) -> tuple[Tensor, Tensor]:
    """Clip the gradients of ``params`` to total L2 norm ``max_norm``; returns (norm before, clip_coef).

    The scripts hand ``clip_grad_norm_`` a generator their norm logging has already consumed, so without DeepSpeed
    they clip nothing; under the .sh files' DeepSpeed config it clips at 1.0 with torch's formula
    (``min(1, max_norm / (norm + 1e-6))``). We clip always (the .sh behaviour)."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return norm, coef
