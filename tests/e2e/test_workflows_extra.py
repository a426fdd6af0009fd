"""The editing, style-LoRA and FLUX-Fill example workflows and the pack's web files, through the real server.

Every ``workflows/api/*.json`` runs once, in ``test_host.py`` (with ``demo_prompt`` below); the checks here are
static or use core nodes only, so they add no model run to the shared server.

FLUX Fill: core's FLUX loaders cannot take tiny random weights. UNETLoader detects FLUX by shape, but the head
count (24) and RoPE axes (16+56+56) are fixed, so hidden_size must be 3072 (about 400M parameters for one block),
and DualCLIPLoader type ``flux`` always builds the full 4.7B-parameter T5-XXL from ComfyUI's own config. So the
e2e run replaces the FLUX half (of the FLUX-Fill and the editing workflows) by a provided first frame: the node
titled ``first_frame`` (FLUX's VAEDecode) becomes a LoadImage with the same id and title. The FLUX nodes are then
not reachable from any output, so ComfyUI neither validates nor runs them. With the FLUX models installed the
workflows run as shipped.
"""
from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest
import requests
from PIL import Image
from scipy import ndimage

from videopainter.vp_headless import comfy_client as cc
import make_sample_clip

REPO = Path(__file__).resolve().parents[2]
API = REPO / "workflows" / "api"
EDIT = API / "videopainter_edit.json"
STYLE = API / "videopainter_style_lora.json"
FLUX = API / "videopainter_flux_fill_first_frame.json"
FLUX_HD = API / "videopainter_flux_fill_hd_crop.json"  # FLUX Fill on frame 0's crop box (crop follow)
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


def has_flux_half(prompt: dict) -> bool:
    """Whether the workflow makes its first frame with FLUX Fill (a VAEDecode titled ``first_frame``)."""
    return any(n.get("_meta", {}).get("title") == "first_frame" and n["class_type"] == "VAEDecode" for n in prompt.values())


def demo_prompt(server: cc.ServerHandle, path: Path, tmp_dir: Path) -> dict:
    """The API workflow at ``path`` with its demo-size overrides, runnable with the tiny demo weights (a FLUX half
    replaced by a provided first frame)."""
    prompt = cc.apply_overrides(cc.load_workflow(path), cc.demo_sets(path))
    if has_flux_half(prompt):
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
    for title in ("video", "mask", "prompt", "negative_prompt", "seed", "backbone", "branch", "first_frame_prompt"):
        cc.find_node(prompt, title)


def check_flux_half(prompt: dict) -> None:
    """FLUX Fill as the reference runs it (guidance 30, 50 steps, seed 0) on the encoder's frame 0 and mask, grown
    by the encoder's dilation, prompted by ``first_frame_prompt``, decoded into the encoder's ``first_frame``."""
    encode = prompt[cc.find_node(prompt, "encode")]["inputs"]
    first = prompt[encode["first_frame"][0]]
    assert first["_meta"]["title"] == "first_frame" and first["class_type"] == "VAEDecode"
    sampler = prompt[first["inputs"]["samples"][0]]
    assert sampler["class_type"] == "KSampler" and sampler["inputs"]["steps"] == 50 and sampler["inputs"]["seed"] == 0
    assert sampler["inputs"]["cfg"] == 1.0
    assert prompt[sampler["inputs"]["model"][0]]["inputs"]["unet_name"] == "flux1-fill-dev.safetensors"
    conditioning = prompt[sampler["inputs"]["positive"][0]]
    assert conditioning["class_type"] == "InpaintModelConditioning"
    guidance = prompt[conditioning["inputs"]["positive"][0]]
    assert guidance["inputs"]["guidance"] == 30.0
    text = prompt[guidance["inputs"]["conditioning"][0]]["inputs"]["text"]
    assert text == [cc.find_node(prompt, "first_frame_prompt"), 0]
    source_id = conditioning["inputs"]["pixels"][0]
    source = prompt[source_id]
    assert source["class_type"] == "VideoPainterFirstFrame" and conditioning["inputs"]["mask"] == [source_id, 1]
    assert source["inputs"]["video"] == encode["video"] and source["inputs"]["mask"] == encode["mask"]
    assert source["inputs"]["dilate"] == encode["dilate"] and source["inputs"]["threshold"] == encode["threshold"]
    clip = prompt[cc.find_node(prompt, "flux_text_encoders")]["inputs"]
    assert (clip["clip_name1"], clip["clip_name2"], clip["type"]) == ("clip_l.safetensors", "t5xxl_fp16.safetensors", "flux")


def test_style_lora_workflow_stacks_the_style_lora_after_the_id_lora():
    prompt = cc.load_workflow(STYLE)
    style = prompt[cc.find_node(prompt, "style_lora")]
    assert style["class_type"] == "VideoPainterStyleLora"
    assert prompt[style["inputs"]["model"][0]]["_meta"]["title"] == "id_lora"
    assert prompt[cc.find_node(prompt, "sampler")]["inputs"]["model"] == [cc.find_node(prompt, "style_lora"), 0]
    demo = cc.apply_overrides(prompt, cc.demo_sets(STYLE))
    assert demo[cc.find_node(demo, "style_lora")]["inputs"]["lora_name"] == "loras/videopainter_demo_style.safetensors"


@pytest.mark.parametrize("path, dilate", [(FLUX, 32), (FLUX_HD, 32), (EDIT, 48)], ids=["flux_fill", "flux_hd", "edit"])
def test_flux_workflows_wire_flux_fill_into_first_frame(path, dilate):
    prompt = cc.load_workflow(path)
    check_flux_half(prompt)
    assert prompt[cc.find_node(prompt, "encode")]["inputs"]["dilate"] == dilate  # inpaint.sh 32, edit.sh 48


@pytest.mark.parametrize("path", [FLUX, FLUX_HD, EDIT], ids=["flux_fill", "flux_hd", "edit"])
def test_flux_workflow_without_flux_models_fails_validation_naming_them(server, path):
    """Without the FLUX models the video output cannot run and validation names the missing files. The editing
    workflow's Mask Check is an output of its own that needs no FLUX, so ComfyUI accepts that prompt for the check
    alone (HTTP 200) and returns the video output's errors as ``node_errors``."""
    prompt = cc.apply_overrides(cc.load_workflow(path), cc.demo_sets(path))
    r = requests.post(server.url + "/prompt", json={"prompt": prompt, "client_id": "vp-flux-missing"}, timeout=60)
    body = r.json()
    assert r.status_code == (200 if path == EDIT else 400), body
    save = cc.find_node(prompt, "save")
    assert any(save in e.get("dependent_outputs", []) for e in body["node_errors"].values()), body
    message = cc.format_validation_error(body.get("error", {}), body["node_errors"])
    for missing in ("flux1-fill-dev.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors", "ae.safetensors"):
        assert missing in message, message


@pytest.mark.parametrize("path", [FLUX, FLUX_HD, EDIT], ids=["flux_fill", "flux_hd", "edit"])
def test_flux_half_replacement_leaves_no_flux_node_reachable(server, path):
    info = cc.object_info(server)
    full = cc.load_workflow(path)
    half = flux_half_replaced(full)
    flux_classes = {"UNETLoader", "DualCLIPLoader", "VAELoader", "KSampler", "InpaintModelConditioning", "VAEDecode",
                    "VideoPainterFirstFrame"}
    assert {full[n]["class_type"] for n in reachable(full, info)} >= flux_classes  # as shipped, FLUX Fill runs
    runs = {half[n]["class_type"] for n in reachable(half, info)}
    assert not runs & flux_classes, runs & flux_classes
    assert cc.find_node(half, "first_frame") in reachable(half, info) and "LoadImage" in runs


def test_flux_hd_crop_gives_flux_fill_the_encoders_box_and_the_box_reaches_the_video_model(server, tmp_path):
    """``videopainter_flux_fill_hd_crop``: the First Frame node takes frame 0's crop box from the ``crop_box``
    encoder (the same settings as ``encode``, no first frame), so FLUX Fill paints the box the video model sees. Run
    with FLUX bypassed (FLUX cannot run on demo weights): the unpainted box goes straight into ``encode``'s
    first_frame; it is the box's size, and the encoder takes it in crop follow."""
    prompt = cc.load_workflow(FLUX_HD)
    encode_id, box_id = cc.find_node(prompt, "encode"), cc.find_node(prompt, "crop_box")
    encode, box = prompt[encode_id]["inputs"], prompt[box_id]["inputs"]
    assert {k: v for k, v in encode.items() if k != "first_frame"} == box and "first_frame" not in box
    assert encode["crop_mode"] == "crop follow"
    source_id = cc.find_node(prompt, "flux_first_frame_source")
    assert prompt[source_id]["inputs"]["crop_from"] == [box_id, 0]
    # The sample clip is 96x80: a small dilation and margin, so the box is smaller than the frame (both encoders)
    small = {"dilate": 2, "context_factor": 1.0, "context_pixels": 2, "output_rate": "sampled"}
    prompt = cc.apply_overrides(prompt, {**cc.demo_sets(FLUX_HD), **{f"{node}.{k}": v for k, v in small.items()
                                                                     for node in ("encode", "crop_box")}})
    prompt[encode_id]["inputs"]["first_frame"] = [source_id, 0]  # FLUX bypassed: the box it would paint
    prompt["vp_box"] = {"class_type": "SaveImage", "inputs": {"images": [source_id, 0], "filename_prefix": "vp_hd_box"}}
    log_start = len(server.log_path.read_text(errors="replace"))
    result = cc.submit(server, prompt, timeout=600).raise_for_status()
    log = server.log_path.read_text(errors="replace")[log_start:]
    found = re.search(r"crop to the mask \(crop follow\): box (\d+)x(\d+) \(WxH\)", log)
    assert found, log[-3000:]
    files = cc.collect_outputs(server, result.history, tmp_path)
    (box_png,) = [f for f in files if f.name.startswith("vp_hd_box")]
    assert Image.open(box_png).size == (int(found[1]), int(found[2]))  # FLUX gets the box, at source resolution
    video, _ = make_sample_clip.sample_frames()
    assert Image.open(box_png).size != (video.shape[2], video.shape[1])  # not the whole frame
    assert [f for f in files if f.suffix == ".mp4"], [f.name for f in files]


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


def test_first_frame_node_reads_frame_0_of_a_video_like_of_its_frames(server, tmp_path):
    """Core nodes and the first-frame helper only (no model): a VIDEO straight from LoadVideo gives the same frame 0
    and grown mask as the decoded IMAGE / MASK batches, and the mask grows like ``cv2.dilate`` with 32 x 32."""
    def first_frame(video, mask):
        return {"class_type": "VideoPainterFirstFrame", "inputs": {"video": video, "mask": mask, "dilate": 32, "threshold": 0.5}}

    def save(image, prefix):
        return {"class_type": "SaveImage", "inputs": {"images": image, "filename_prefix": f"vp_first_frame/{prefix}"}}

    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "vp_sample.mp4"}},
        "2": {"class_type": "LoadVideo", "inputs": {"file": "vp_sample_mask.mp4"}},
        "3": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "4": {"class_type": "GetVideoComponents", "inputs": {"video": ["2", 0]}},
        "5": {"class_type": "ImageToMask", "inputs": {"image": ["4", 0], "channel": "red"}},
        "6": first_frame(["1", 0], ["2", 0]),
        "7": first_frame(["3", 0], ["5", 0]),
        "8": {"class_type": "MaskToImage", "inputs": {"mask": ["6", 1]}},
        "9": {"class_type": "MaskToImage", "inputs": {"mask": ["7", 1]}},
        "10": save(["6", 0], "video_image"), "11": save(["7", 0], "batch_image"),
        "12": save(["8", 0], "video_mask"), "13": save(["9", 0], "batch_mask"),
    }
    result = cc.submit(server, prompt, timeout=120).raise_for_status()
    files = {f.name.split("_0")[0]: np.asarray(Image.open(f)) for f in cc.collect_outputs(server, result.history, tmp_path)}
    assert set(files) == {"video_image", "batch_image", "video_mask", "batch_mask"}, sorted(files)
    video, mask = make_sample_clip.sample_frames()
    assert files["video_image"].shape == video[0].shape
    assert np.abs(files["video_image"].astype(int) - files["batch_image"].astype(int)).max() <= 1
    assert (files["video_mask"] != files["batch_mask"]).mean() < 1e-3
    with av.open(str(server.input_dir / "vp_sample_mask.mp4")) as f:
        red = next(f.decode(video=0)).to_ndarray(format="rgb24")[..., 0]
    expected = ndimage.binary_dilation(red / 255.0 > 0.5, structure=np.ones((32, 32), bool), origin=-1)  # cv2's anchor
    assert ((files["video_mask"][..., 0] > 127) != expected).mean() < 1e-3
    assert expected.sum() > (red > 127).sum()
