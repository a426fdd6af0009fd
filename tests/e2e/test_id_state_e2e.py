"""ID state through the real server: a clip done in two chained parts gives exactly the latents of one run, and a
saved state resumes a part exactly."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from videopainter.vp_headless import comfy_client as cc

REPO = Path(__file__).resolve().parents[2]
PARTS = REPO / "workflows" / "api" / "videopainter_long_video_parts.json"
SINGLE = REPO / "workflows" / "api" / "videopainter_inpaint.json"


def _latent(server, result, tmp_path: Path, node: str) -> torch.Tensor:
    files = [f for f in cc.collect_outputs(server, result.history, tmp_path) if f.suffix == ".latent"]
    assert len(files) == 1, files
    return load_file(str(files[0]))["latent_tensor"]


# Crop to the mask (issue 25): the sample clip's square with little dilation and context fits a box smaller than the
# frame, so the encoder really crops (a box following the square), and the same checks must hold.
CROP = {"crop_mode": "crop follow", "dilate": 2, "context_factor": 1.0, "context_pixels": 2}


def _encoded_as(prompt: dict, geometry: dict) -> dict:
    """``prompt`` with ``geometry`` set on its encoder(s) (inputs the shipped workflows leave at their defaults)."""
    for node in prompt.values():
        if node["class_type"] == "VideoPainterEncode":
            node["inputs"].update(geometry)
    return prompt


@pytest.fixture(scope="module", params=["full_frame", "crop_follow"])
def geometry(request) -> dict:
    return CROP if request.param == "crop_follow" else {}


@pytest.fixture(scope="module")
def parts_prompt(geometry) -> dict:
    return _encoded_as(cc.apply_overrides(cc.load_workflow(PARTS), cc.demo_sets(PARTS)), geometry)


def _single_prompt(parts: dict, geometry: dict) -> dict:
    """The one-run equivalent: the inpaint workflow's sampler, same settings as the parts, its latent saved."""
    single = _encoded_as(cc.apply_overrides(cc.load_workflow(SINGLE), cc.demo_sets(SINGLE)), geometry)
    for key in ("17", "18", "20"):
        del single[key]
    single["16"]["inputs"]["steps"] = parts["16"]["inputs"]["steps"]
    single["31"] = {"class_type": "SaveLatent", "inputs": {"samples": ["16", 0], "filename_prefix": "videopainter/single"}}
    return single


def test_two_parts_equal_one_run(server, parts_prompt, geometry, tmp_path):
    log_start = server.log_path.stat().st_size
    parts = cc.submit(server, parts_prompt)
    assert parts.ok, parts.error
    if geometry:  # the encoder really cropped (no fall-back to the whole frame)
        assert "crop to the mask (crop follow): box 35x42 (WxH) of the 96x80 source" in \
            server.log_path.read_text(errors="replace")[log_start:]
    joined = _latent(server, parts, tmp_path / "parts", "31")
    single = cc.submit(server, _single_prompt(parts_prompt, geometry))
    assert single.ok, single.error
    one = _latent(server, single, tmp_path / "single", "31")
    assert joined.shape == one.shape == (1, 16, 13, 12, 10)
    assert torch.equal(joined, one)


def test_saved_state_resumes_part_two_exactly(server, parts_prompt, tmp_path):
    first = cc.submit(server, parts_prompt)
    assert first.ok, first.error
    state_files = [f for f in cc.collect_outputs(server, first.history, tmp_path / "a") if f.suffix == ".safetensors"]
    joined = _latent(server, first, tmp_path / "b", "31")
    assert len(state_files) == 1
    cc.upload_input(server, "vp_state.safetensors", state_files[0])
    # queue run 2: part 2 alone, from the saved state (as after an interrupt or in another session)
    resumed = copy.deepcopy(parts_prompt)
    resumed["40"] = {"class_type": "VideoPainterLoadIDState", "inputs": {"state_file": "vp_state.safetensors"}}
    resumed["28"]["inputs"]["id_state"] = ["40", 0]
    for key in ("16", "29", "30", "17", "20"):
        del resumed[key]
    resumed["31"]["inputs"]["samples"] = ["28", 0]
    result = cc.submit(server, resumed)
    assert result.ok, result.error
    part2 = _latent(server, result, tmp_path / "c", "31")
    assert torch.equal(part2[:, :, 1:], joined[:, :, 9:])  # the latents after the one part 2 shares with part 1


def _latent_only(prompt: dict, steps: int) -> dict:
    """The inpaint workflow up to the sampler, with its latent saved (decode/composite/video dropped)."""
    out = copy.deepcopy(prompt)
    for key in ("17", "18", "20"):
        del out[key]
    out["16"]["inputs"]["steps"] = steps
    out["31"] = {"class_type": "SaveLatent", "inputs": {"samples": ["16", 0], "filename_prefix": "videopainter/resume"}}
    return out


def test_interrupted_run_resumes_from_autosave(server, geometry, tmp_path):
    steps = 2
    base = _latent_only(_encoded_as(cc.apply_overrides(cc.load_workflow(SINGLE), cc.demo_sets(SINGLE)), geometry), steps)
    base["16"]["inputs"]["seed"] = 7  # not cached by the other tests
    reference = cc.submit(server, base)
    assert reference.ok, reference.error
    want = _latent(server, reference, tmp_path / "ref", "31")

    run = copy.deepcopy(base)
    run["16"]["inputs"]["autosave_name"] = f"e2e_resume{len(geometry)}"
    run["16"]["inputs"]["steps"] = steps  # same settings; the autosave name changes the prompt, so it really runs

    def on_progress(p):
        if p.kind == "progress" and p.node_id == "16" and p.value > steps:  # window 1 has started
            cc.interrupt(server)

    interrupted = cc.submit(server, run, on_progress=on_progress)
    assert interrupted.status == "interrupted"
    name = f"e2e_resume{len(geometry)}.safetensors"
    ckpt = server.output_dir / "videopainter" / "autosave" / name
    assert ckpt.is_file()
    cc.upload_input(server, name, ckpt)
    resume = copy.deepcopy(base)
    resume["40"] = {"class_type": "VideoPainterLoadIDState", "inputs": {"state_file": name}}
    resume["16"]["inputs"]["id_state"] = ["40", 0]
    resumed = cc.submit(server, resume)
    assert resumed.ok, resumed.error
    assert torch.equal(_latent(server, resumed, tmp_path / "resumed", "31"), want)
