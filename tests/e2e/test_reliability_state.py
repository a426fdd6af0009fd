"""Reliability matrix, issue #16, through the real server: ID-state files that are not usable, chained states that do
not fit the run, NaN weights, a kill -9 during an autosave write, and the cheap checks of names and window lists.

Messages come from ``tests/reliability_cases.py`` (the README table); the prompts are the ones of
``test_reliability.py`` (the inpaint workflow at the demo size, 1 step, short clips).
"""
from __future__ import annotations

import os
import pickle
import shutil
import signal
import time
import uuid
from pathlib import Path

import pytest
import requests
import torch
from safetensors.torch import load_file, save_file

from videopainter.vp_headless import comfy_client as cc
from reliability_cases import message as msg
from reliability_cases import HOST_CHECKS_COMBOS
from test_reliability import clip, completes, fails, host_version, node, refused

REPO = Path(__file__).resolve().parents[2]
PARTS = REPO / "workflows" / "api" / "videopainter_long_video_parts.json"
SINGLE = REPO / "workflows" / "api" / "videopainter_inpaint.json"
HOOK = Path(__file__).resolve().parent / "hooks" / "slow_autosave"

pytestmark = pytest.mark.e2e


def load_state_prompt(state_file: str) -> dict:
    return {"1": {"class_type": "VideoPainterLoadIDState", "inputs": {"state_file": state_file}},
            "2": {"class_type": "VideoPainterSaveIDState", "inputs": {"id_state": ["1", 0], "filename_prefix": "e2e_copy"}}}


def small_state():
    """A well-formed ID state of the demo model's shapes (4 blocks, 2 heads x 16, 5 latents of 12x10)."""
    from videopainter.vp_core.pipeline.id_state import IDState

    return IDState(hidden=[torch.randn(2, 6, 32) for _ in range(4)], token_index=torch.arange(6),
                   token_mask=torch.zeros(2, 150, dtype=torch.bool), prev_latents=torch.randn(1, 5, 16, 12, 10),
                   window_index=0, rng_state=torch.Generator().get_state())


# ------------------------------------------------------------------------------------------------ 16.1 state files


def test_16_1_a_file_that_is_not_safetensors_as_the_id_state(server, tmp_path):
    bad = tmp_path / "e2e_not_a_state.safetensors"
    bad.write_bytes(pickle.dumps({"not": "a state"}))
    cc.upload_input(server, bad.name, bad)
    got = fails(server, load_state_prompt(bad.name), "VideoPainterLoadIDState")
    assert got == msg("state_not_safetensors", input=server.input_dir)


def test_16_1_an_id_state_file_missing_a_tensor(server, tmp_path):
    from videopainter.vp_core.pipeline import id_state_io

    path = id_state_io.save_state(small_state(), tmp_path / "full.safetensors")
    tensors = load_file(str(path))
    del tensors["hidden.1"]
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    broken = tmp_path / "e2e_broken_state.safetensors"
    save_file(tensors, str(broken), metadata=meta)
    cc.upload_input(server, broken.name, broken)
    got = fails(server, load_state_prompt(broken.name), "VideoPainterLoadIDState")
    assert got == msg("state_missing_tensor", input=server.input_dir)


# ------------------------------------------------------------------------------------------------ 16.2 fit


def part2_encoded_separately(parts: dict) -> dict:
    """The parts workflow with part 2 cut from an encoder of its own (titled ``encode_part2``, a copy of ``encode``),
    so part 2 can have other encode settings than part 1 (the streamed workflow cuts both from one encoded clip)."""
    parts = {k: {**v, "inputs": dict(v["inputs"])} for k, v in parts.items()}
    encode = cc.find_node(parts, "encode")
    parts["90"] = {**parts[encode], "inputs": dict(parts[encode]["inputs"]), "_meta": {"title": "encode_part2"}}
    node(parts, "part2")["inputs"]["inpaint"] = ["90", 0]
    return parts


@pytest.mark.parametrize("change, key", [({"encode_part2.width": 64}, "state_other_size"),
                                         ({"sampler_part2.cfg": 1.0}, "state_other_cfg")])
def test_16_2_a_chained_state_that_does_not_fit_is_refused_before_any_step(server, change, key):
    """Part 2 continues part 1's ID state but runs at another working size (part 2 encoded separately, at 64x96
    instead of 80x96) or with another cfg: the sampler refuses the state, naming the difference, before any step."""
    parts = part2_encoded_separately(cc.load_workflow(PARTS))
    parts = cc.apply_overrides(parts, {**cc.demo_sets(PARTS), "encode_part2.width": 80, "encode_part2.height": 96,
                                       **change, "sampler_part1.steps": 1, "sampler_part2.steps": 1})
    steps_of_part2 = []

    def on_progress(p: cc.Progress) -> None:
        if p.kind == "progress" and p.node_id == cc.find_node(parts, "sampler_part2"):
            steps_of_part2.append(p.value)

    result = cc.submit(server, parts, on_progress=on_progress, timeout=600)
    assert result.status == "error" and result.error.node_type == "VideoPainterSampler", result.status
    assert result.error.node_id == cc.find_node(parts, "sampler_part2")
    assert result.error.exception_message.strip() == msg(key)
    assert steps_of_part2 == [], "part 2 ran steps before refusing the state"


# ------------------------------------------------------------------------------------------------ 16.3 NaN


@pytest.fixture(scope="module")
def nan_branch(models_dir: Path):
    src = models_dir / "videopainter" / "VideoPainter" / "checkpoints" / "branch"
    dst = models_dir / "videopainter" / "e2e_nan" / "branch"
    shutil.rmtree(dst.parent, ignore_errors=True)
    shutil.copytree(src, dst)
    weights = dst / "diffusion_pytorch_model.safetensors"
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
               for k, v in load_file(str(weights)).items()}, str(weights))
    yield "e2e_nan/branch"
    shutil.rmtree(dst.parent, ignore_errors=True)


def test_16_3_a_branch_with_nan_weights_fails_clearly_instead_of_black_frames(server, nan_branch):
    # 2 frames (1 window, 1 step); dilate 29 so the sampler really runs (not a cached result of another test)
    p = clip(2, **{"branch.branch_folder": nan_branch, "encode.dilate": 29})
    assert fails(server, p, "VideoPainterSampler") == msg("nan_branch")


# ------------------------------------------------------------------------------------------------ 16.6 kill -9


# Crop follow on the 96x80 sample clip: a small dilation and margin, so the box (35x42) is smaller than the frame.
CROP_FOLLOW = {"encode.crop_mode": "crop follow", "encode.dilate": 2, "encode.context_factor": 1.0,
               "encode.context_pixels": 2}


def _latent_prompt(seed: int, autosave: str = "", crop: bool = False) -> dict:
    """The inpaint workflow up to the sampler (3 windows of the 49-frame sample clip, 1 step), its latent saved;
    ``crop``: the encoder in crop follow (the model sees a box of the frame)."""
    p = cc.apply_overrides(cc.load_workflow(SINGLE), {**cc.demo_sets(SINGLE), "sampler.steps": 1, "seed.value": seed,
                                                       "sampler.autosave_name": autosave, **(CROP_FOLLOW if crop else {})})
    for title in ("decode", "composite", "save", "mask_preview_image", "mask_preview"):
        for nid in [k for k, v in p.items() if v.get("_meta", {}).get("title") == title]:
            del p[nid]
    p["31"] = {"class_type": "SaveLatent", "inputs": {"samples": [cc.find_node(p, "sampler"), 0],
                                                      "filename_prefix": "videopainter/kill"}}
    return p


def _saved_latent(server: cc.ServerHandle, result: cc.RunResult, dest: Path) -> torch.Tensor:
    files = [f for f in cc.collect_outputs(server, result.history, dest) if f.suffix == ".latent"]
    assert len(files) == 1, files
    return load_file(str(files[0]))["latent_tensor"]


@pytest.mark.parametrize("crop", [False, True], ids=["full_frame", "crop_follow"])
def test_16_6_kill_during_an_autosave_write_leaves_a_checkpoint_that_resumes_exactly(
        server, models_dir, sample_clip, tmp_path, monkeypatch, crop):
    from videopainter.vp_core.pipeline import id_state_io

    seed, name = 1234, "e2e_kill_crop" if crop else "e2e_kill"
    log_start = len(server.log_path.read_text(errors="replace"))
    want = _saved_latent(server, completes(server, _latent_prompt(seed, crop=crop)), tmp_path / "want")
    if crop:  # the encoder really cropped (no fall-back to the whole frame)
        log = server.log_path.read_text(errors="replace")[log_start:]
        assert "crop to the mask (crop follow): box 35x42 (WxH) of the 96x80 source" in log, log[-2000:]

    marker = tmp_path / "half_written"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("VP_TEST_SLOW_SAVE_MATCH", name)
    monkeypatch.setenv("VP_TEST_SLOW_SAVE_CALL", "2")  # the checkpoint after window 1 (the first one is kept)
    monkeypatch.setenv("VP_TEST_SLOW_SAVE_MARKER", str(marker))
    victim = cc.start_server(tmp_path / "victim", models_dir=models_dir)
    try:
        for clip_name, path in sample_clip.items():
            cc.upload_input(victim, clip_name, path)
        r = requests.post(victim.url + "/prompt", timeout=30,
                          json={"prompt": _latent_prompt(seed, name, crop), "client_id": uuid.uuid4().hex})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 300
        while not marker.exists() and victim.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), f"the second autosave write never started; log tail:\n{victim.log_tail()}"
        os.kill(victim.process.pid, signal.SIGKILL)  # in the middle of writing the checkpoint
        victim.process.wait(30)
    finally:
        victim.stop()
    ckpt = victim.output_dir / "videopainter" / "autosave" / f"{name}.safetensors"
    assert ckpt.is_file(), "the first checkpoint is gone"
    killed = list(ckpt.parent.glob(f".{ckpt.name}.*.tmp"))
    assert len(killed) == 1, killed  # the killed write went to a temporary name (removed by a later write once stale)
    state = id_state_io.load_state(ckpt)  # loadable: the write in progress did not touch it
    assert state.resume_window == 1

    cc.upload_input(server, f"{name}.safetensors", ckpt)
    resume = _latent_prompt(seed, crop=crop)
    resume["40"] = {"class_type": "VideoPainterLoadIDState", "inputs": {"state_file": f"{name}.safetensors"}}
    node(resume, "sampler")["inputs"]["id_state"] = ["40", 0]
    got = _saved_latent(server, completes(server, resume), tmp_path / "resumed")
    assert torch.equal(got, want)


# ------------------------------------------------------------------------------------------------ 16.9 cheap checks


def test_16_9_a_drive_relative_autosave_name_is_refused_before_running(server):
    e = refused(server, clip(1, **{"sampler.autosave_name": "C:x"}))
    assert f"input 'autosave_name': Custom validation failed for node: autosave_name - {msg('autosave_name_drive')}" in str(e)


def test_16_9_reset_windows_that_are_not_numbers_are_refused_before_running(server):
    e = refused(server, clip(1, **{"sampler.id_reset_windows": "two"}))
    assert f"id_reset_windows - {msg('reset_windows_text')}" in str(e)


def test_16_9_reset_windows_outside_the_plan_fail_before_sampling(server):
    p = clip(33, **{"sampler.id_reset_windows": "5"})  # 33 frames: 2 windows of 17
    assert fails(server, p, "VideoPainterSampler") == msg("reset_windows_range")


@pytest.mark.parametrize("name", ["C:x", "C:\\x", "\\\\server\\share", "..\\x"])
def test_16_9_windows_style_state_names_are_refused_before_running(server, name):
    e = refused(server, load_state_prompt(name))
    assert f"state_file - state_file: {name!r} is outside the input folder" in str(e)
    if name == "C:x":
        assert msg("traversal_windows") in str(e)


def test_16_9_windows_style_model_names_are_refused(server):
    p = clip(1, **{"branch.branch_folder": "C:\\x"})
    if host_version(server) >= HOST_CHECKS_COMBOS:  # the host refuses a value its combo does not list, before running
        e = refused(server, p)
        assert "input 'branch_folder': Value not in list: branch_folder: 'C:\\\\x' not in" in str(e), str(e)
    else:
        assert fails(server, p, "VideoPainterBranchLoader").startswith("'C:\\\\x': only names listed under models/videopainter")
