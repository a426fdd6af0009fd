#!/usr/bin/env python3
"""Fine-tune VideoPainter on your own footage: ``vp_train.py {branch,id-lora} [flags]``.

A thin command over ``vp_core.training``. Flags carry the reference scripts' names (train/VideoPainter.sh,
train/VideoPainterID.sh) where the meaning is the same; the defaults are those .sh files' (per task). Run it with
``python scripts/vp_train.py ...`` on one device or ``accelerate launch [--config_file FILE] scripts/vp_train.py ...``
on several (README, "Fine-tune on your own footage").
"""
from __future__ import annotations

import argparse
import logging
import math
import sys

import vp_pack  # noqa: F401  (registers the package 'videopainter')

log = logging.getLogger("vp_train")

TASK_DEFAULTS = {  # VideoPainter.sh / VideoPainterID.sh
    "branch": dict(learning_rate=1e-5, lr_warmup_steps=1000, checkpointing_steps=1024),
    "id-lora": dict(learning_rate=5e-5, lr_warmup_steps=200, checkpointing_steps=256),
}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vp_train.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("task", choices=("branch", "id-lora"), help="branch: the context encoder; id-lora: the ID-resample LoRA")
    a = ap.add_argument_group("models")
    a.add_argument("--pretrained_model_name_or_path", required=True, help="the CogVideoX-5b-I2V diffusers folder")
    a.add_argument("--cogvideox_branch_name_or_path", help="branch folder: fine-tuned (branch) or frozen (id-lora); "
                   "absent for branch: a new branch from the backbone (from_transformer)")
    a.add_argument("--id_lora_path", help="id-lora: start from this pytorch_lora_weights.safetensors")
    a.add_argument("--branch_layer_num", type=int, default=2)
    a.add_argument("--rank", type=int, default=256)
    a.add_argument("--lora_alpha", type=float, default=128)
    d = ap.add_argument_group("data")
    d.add_argument("--meta_file_path", help="the reference's training CSV (path,start_frame,end_frame,fps,mask_id,caption)")
    d.add_argument("--instance_data_root", help="folder of the CSV's videos (videovo/raw_video layout)")
    d.add_argument("--mask_root", help="folder of the CSV's all_masks.npz (default: the CSV's folder, as the reference)")
    d.add_argument("--data_folder", help="plain folder: <name>.mp4 + <name>_mask.mp4 (white = hole) + <name>.txt")
    d.add_argument("--cache_dir", help="prepared clip cache (default: OUTPUT_DIR/cache); prepared once, then reused")
    d.add_argument("--on_bad_row", choices=("skip", "stop"), default="skip")
    d.add_argument("--height", type=int, default=480)
    d.add_argument("--width", type=int, default=720)
    d.add_argument("--max_num_frames", type=int, default=49)
    d.add_argument("--mix_train_ratio", type=float, default=0.0)
    d.add_argument("--first_frame_gt", action=argparse.BooleanOptionalAction, default=True)
    d.add_argument("--mask_transform_prob", type=float, default=0.3)
    d.add_argument("--p_brush", type=float, default=0.4)
    d.add_argument("--p_rect", type=float, default=0.1)
    d.add_argument("--p_ellipse", type=float, default=0.1)
    d.add_argument("--p_circle", type=float, default=0.1)
    d.add_argument("--p_random_brush", type=float, default=0.3)
    t = ap.add_argument_group("training")
    t.add_argument("--output_dir", required=True)
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--train_batch_size", type=int, default=1, help="per process")
    t.add_argument("--max_train_steps", type=int, help="default: from --num_train_epochs")
    t.add_argument("--num_train_epochs", type=int, default=10)
    t.add_argument("--checkpointing_steps", type=int)
    t.add_argument("--checkpoints_total_limit", type=int)
    t.add_argument("--resume_from_checkpoint", help="a checkpoint folder or 'latest'")
    t.add_argument("--mixed_precision", choices=("no", "bf16", "fp16"), default="no", help="the .sh files use bf16 on GPUs")
    t.add_argument("--gradient_checkpointing", action=argparse.BooleanOptionalAction, default=True)
    t.add_argument("--enable_tiling", action=argparse.BooleanOptionalAction, default=True)
    t.add_argument("--mask_add", action=argparse.BooleanOptionalAction, default=True)
    t.add_argument("--noised_image_dropout", type=float, default=0.05)
    t.add_argument("--inpainting_loss_weight", type=float, default=1.0)
    t.add_argument("--learning_rate", type=float)
    t.add_argument("--lr_scheduler", default="cosine_with_restarts")
    t.add_argument("--lr_warmup_steps", type=int)
    t.add_argument("--lr_num_cycles", type=int, default=1)
    t.add_argument("--lr_power", type=float, default=1.0)
    t.add_argument("--adam_beta1", type=float, default=0.9)
    t.add_argument("--adam_beta2", type=float, default=0.95)
    t.add_argument("--adam_epsilon", type=float, default=1e-8)
    t.add_argument("--adam_weight_decay", type=float, default=1e-4)
    t.add_argument("--max_grad_norm", type=float, default=1.0)
    v = ap.add_argument_group("validation renders (the reference's log_validation, through the pack's sampler)")
    v.add_argument("--validating_steps", type=int, help="render at step 1 and every N steps into "
                   "OUTPUT_DIR/validation/ (the .sh files: 256 / 128); default: no validation")
    v.add_argument("--num_validation_videos", type=int, default=1, help="renders per validation clip (seeds seed+i)")
    v.add_argument("--guidance_scale", type=float, default=6.0)
    v.add_argument("--use_dynamic_cfg", action="store_true")
    v.add_argument("--validation_inference_steps", type=int, default=50, help="sampler steps (the reference: 50)")
    v.add_argument("--val_meta_file_path", help="validation CSV (the reference's layout; videos under "
                   "--instance_data_root); renders its first two clips")
    v.add_argument("--val_data_folder", help="validation clips as a plain folder (like --data_folder)")
    v.add_argument("--val_cache_dir", help="prepared validation clips (default: OUTPUT_DIR/val_cache); without "
                   "--val_meta_file_path / --val_data_folder the first two training clips render")
    t.add_argument("--no_progress", action="store_true", help="no progress bar (the JSONL log is still written)")
    return ap


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from videopainter.vp_core.base.hostenv import ensure_comfy

    ensure_comfy()
    from videopainter.vp_core.training import data, optim, trainer, validation
    from videopainter.vp_core.training.mask_transforms import MaskAugment

    for k, v in TASK_DEFAULTS[args.task].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    out = Path(args.output_dir)
    cache = Path(args.cache_dir or out / "cache")
    aug = MaskAugment(args.mask_transform_prob, args.p_brush, args.p_rect, args.p_ellipse, args.p_circle, args.p_random_brush)
    aug.probabilities()  # checks the --p_* flags before anything is loaded
    dcfg = data.DataConfig(args.height, args.width, args.max_num_frames, args.first_frame_gt, args.mix_train_ratio,
                           aug, args.on_bad_row)
    acc = trainer.make_accelerator(args.mixed_precision)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if not (cache / data.INDEX).is_file():
            prepare(args, dcfg, cache, args.meta_file_path, args.data_folder)
    val_source = args.val_meta_file_path or args.val_data_folder
    val_cache = Path(args.val_cache_dir) if args.val_cache_dir else (out / "val_cache" if val_source else None)
    if acc.is_main_process and args.validating_steps and val_source and not (val_cache / data.INDEX).is_file():
        prepare(args, dcfg, val_cache, args.val_meta_file_path, args.val_data_folder)
    acc.wait_for_everyone()
    n_clips = len(data.ClipStore(cache))
    steps = args.max_train_steps or math.ceil(args.num_train_epochs * n_clips / (args.train_batch_size * acc.num_processes))
    ocfg = optim.OptimConfig(args.learning_rate, args.adam_beta1, args.adam_beta2, args.adam_epsilon,
                             args.adam_weight_decay, args.lr_scheduler, args.lr_warmup_steps, args.lr_num_cycles,
                             args.lr_power, args.max_grad_norm, steps)
    cfg = trainer.TrainConfig(
        args.task, args.pretrained_model_name_or_path, str(cache), str(out), args.cogvideox_branch_name_or_path,
        args.id_lora_path, args.branch_layer_num, args.rank, args.lora_alpha, args.train_batch_size, steps,
        args.checkpointing_steps, args.checkpoints_total_limit, args.resume_from_checkpoint, args.seed,
        args.mixed_precision, args.gradient_checkpointing, args.enable_tiling, args.mask_add,
        args.inpainting_loss_weight, args.noised_image_dropout, ocfg, dcfg,
        validation.ValidationConfig(args.validating_steps, args.num_validation_videos, args.guidance_scale,
                                    args.use_dynamic_cfg, args.validation_inference_steps,
                                    str(val_cache) if val_cache is not None else None))
    logs = trainer.Trainer(cfg, acc).train(progress=not args.no_progress)
    if logs and acc.is_main_process:
        log.info("done: %d steps, last loss %.5f; checkpoints in %s", len(logs), logs[-1]["loss"], out)
    return 0


def prepare(args, dcfg, cache, meta_file_path, data_folder) -> None:
    """Decode, check and resize the clips of the CSV or folder and embed their captions once into ``cache`` (T5 is
    loaded for this only)."""
    from videopainter.vp_core.checkpoints import text
    from videopainter.vp_core.checkpoints.loaders import read_json
    from pathlib import Path

    from videopainter.vp_core.training import data

    rows = data.load_rows(meta_file_path, args.instance_data_root, args.mask_root, data_folder)
    root = Path(args.pretrained_model_name_or_path)
    max_len = read_json(root / "transformer" / "config.json").get("max_text_seq_length", 226)
    clip = text.load_text_encoder(root)
    data.prepare_cache(rows, cache, dcfg, lambda caption: text.encode_prompt(clip, caption, max_len))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except ValueError as e:  # bad input (flags, data, checkpoints): one clear line, no traceback
        log.error("%s", e)
        log.debug("details", exc_info=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
