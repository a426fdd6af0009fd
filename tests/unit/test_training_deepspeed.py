"""DeepSpeed ZeRO-2 with CPU offload (``scripts/accelerate/zero2_offload.yaml``, the reference's config) run for real
on the CPU: ``accelerate launch`` with 2 processes, DeepSpeed's CPU accelerator (gloo), DeepSpeedCPUAdam (a C++ op
DeepSpeed builds with the system compiler at first use, into ``~/.cache/torch_extensions``, ~1 min once).

- fp32 (``--mixed_precision no``): 2 processes of 1 sample equal 1 plain process with batch 2, the lr warm-up
  included (the schedule must reach DeepSpeed's optimizer), within 1e-5;
- bf16 (the config as shipped), ID LoRA: a run resumed from a mid-run checkpoint (accelerate's ``save_state`` /
  ``load_state``: DeepSpeed's engine files) ends with the same weights and losses as the uninterrupted run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import training_setup as ts

pytestmark = pytest.mark.slow
SCRIPT = str(ts.REPO / "scripts" / "vp_train.py")
ZERO2 = str(ts.REPO / "scripts" / "accelerate" / "zero2_offload.yaml")

if shutil.which("c++") is None and shutil.which("g++") is None:
    pytest.skip("no C++ compiler (c++ / g++) on PATH: DeepSpeed builds its CPUAdam and shared-memory ops with it at "
                "first use; bash scripts/quickstart.sh --install-only installs g++ (apt, as root)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    s = ts.make_setup(tmp_path_factory.mktemp("train"), clips=2)
    s["cache"] = s["root"] / "cache"
    return s


def _launch(args: list[str], port: int, *launch_flags: str) -> subprocess.CompletedProcess:
    """``accelerate launch --config_file zero2_offload.yaml --num_processes 2`` on the CPU (CUDA hidden)."""
    env = dict(os.environ, PYTHONPATH=str(ts.REPO / "scripts"), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", ZERO2, "--num_processes", "2",
         "--main_process_port", str(port), *launch_flags, SCRIPT, *args],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _ran_under_zero2(checkpoint) -> None:
    """DeepSpeed really ran, ZeRO partitioning over 2 processes (a silent fall-back to DDP writes no engine state)."""
    engine = checkpoint / "engine" / "pytorch_model"
    assert engine.is_dir(), f"no DeepSpeed engine state in {checkpoint}"
    parts = sorted(p.name for p in engine.glob("*zero_pp_rank_*_optim_states.pt"))
    assert len(parts) == 2 and "zero_pp_rank_1" in parts[1], parts
    state = json.loads((checkpoint / "training_state.json").read_text())
    assert state["data_position"]["samples_seen"] == 2 * state["step"]


def _log(out) -> list[dict]:
    return [{k: v for k, v in json.loads(ln).items() if k != "time_s"}
            for ln in (out / "loss_log.jsonl").read_text().splitlines()]


def test_zero2_offload_two_processes_equal_one_process(setup, tmp_path):
    """Tolerance 1e-5 (fp32), as the DDP test: ZeRO-2 reduce-scatters the gradients in its own flat buckets (another
    summation order than one process's batch of 2) and DeepSpeedCPUAdam is a vectorised C++ AdamW (fused
    multiply-adds), so the two differ by rounding; Adam's epsilon is 1e-4 so that rounding on near-zero gradients is
    not normalised up to lr-sized steps. 1.8e-7 was seen after 2 steps."""
    steps = 3
    common = dict(cache_dir=setup["cache"], adam_epsilon=1e-4, lr_scheduler="cosine_with_restarts", lr_warmup_steps=2)
    one, two = tmp_path / "one", tmp_path / "zero2"
    ts.run_cli(ts.cli_args(setup, "branch", one, steps, train_batch_size=2, **common))
    _launch(ts.cli_args(setup, "branch", two, steps, train_batch_size=1, **common), 29581, "--mixed_precision", "no")
    _ran_under_zero2(two / f"checkpoint-{steps}")
    name = "branch/diffusion_pytorch_model.safetensors"
    a, b = load_file(str(one / f"checkpoint-{steps}" / name)), load_file(str(two / f"checkpoint-{steps}" / name))
    assert all(v.dtype == torch.float32 for v in b.values())
    diff = ts.max_diff(a, b)
    print(f"ZeRO-2 offload, 2 processes vs 1 process, global batch 2, {steps} steps: max |diff| {diff:.3e}")
    assert diff <= 1e-5
    assert ts.max_diff(a, load_file(str(setup["branch"] / "diffusion_pytorch_model.safetensors"))) > 1e-4  # trained
    log_one, log_two = _log(one), _log(two)
    # the log's lr is the scheduler's after the step (the next step's, as the reference logs it): steps ran at
    # 0, 5e-4, 1e-3 (warm-up of 2, then the cosine's 3-step cycle ends at 0)
    assert [r["lr"] for r in log_two] == [r["lr"] for r in log_one] == pytest.approx([5e-4, 1e-3, 0.0])
    assert [r["loss"] for r in log_two] == pytest.approx([r["loss"] for r in log_one], rel=1e-4)


def test_zero2_offload_bf16_resume_equals_an_uninterrupted_run(setup, tmp_path):
    """The shipped config (bf16) on the ID LoRA; the resumed run starts in new processes from checkpoint-2, which
    accelerate's save_state wrote mid-run (the module, the fp32 master partitions, the moments, the schedule, the
    RNG of each process). Without load_state the moments restart: 3.9e-3 apart on the branch task."""
    steps = 3
    common = dict(cache_dir=setup["cache"], checkpointing_steps=1, id_lora_path=setup["lora"], mixed_precision="bf16")
    full = tmp_path / "full"
    _launch(ts.cli_args(setup, "id-lora", full, steps, **common), 29582)
    _ran_under_zero2(full / "checkpoint-2")
    resumed = tmp_path / "resumed"
    shutil.copytree(full, resumed)
    shutil.rmtree(resumed / f"checkpoint-{steps}")  # as if the run had died after checkpoint-2 (the log ran on)
    proc = _launch(ts.cli_args(setup, "id-lora", resumed, steps, resume_from_checkpoint="latest", **common), 29583)
    assert "resumed from" in proc.stderr and "at step 2 (DeepSpeed state)" in proc.stderr
    name = "pytorch_lora_weights.safetensors"
    a, b = load_file(str(full / f"checkpoint-{steps}" / name)), load_file(str(resumed / f"checkpoint-{steps}" / name))
    diff = ts.max_diff(a, b)
    print(f"ZeRO-2 offload bf16, resumed at step 2 vs uninterrupted, {steps} steps: max |diff| {diff:.3e}")
    assert diff <= 1e-6
    start = load_file(str(setup["lora"]))
    assert set(a) == set(start) and all(v.dtype == torch.bfloat16 for v in a.values())  # the official files' dtype
    assert ts.max_diff(a, start) > 1e-4  # it did train
    assert _log(resumed) == _log(full)
    from videopainter.vp_core.checkpoints import loaders

    backbone = loaders.load_backbone(setup["backbone"], torch.float32)
    patches = loaders.load_lora(full / f"checkpoint-{steps}" / name, backbone)
    assert len(patches.patches) == 16 and not patches.unmatched
