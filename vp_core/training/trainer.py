"""The training loop on accelerate (DDP, or DeepSpeed ZeRO-2 with CPU offload from an accelerate config file, as the
reference's ``accelerate_config_machine_single_ds.yaml``), with exact resume.

Checkpoints (every ``checkpointing_steps`` and at the end) are folders ``output_dir/checkpoint-<step>/`` holding the
trained part in its OFFICIAL layout (``branch/config.json`` + ``branch/diffusion_pytorch_model.safetensors``, or
``pytorch_lora_weights.safetensors``) plus ``training_state.safetensors`` (optimizer moments, RNG) and
``training_state.json`` (step, scheduler, settings). Every file is written atomically and the folder is renamed into
place last, so a run killed at any moment leaves only complete checkpoints; ``--resume_from_checkpoint latest``
continues from the newest one and, because every random draw is a function of (seed, step, sample), reproduces the
uninterrupted run. Losses go to ``output_dir/loss_log.jsonl`` (one JSON object per step) and a tqdm bar (loss, lr,
step rate, ETA).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..base import atomic
from ..checkpoints import loaders
from ..checkpoints.vae import load_vae
from .data import ClipStore, DataConfig, clip_for, collate, make_sample, sample_seed
from .lora import TrainableLora
from .optim import OptimConfig, make_lr_scheduler, make_optimizer
from .parts import TrainableBranch, branch_from_transformer, load_trainable_branch, save_branch, save_lora
from .step import InpaintModel, StepNoise, draw_noise, encode_batch, forward_loss, training_scheduler
from .validation import ValidationConfig

log = logging.getLogger(__name__)
TASKS = ("branch", "id-lora")
STATE_JSON, STATE_TENSORS, LOSS_LOG = "training_state.json", "training_state.safetensors", "loss_log.jsonl"


@dataclass
class TrainConfig:
    task: str
    pretrained_model_name_or_path: str  # the CogVideoX-5b-I2V diffusers folder
    cache_dir: str  # the prepared clip cache (data.prepare_cache)
    output_dir: str
    branch_path: str | None = None  # branch to fine-tune (branch task) or the frozen branch (id-lora); None: from_transformer
    id_lora_path: str | None = None  # id-lora: start from this pytorch_lora_weights.safetensors
    branch_layer_num: int = 2
    rank: int = 256
    lora_alpha: float = 128
    train_batch_size: int = 1
    max_train_steps: int = 1000
    checkpointing_steps: int = 1024
    checkpoints_total_limit: int | None = None
    resume_from_checkpoint: str | None = None  # a checkpoint folder or "latest"
    seed: int = 42
    mixed_precision: str = "no"  # "bf16" as the .sh files on a GPU
    gradient_checkpointing: bool = True
    enable_tiling: bool = True
    mask_add: bool = True
    inpainting_loss_weight: float = 1.0
    noised_image_dropout: float = 0.05
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)


def _check(cfg: TrainConfig) -> None:
    if cfg.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {cfg.task!r}")
    if cfg.task == "id-lora" and not cfg.branch_path:
        raise ValueError("id-lora trains on top of a branch: pass --cogvideox_branch_name_or_path (VideoPainter/checkpoints/branch)")
    for name in ("train_batch_size", "max_train_steps", "checkpointing_steps"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name} must be >= 1; got {getattr(cfg, name)}")


def checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    out = Path(output_dir)
    found = [p for p in out.glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def make_accelerator(mixed_precision: str = "no"):
    """The run's ``Accelerator``: what ``accelerate launch`` (its config file, or torchrun's environment) asks for.

    On a machine without CUDA accelerate needs ``cpu=True`` for plain multi-process (gloo) training, but
    ``cpu=True`` also switches DeepSpeed off without a word (the run silently becomes DDP); and with ``cpu=False``
    it finds no GPU backend and counts every process as a world of one. So a DeepSpeed launch on CPU gets
    ``cpu=False`` plus the backend of DeepSpeed's CPU accelerator (gloo, or oneCCL where installed) named
    explicitly, which makes accelerate initialise the process group through DeepSpeed and count the world."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    if torch.cuda.is_available():
        return Accelerator(mixed_precision=mixed_precision)
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() != "true":
        return Accelerator(mixed_precision=mixed_precision, cpu=True)
    from deepspeed.accelerator import get_accelerator

    ds = get_accelerator()
    if ds.device_name() != "cpu":
        raise RuntimeError(f"DeepSpeed launch without CUDA: DeepSpeed picked the {ds.device_name()!r} accelerator; "
                           "set DS_ACCELERATOR=cpu to train on the CPU")
    return Accelerator(mixed_precision=mixed_precision,
                       kwargs_handlers=[InitProcessGroupKwargs(backend=ds.communication_backend_name())])


class Trainer:
    def __init__(self, cfg: TrainConfig, accelerator=None):
        _check(cfg)
        self.cfg = cfg
        self.acc = accelerator or make_accelerator(cfg.mixed_precision)
        dev = self.acc.device
        weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.mixed_precision, torch.float32)
        root = Path(cfg.pretrained_model_name_or_path)
        self.vae = load_vae(root, weight_dtype, load_device=dev, offload_device=dev)
        self.vae.model.enable_slicing()
        backbone = loaders.load_backbone(root, weight_dtype, load_device=dev, offload_device=dev)
        import comfy.model_management as mm

        mm.load_models_gpu([backbone], force_full_load=True)
        self._backbone = backbone  # keeps the patcher (and so the module) alive
        transformer = backbone.model.diffusion_model
        self.scheduler_config = loaders.load_scheduler_config(root)
        self.scheduler = training_scheduler(self.scheduler_config)
        self.lora: TrainableLora | None = None
        self.branch: TrainableBranch | None = None
        if cfg.task == "branch":
            self.branch = load_trainable_branch(cfg.branch_path) if cfg.branch_path else \
                branch_from_transformer(transformer, cfg.branch_layer_num)
            model = InpaintModel(transformer.eval(), self.branch.module, cfg.mask_add)
            self.named = dict(self.branch.module.named_parameters())
        else:
            frozen = loaders.load_branch(cfg.branch_path, weight_dtype, load_device=dev, offload_device=dev)
            mm.load_models_gpu([frozen], force_full_load=True)
            self._frozen_branch = frozen
            init = loaders.read_safetensors(cfg.id_lora_path) if cfg.id_lora_path else None
            self.lora = TrainableLora(transformer, cfg.rank, cfg.lora_alpha, init=init).to(dev)
            model = InpaintModel(transformer.train(), frozen.model.branch.eval(), cfg.mask_add, id_resample=True,
                                 lora=self.lora)
            self.named = self.lora.trainable()
        model.set_gradient_checkpointing(cfg.gradient_checkpointing)
        self.store = ClipStore(cfg.cache_dir)
        optimizer = make_optimizer(self.named.values(), cfg.optim)
        lr_scheduler = make_lr_scheduler(optimizer, cfg.optim, self.acc.num_processes)
        from accelerate.utils import DistributedType

        # Under DeepSpeed the engine owns the optimizer (DeepSpeedCPUAdam when the config offloads it), the clipping
        # (config gradient_clipping) and its state files (accelerate's save_state: DeepSpeed's own format).
        self.deepspeed = self.acc.distributed_type == DistributedType.DEEPSPEED
        if self.deepspeed:
            # the engine needs the per-process batch; accelerate reads it from a DataLoader, and this loop has none
            # (samples are drawn by (seed, step, index), see _batch)
            ds_config = self.acc.state.deepspeed_plugin.deepspeed_config
            ds_config["train_micro_batch_size_per_gpu"] = cfg.train_batch_size
            clip = ds_config.get("gradient_clipping", "auto")
            if clip == "auto":
                ds_config["gradient_clipping"] = cfg.optim.max_grad_norm
            elif float(clip) != cfg.optim.max_grad_norm:  # DeepSpeed clips with its config's value, not the flag
                raise ValueError(f"--max_grad_norm is {cfg.optim.max_grad_norm} but the DeepSpeed config's "
                                 f"gradient_clipping is {clip}: make them equal (or set gradient_clipping: auto)")
        self.model, self.optimizer, self.lr_scheduler = self.acc.prepare(model, optimizer, lr_scheduler)
        # DeepSpeed's bf16 casts the whole module (no autocast), so the step's inputs must be bf16 too, as the
        # reference's latents (weight_dtype); accelerate's own mixed precision autocasts fp32 inputs
        self.input_dtype = torch.bfloat16 if self.deepspeed and cfg.mixed_precision == "bf16" else torch.float32
        self.step = 0
        self.out = Path(cfg.output_dir)

    # ------------------------------------------------------------------------------------------ per step
    def _batch(self, step: int):
        """This process's share of the global batch of ``step`` and the step's random values."""
        cfg, b = self.cfg, self.cfg.train_batch_size
        world, rank = self.acc.num_processes, self.acc.process_index
        step_rng = np.random.default_rng(sample_seed(cfg.seed, step, 0, 0))  # stream 0: per step
        single = bool(step_rng.random() < cfg.data.mix_train_ratio)
        dropout = bool(step_rng.random() < cfg.noised_image_dropout)
        samples, noises = [], []
        for j in range(rank * b, (rank + 1) * b):
            k = step * world * b + j  # global sample index
            rng = np.random.default_rng(sample_seed(cfg.seed, step, k, 1))
            samples.append(make_sample(self.store, clip_for(cfg.seed, k, len(self.store)), rng, cfg.data, single))
            g = torch.Generator().manual_seed(sample_seed(cfg.seed, step, k, 2))
            one = collate(samples[-1:])
            noises.append(draw_noise(one, g, self.vae.model.config.latent_channels, self.vae.spatial_factor, 0.0,
                                     self.scheduler.config.num_train_timesteps))
        batch = collate(samples)
        noise = StepNoise(*(torch.cat([getattr(n, f) for n in noises]) for f in StepNoise.__dataclass_fields__
                            if f != "dropout"), dropout=dropout)
        return batch, noise

    def train_step(self, step: int) -> dict:
        cfg = self.cfg
        batch, rnd = self._batch(step)
        lat = encode_batch(self.vae, batch, rnd, cfg.enable_tiling).to(self.acc.device, self.input_dtype)
        with self.acc.autocast():
            res = forward_loss(self.model, self.scheduler, lat, rnd.noise, rnd.timesteps, cfg.inpainting_loss_weight)
        self.acc.backward(res.loss)
        norm = self.acc.clip_grad_norm_(list(self.named.values()), cfg.optim.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        terms = torch.stack([res.loss.detach(), res.loss_mse.detach(), res.inpainting_loss.detach()]).float()
        terms = self.acc.reduce(terms, "mean")
        return {"step": step + 1, "loss": float(terms[0]), "loss_mse": float(terms[1]),
                "inpainting_loss": float(terms[2]), "lr": float(self.lr_scheduler.get_last_lr()[0]),
                "grad_norm": None if norm is None else float(norm)}

    def train(self, progress: bool = True) -> list[dict]:
        from tqdm.auto import tqdm

        cfg = self.cfg
        if cfg.resume_from_checkpoint:
            self.resume(cfg.resume_from_checkpoint)
        logs = []
        bar = tqdm(total=cfg.max_train_steps, initial=self.step, desc=f"train {cfg.task}", unit="step",
                   disable=not (progress and self.acc.is_main_process))
        t0 = time.perf_counter()
        while self.step < cfg.max_train_steps:
            rec = self.train_step(self.step)
            self.step += 1
            rec["time_s"] = round(time.perf_counter() - t0, 3)
            logs.append(rec)
            if self.acc.is_main_process:
                with open(self.out / LOSS_LOG, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
            bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.2e}")
            bar.update(1)
            if self.step % cfg.checkpointing_steps == 0 or self.step == cfg.max_train_steps:
                self.save()
            if cfg.validation.due(self.step):
                self.validate()
        bar.close()
        return logs

    def validate(self) -> list[Path]:
        """Validation renders with the current weights (``validation.render``) on the main process."""
        from . import validation

        self.acc.wait_for_everyone()
        written = validation.render(self, self.cfg.validation, self.step) if self.acc.is_main_process else []
        self.acc.wait_for_everyone()
        return written

    # ------------------------------------------------------------------------------------------ checkpoints
    @property
    def part_dtype(self) -> torch.dtype:
        """The dtype of the saved branch / LoRA file: bf16 under ``--mixed_precision bf16`` (the official files are
        bf16: the reference saves the weights of its bf16 run), fp32 otherwise. When that rounds the fp32 master
        weights, the masters go to ``training_state.safetensors`` (``master.<name>``) so a resume is exact (under
        DeepSpeed the engine's state holds them)."""
        return torch.bfloat16 if self.cfg.mixed_precision == "bf16" else torch.float32

    def part_tensors(self) -> dict[str, torch.Tensor]:
        """The trained part as its official file holds it (keys, dtype)."""
        part = self.branch if self.branch is not None else self.lora
        return part.state_dict_official(self.part_dtype)

    def save(self) -> Path | None:
        """Write ``checkpoint-<step>`` (main process) and wait for it on every process."""
        final = self.out / f"checkpoint-{self.step}"
        partial = self.out / f".checkpoint-{self.step}.partial"
        self.acc.wait_for_everyone()
        if self.deepspeed:  # ZeRO partitions the optimizer over processes: every process writes its part
            if self.acc.is_main_process:
                shutil.rmtree(partial, ignore_errors=True)
            self.acc.wait_for_everyone()
            self.acc.save_state(str(partial / "engine"))
        if self.acc.is_main_process and not final.exists():
            if self.branch is not None:
                save_branch(self.branch, partial / "branch", self.part_dtype)
            else:
                save_lora(self.part_tensors(), partial)
            opt = {"state": {}, "param_groups": []} if self.deepspeed else self.optimizer.state_dict()
            tensors = {"rng.torch": torch.get_rng_state()}
            if not self.deepspeed and self.part_dtype != torch.float32:
                tensors.update({f"master.{k}": p.detach().cpu().float().contiguous() for k, p in self.named.items()})
            names = list(self.named)
            for idx, st in opt["state"].items():
                for key, val in st.items():
                    tensors[f"optim.{names[idx]}.{key}"] = torch.as_tensor(val).detach().cpu().contiguous()
            with atomic.atomic_path(partial / STATE_TENSORS) as tmp:
                save_file(tensors, str(tmp))
            sched = {} if self.deepspeed else \
                {k: v for k, v in self.lr_scheduler.scheduler.state_dict().items() if k != "lr_lambdas"}
            state = {"step": self.step, "task": self.cfg.task, "seed": self.cfg.seed,
                     "data_position": {"samples_seen": self.step * self.acc.num_processes * self.cfg.train_batch_size},
                     "param_groups": opt["param_groups"], "lr_scheduler": sched, "param_names": names,
                     "config": json.loads(json.dumps(asdict(self.cfg), default=str))}
            atomic.write_text(partial / STATE_JSON, json.dumps(state, indent=1))
            os.replace(partial, final)
            log.info("saved %s", final)
            self._prune()
        self.acc.wait_for_everyone()
        return final

    def _prune(self) -> None:
        limit = self.cfg.checkpoints_total_limit
        if limit:
            for old in checkpoints(self.out)[:-limit]:
                shutil.rmtree(old, ignore_errors=True)

    def resume(self, which: str) -> None:
        if which == "latest":
            found = checkpoints(self.out)
            if not found:
                log.info("no checkpoint in %s: starting from step 0", self.out)
                return
            path = found[-1]
        else:
            path = Path(which)
        state_path = path / STATE_JSON
        if not state_path.is_file():
            raise ValueError(f"--resume_from_checkpoint {path}: not a checkpoint folder (no {STATE_JSON})")
        state = json.loads(state_path.read_text())
        if state["task"] != self.cfg.task:
            raise ValueError(f"--resume_from_checkpoint {path}: a {state['task']} checkpoint, this run trains {self.cfg.task}")
        part = load_file(str(path / "branch" / loaders.WEIGHTS_NAME)) if self.branch is not None else \
            load_file(str(path / "pytorch_lora_weights.safetensors"))
        tensors = load_file(str(path / STATE_TENSORS))
        with torch.no_grad():
            for k, p in self.named.items():
                p.copy_(tensors.get(f"master.{k}", part[k]).to(p.dtype))
            if self.branch is not None:
                self.branch.unused.update({k: v.float() for k, v in part.items() if k not in self.named})
        torch.set_rng_state(tensors["rng.torch"])
        self.step = int(state["step"])
        if self.acc.is_main_process:  # the log keeps the steps up to the checkpoint (a killed run wrote more)
            log_path = self.out / LOSS_LOG
            if log_path.is_file():
                lines = [ln for ln in log_path.read_text().splitlines() if ln and json.loads(ln)["step"] <= self.step]
                atomic.write_text(log_path, "".join(ln + "\n" for ln in lines))
        if self.deepspeed:  # the engine's files: module, fp32 master partitions, moments, scheduler, RNG
            self.acc.load_state(str(path / "engine"))
            log.info("resumed from %s at step %d (DeepSpeed state)", path, self.step)
            return
        names = state["param_names"]
        opt_state = {}
        for idx, name in enumerate(names):
            keys = {k[len(f"optim.{name}."):]: v for k, v in tensors.items() if k.startswith(f"optim.{name}.")}
            if keys:
                opt_state[idx] = keys
        self.optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
        # the schedule's lambdas are code (rebuilt from the flags); only their count is in the state
        self.lr_scheduler.scheduler.load_state_dict(dict(state["lr_scheduler"], lr_lambdas=[None] * len(state["param_groups"])))
        log.info("resumed from %s at step %d", path, self.step)


def train(cfg: TrainConfig, progress: bool = True) -> list[dict]:
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    return Trainer(cfg).train(progress)
