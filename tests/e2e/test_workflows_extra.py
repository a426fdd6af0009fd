"""The editing, style-LoRA and FLUX-Fill example workflows and the pack's web files, through the real server.

Every ``workflows/api/*.json`` runs once, in ``test_host.py`` (with ``demo_prompt`` below); the checks here are
static or use core nodes only, so they add no model run to the shared server.

FLUX Fill: core's FLUX loaders cannot take tiny random weights. UNETLoader detects FLUX by shape, but the head
count (24) and RoPE axes (16+56+56) are fixed, so hidden_size must be 3072 (about 400M parameters for one block),
and DualCLIPLoader type ``flux`` always builds the full 4.7B-parameter T5-XXL from ComfyUI's own config. So the
e2e run replaces the FLUX half by a provided first frame: the node titled ``first_frame`` (FLUX's VAEDecode)
becomes a LoadImage with the same id and title. The FLUX nodes are then not reachable from any output, so ComfyUI
neither validates nor runs them. With the FLUX models installed the workflow runs as shipped.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import requests
from PIL import Image

import comfy_client as cc
import make_sample_clip

REPO = Path(__file__).resolve().parents[2]
API = REPO / "workflows" / "api"
EDIT = API / "videopainter_edit.json"
STYLE = API / "videopainter_style_lora.json"
FLUX = API / "videopainter_flux_fill_first_frame.json"
FIRST_FRAME = "vp_sample_first_frame.png"

pytestmark = pytest.mark.e2e


# ------------------------------------------------------------------------------------------ the demo prompts


def provided_first_frame(path: Path) -> Path:
    """Frame 0 of the sample clip with its hole painted flat grey: what FLUX Fill would hand to the video model."""
    video, mask = make_sample_clip.sample_frames()
    frame = video[0].copy()
    frame[mask[0] > 127] = (128, 128, 128)
    Image.fromarray(frame).save(path)
    return path


def flux_half_replaced(prompt: dict, image_name: str = FIRST_FRAME) -> dict:
    """``prompt`` with the node titled ``first_frame`` (FLUX Fill's VAEDecode) replaced by a LoadImage of
    ``image_name`` under the same id and title; the FLUX nodes stay in the prompt but no output reaches them."""
    nid = cc.find_node(prompt, "first_frame")
    assert prompt[nid]["class_type"] == "VAEDecode", prompt[nid]
    return cc.replace_first_frame(prompt, image_name)


def demo_prompt(server: cc.ServerHandle, path: Path, tmp_dir: Path) -> dict:
    """The API workflow at ``path`` with its demo-size overrides, runnable with the tiny demo weights."""
    prompt = cc.apply_overrides(cc.load_workflow(path), cc.demo_sets(path))
    if path.name == FLUX.name:
        cc.upload_input(server, FIRST_FRAME, provided_first_frame(tmp_dir / FIRST_FRAME))
        prompt = flux_half_replaced(prompt)
    return prompt


def reachable(prompt: dict, object_info: dict) -> set[str]:
    """Ids of the nodes ComfyUI validates and runs: the output nodes and everything they read from."""

    def ancestors(nid: str, seen: set[str]) -> set[str]:
        if nid not in seen:
            seen.add(nid)
            for value in prompt[nid]["inputs"].values():
                if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                    ancestors(value[0], seen)
        return seen

    seen: set[str] = set()
    for nid, node in prompt.items():
        if object_info[node["class_type"]]["output_node"]:
            ancestors(nid, seen)
    return seen


# ------------------------------------------------------------------------------------------ web files


def test_web_files_are_served(server):
    for rel in ("js/videopainter.js", "docs/VideoPainterSampler.md", "docs/VideoPainterMaskCheck.md"):
        r = requests.get(f"{server.url}/extensions/videopainter/{rel}", timeout=10)
        assert r.status_code == 200, (rel, r.status_code)
        assert r.content == (REPO / "web" / rel).read_bytes(), rel
    # the front end loads every .js the server lists here
    listed = requests.get(f"{server.url}/extensions", timeout=10).json()
    assert "/extensions/videopainter/js/videopainter.js" in listed, listed
    assert requests.get(f"{server.url}/extensions/videopainter/docs/NoSuchNode.md", timeout=10).status_code == 404


# ------------------------------------------------------------------------------------------ workflows


def test_edit_workflow_has_no_id_lora_and_dilates_48():
    prompt = cc.load_workflow(EDIT)
    classes = {n["class_type"] for n in prompt.values()}
    assert "VideoPainterApplyIDLora" not in classes  # edit.sh loads none
    encode = prompt[cc.find_node(prompt, "encode")]["inputs"]
    sampler = prompt[cc.find_node(prompt, "sampler")]["inputs"]
    assert encode["dilate"] == 48 and sampler["window_mode"] == "fixed" and sampler["prev_clip_weight"] == 0.0
    for title in ("video", "mask", "prompt", "negative_prompt", "seed", "backbone", "branch"):
        cc.find_node(prompt, title)


def test_style_lora_workflow_stacks_the_style_lora_after_the_id_lora():
    prompt = cc.load_workflow(STYLE)
    style = prompt[cc.find_node(prompt, "style_lora")]
    assert style["class_type"] == "VideoPainterStyleLora"
    assert prompt[style["inputs"]["model"][0]]["_meta"]["title"] == "id_lora"
    assert prompt[cc.find_node(prompt, "sampler")]["inputs"]["model"] == [cc.find_node(prompt, "style_lora"), 0]
    demo = cc.apply_overrides(prompt, cc.demo_sets(STYLE))
    assert demo[cc.find_node(demo, "style_lora")]["inputs"]["lora_name"] == "loras/videopainter_demo_style.safetensors"


def test_flux_workflow_wires_flux_fill_into_first_frame():
    prompt = cc.load_workflow(FLUX)
    encode = prompt[cc.find_node(prompt, "encode")]["inputs"]
    first = prompt[encode["first_frame"][0]]
    assert first["_meta"]["title"] == "first_frame" and first["class_type"] == "VAEDecode"
    sampler = prompt[first["inputs"]["samples"][0]]
    assert sampler["class_type"] == "KSampler" and sampler["inputs"]["steps"] == 50
    assert prompt[sampler["inputs"]["model"][0]]["inputs"]["unet_name"] == "flux1-fill-dev.safetensors"
    conditioning = prompt[sampler["inputs"]["positive"][0]]
    assert conditioning["class_type"] == "InpaintModelConditioning"
    assert prompt[conditioning["inputs"]["positive"][0]]["inputs"]["guidance"] == 30.0
    source = prompt[conditioning["inputs"]["pixels"][0]]
    assert source["class_type"] == "ImageFromBatch" and source["inputs"]["image"] == encode["video"]
    clip = prompt[cc.find_node(prompt, "flux_text_encoders")]["inputs"]
    assert (clip["clip_name1"], clip["clip_name2"], clip["type"]) == ("clip_l.safetensors", "t5xxl_fp16.safetensors", "flux")


def test_flux_workflow_without_flux_models_fails_validation_naming_them(server):
    prompt = cc.apply_overrides(cc.load_workflow(FLUX), cc.demo_sets(FLUX))
    with pytest.raises(cc.PromptValidationError) as e:
        cc.submit(server, prompt)
    message = str(e.value)
    for missing in ("flux1-fill-dev.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors", "ae.safetensors"):
        assert missing in message, message


def test_flux_half_replacement_leaves_no_flux_node_reachable(server):
    info = cc.object_info(server)
    full = cc.load_workflow(FLUX)
    half = flux_half_replaced(full)
    flux_classes = {"UNETLoader", "DualCLIPLoader", "VAELoader", "KSampler", "InpaintModelConditioning", "VAEDecode"}
    assert {full[n]["class_type"] for n in reachable(full, info)} >= flux_classes  # as shipped, FLUX Fill runs
    runs = {half[n]["class_type"] for n in reachable(half, info)}
    assert not runs & flux_classes, runs & flux_classes
    assert cc.find_node(half, "first_frame") in reachable(half, info) and "LoadImage" in runs


def test_mask_check_warnings_reach_the_client_and_the_log(server):
    """Core nodes only (no model): an empty mask batch through the check, its report back as the node's UI text."""
    prompt = {
        "1": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 64, "height": 48}},
        "2": {"class_type": "VideoPainterMaskCheck", "_meta": {"title": "mask_check"},
              "inputs": {"mask": ["1", 0], "threshold": 0.5, "min_fraction": 0.001}},
    }
    log_start = len(server.log_path.read_text(errors="replace"))
    result = cc.submit(server, prompt).raise_for_status()
    (report,) = result.outputs["2"]["text"]
    assert report.startswith("mask check: 1 frame(s) of 64x48, hole = value > 0.5"), report
    assert "WARNING: empty mask (no hole: nothing to fill) in every frame" in report, report
    log = server.log_path.read_text(errors="replace")[log_start:]
    assert "VideoPainter Mask Check: empty mask (no hole: nothing to fill) in every frame" in log, log[-2000:]
