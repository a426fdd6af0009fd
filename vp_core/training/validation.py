"""Validation renders while training: the reference's ``log_validation`` through the pack's own sampler.

The reference (``train/train_cogvideox_inpainting_i2v_video.py``, its ``_resample`` twin) renders at step 1 and
every ``--validating_steps`` steps: up to two clips of the validation set (``--val_meta_file_path``), each
``--num_validation_videos`` times, with 50 DPM steps, ``--guidance_scale`` (6), ``--use_dynamic_cfg`` (off),
``mask_add``, the ground-truth first frame as the I2V image and ``replace_gt`` on for the first clip and off for the
second; it writes ``[original | masked | generated]`` side by side at 8 fps. Here the same, with the CURRENT weights
(the trainable branch module itself, or the backbone with the LoRA adapters as trained: scale alpha / rank, as the
reference's validation sees its PEFT adapter), on the main process, into
``OUTPUT_DIR/validation/step-<step>/<clip>_video_<i>_replace_gt_<on|off>.mp4`` (each written to a temporary name
and renamed into place by ``datasets.write_video``).

The validation clips come from a prepared cache (``data.prepare_cache``: ``--val_meta_file_path`` or
``--val_data_folder``), or the first clips of the training cache when none is given. The negative prompt is the
empty caption's T5 embedding (the reference's pipeline encodes ``""``), stored by ``prepare_cache``.
``--validation_prompt`` of the reference is not taken: its script never uses it (each clip's caption is the prompt).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoints import loaders
from ..evaluation import datasets
from ..pipeline import preprocess, sampling
from ..pipeline.video_out import to_uint8
from ..pipeline.windows import plan_windows
from .data import ClipStore, read_negative

log = logging.getLogger(__name__)
VALIDATION_CLIPS = 2  # the reference stops after two validation batches
FPS = 8  # the reference's export_to_video(..., fps=8)


@dataclass(frozen=True)
class ValidationConfig:
    validating_steps: int | None = None  # render at step 1 and every N steps; None: no validation
    num_validation_videos: int = 1
    guidance_scale: float = 6.0
    use_dynamic_cfg: bool = False
    num_inference_steps: int = 50  # the reference's hard-coded 50
    cache_dir: str | None = None  # the validation clips' cache; None: the training cache

    def due(self, step: int) -> bool:
        """Whether to render after ``step`` steps (the reference: ``global_step % validating_steps == 0 or == 1``)."""
        return bool(self.validating_steps) and (step % self.validating_steps == 0 or step == 1)


def sampling_models(trainer) -> sampling.Models:
    """The sampler's models over the trainer's live modules (no copy: what the next step trains is what renders)."""
    dev = trainer.acc.device
    if trainer.branch is not None:
        module = trainer.branch.module
        precision = loaders.pick_precision(next(module.parameters()).dtype, dev)
        branch = loaders.patcher_for("branch", module, precision, dev, dev)
        id_resample = False
    else:
        branch, id_resample = trainer._frozen_branch, True
        trainer.lora.attach()
    return sampling.Models(trainer._backbone, branch, trainer.vae, trainer.scheduler_config, id_resample)


def render(trainer, vcfg: ValidationConfig, step: int) -> list[Path]:
    """Render the validation clips with the current weights; returns the files written."""
    cfg = trainer.cfg
    cache = Path(vcfg.cache_dir or cfg.cache_dir)
    store = ClipStore(cache)
    negative = read_negative(cache)
    models = sampling_models(trainer)
    folder = Path(cfg.output_dir) / "validation" / f"step-{step}"
    written = []
    n = cfg.data.max_num_frames
    modules = [m for m in (trainer.branch.module if trainer.branch is not None else None,
                           trainer.lora) if m is not None]
    was_training = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.no_grad():
            for c in range(min(VALIDATION_CLIPS, len(store))):
                video, masks, emb = store.read(c, 0, n)  # masks: 1 = hole
                # the reference's validation: the ground-truth frame 0 is the I2V image (first_frame_gt)
                inputs = preprocess.reference_inputs(video, masks * 255, video[0], 0, cfg.data.first_frame_gt)
                cond = sampling.InpaintConditioning(inputs.video, inputs.masks, inputs.image, emb[None],
                                                    negative[None], cfg.data.height, cfg.data.width)
                replace_gt = c % 2 == 0  # the reference: (vali_num + 1) % 2 == 1
                for i in range(vcfg.num_validation_videos):
                    settings = sampling.SamplerSettings(
                        steps=vcfg.num_inference_steps, guidance=vcfg.guidance_scale, dynamic_cfg=vcfg.use_dynamic_cfg,
                        replace_gt=replace_gt, mask_add=cfg.mask_add, vae_tiling=cfg.enable_tiling, seed=cfg.seed + i)
                    plan = plan_windows(video.shape[0], video.shape[0], 0, "reference")
                    latents = sampling.Sampler(models, cond, plan, settings).run().latents
                    chunks = [(x[0].permute(1, 2, 3, 0).float() + 1) / 2 for x in trainer.vae.decode_iter(latents, cfg.enable_tiling)]
                    generated = to_uint8(torch.cat(chunks)[: video.shape[0]])
                    hole = (masks > 0)[..., None].numpy()
                    original = video.numpy()
                    panel = np.concatenate([original, np.where(hole, 0, original), generated], axis=2)
                    path = folder / f"{store.clips[c]}_video_{i}_replace_gt_{'on' if replace_gt else 'off'}.mp4"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    datasets.write_video(path, panel.astype(np.uint8), FPS, lossless=False)  # renamed into place
                    written.append(path)
    finally:
        for m, t in zip(modules, was_training):
            m.train(t)
    log.info("validation at step %d: %d videos in %s", step, len(written), folder)
    return written
