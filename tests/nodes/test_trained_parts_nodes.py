"""A branch and an ID LoRA trained by ``scripts/vp_train.py`` (a few steps on the demo checkpoints), copied where the
README says (``models/videopainter/<Name>/checkpoints/...``), are offered by the pack's loader nodes, load through
them unchanged, and change what the Sampler node makes."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import folder_paths
import pytest
import torch
from safetensors.torch import load_file

from videopainter.nodes import encode, loaders, paths, sampler

from vp_node_helpers import run

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT, FRAMES = 80, 96, 9
OFFICIAL_BRANCH = "VideoPainter/checkpoints/branch"
OFFICIAL_LORA = "videopainter/VideoPainterID/checkpoints/pytorch_lora_weights.safetensors"
MY_BRANCH = "MyBranch/checkpoints/branch"
MY_LORA = "videopainter/MyID/checkpoints/pytorch_lora_weights.safetensors"


def _train(task: str, demo: Path, data: Path, out: Path, steps: int) -> Path:
    """``vp_train.py TASK`` on the demo checkpoints; returns the final checkpoint folder."""
    root = demo / "videopainter"
    args = [task, "--pretrained_model_name_or_path", str(root / "CogVideoX-5b-I2V"),
            "--cogvideox_branch_name_or_path", str(root / OFFICIAL_BRANCH), "--data_folder", str(data),
            "--cache_dir", str(out.parent / "cache"), "--output_dir", str(out), "--width", str(WIDTH),
            "--height", str(HEIGHT), "--max_num_frames", str(FRAMES), "--max_train_steps", str(steps),
            "--learning_rate", "1e-3", "--lr_scheduler", "constant", "--lr_warmup_steps", "0",
            "--mask_transform_prob", "0", "--no-enable_tiling", "--no_progress", "--seed", "1"]
    if task == "id-lora":  # from the official (demo) LoRA, at its rank
        lora = root / "VideoPainterID" / "checkpoints" / "pytorch_lora_weights.safetensors"
        rank = next(v.shape[0] for k, v in load_file(str(lora)).items() if k.endswith("lora_A.weight"))
        args += ["--id_lora_path", str(lora), "--rank", str(rank)]
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "vp_train.py"), *args], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / f"checkpoint-{steps}"


@pytest.fixture(scope="module")
def trained(demo_models, tmp_path_factory):
    """Both parts trained, then copied into a models folder of their own registered as ``videopainter``."""
    import make_sample_clip

    work = tmp_path_factory.mktemp("trained")
    data = work / "footage"
    video, mask = make_sample_clip.sample_frames(FRAMES, WIDTH, HEIGHT)
    make_sample_clip.write_mp4(data / "shot01.mkv", video, 8, codec="ffv1")
    make_sample_clip.write_mp4(data / "shot01_mask.mkv", mask, 8, codec="ffv1")
    (data / "shot01.txt").write_text("a red ball rolls on the grass")
    branch_ckpt = _train("branch", demo_models, data, work / "run_branch", 3)
    lora_ckpt = _train("id-lora", demo_models, data, work / "run_id", 3)
    models = work / "models"
    shutil.copytree(branch_ckpt / "branch", models / MY_BRANCH)
    (models / "MyID" / "checkpoints").mkdir(parents=True)
    shutil.copy(lora_ckpt / "pytorch_lora_weights.safetensors", models / "MyID" / "checkpoints")
    folder_paths.add_model_folder_path(paths.FOLDER, str(models))
    yield models
    folder_paths.folder_names_and_paths[paths.FOLDER][0].remove(str(models))


@pytest.fixture(scope="module")
def inpaint(clip_tensors):
    video, mask = clip_tensors
    return run(encode.VideoPainterEncode, video=video[:FRAMES], mask=mask[:FRAMES], width=WIDTH, height=HEIGHT,
               source_fps=0.0)[0]


def _sample(loaded, model, inpaint) -> torch.Tensor:
    latent, _ = run(sampler.VideoPainterSampler, model=model, vae=loaded.vae, inpaint=inpaint, positive=loaded.positive,
                    negative=loaded.negative, seed=7, steps=2, window_frames=FRAMES, overlap_frames=1,
                    window_mode="fixed")
    return latent["samples"]


def _with_branch(loaded, branch_folder: str):
    (branch,) = run(loaders.VideoPainterBranchLoader, branch_folder=branch_folder, weight_dtype="fp32")
    (model,) = run(loaders.VideoPainterApplyBranch, model=loaded.model, branch=branch)
    return model, branch


def test_trained_branch_loads_through_the_nodes_and_changes_the_sampler_output(trained, loaded, inpaint):
    assert MY_BRANCH in paths.branch_folders()  # offered by the Branch Loader's list
    official_model, _ = _with_branch(loaded, OFFICIAL_BRANCH)
    mine_model, mine = _with_branch(loaded, MY_BRANCH)
    on_disk = load_file(str(trained / MY_BRANCH / "diffusion_pytorch_model.safetensors"))
    held = mine.model.branch.state_dict()
    assert all(torch.equal(held[k], on_disk[k]) for k in held)  # loaded unchanged
    a, b = _sample(loaded, official_model, inpaint), _sample(loaded, official_model, inpaint)
    assert torch.equal(a, b)  # the sampler is deterministic: a difference below is the weights'
    diff = float((_sample(loaded, mine_model, inpaint) - a).abs().max())
    print(f"trained branch vs official, Sampler node latents: max |diff| {diff:.3e}")
    assert diff > 1e-4


def test_trained_id_lora_loads_through_the_nodes_and_changes_the_sampler_output(trained, loaded, inpaint):
    assert MY_LORA in paths.lora_files()  # offered by the Apply ID LoRA node's list
    model, _ = _with_branch(loaded, OFFICIAL_BRANCH)
    (official,) = run(loaders.VideoPainterApplyIDLora, model=model, lora_name=OFFICIAL_LORA)
    (mine,) = run(loaders.VideoPainterApplyIDLora, model=model, lora_name=MY_LORA)
    assert len(mine.patches) == len(official.patches) > 0  # every official key matched a layer
    diff = float((_sample(loaded, mine, inpaint) - _sample(loaded, official, inpaint)).abs().max())
    print(f"trained ID LoRA vs official, Sampler node latents: max |diff| {diff:.3e}")
    assert diff > 1e-4
