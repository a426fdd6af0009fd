"""The example inpainting workflow, end to end through the real server with the tiny demo weights."""
from __future__ import annotations

import copy
from pathlib import Path

import av
import pytest
import requests

from videopainter.vp_headless import comfy_client as cc
from image_path import image_path

REPO = Path(__file__).resolve().parents[2]
INPAINT = REPO / "workflows" / "api" / "videopainter_inpaint.json"
# The tiny demo model: 80x96 px, 17-frame windows, 16 text tokens (the real one: 720x480, 49, 226); the sizes come
# from scripts/demo_sets/, shared with quickstart and test_host (same prompt, so ComfyUI's cache is reused).
DEMO = cc.demo_sets(INPAINT)


def _frames(path: Path) -> int:
    with av.open(str(path)) as f:
        return sum(1 for _ in f.decode(video=0))


@pytest.fixture(scope="module")
def inpaint_prompt() -> dict:
    return cc.apply_overrides(cc.load_workflow(INPAINT), DEMO)


def test_inpaint_workflow_keeps_every_frame(server, inpaint_prompt, tmp_path):
    progress = []
    result = cc.submit(server, inpaint_prompt, on_progress=progress.append)
    assert result.ok, f"{result.status}: {result.error}"
    files = [f for f in cc.collect_outputs(server, result.history, tmp_path) if f.suffix == ".mp4"]
    assert len(files) == 1
    # the sample clip has 49 frames at 8 fps; fixed mode returns as many frames as it was given
    assert _frames(files[0]) == 49
    bars = [p for p in progress if p.kind == "progress" and p.node_id == "16"]
    assert bars and bars[-1].value == bars[-1].max == 3 * DEMO["sampler.steps"]  # windows at frames 0, 16, 32 (17 frames, overlap 1)


def test_mask_frame_count_error_reaches_the_user(server, inpaint_prompt):
    bad = image_path(inpaint_prompt)  # a mask batch cut short
    bad["99"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["12", 0], "batch_index": 0, "length": 40}}
    bad["13"]["inputs"]["image"] = ["99", 0]
    result = cc.submit(server, bad)
    assert result.status == "error"
    assert result.error.node_type == "VideoPainterEncode"
    assert result.error.exception_message.strip() == (
        "mask has 40 frames but video has 49: give one mask per frame or a single mask"
    )
    assert requests.get(server.url + "/system_stats", timeout=10).status_code == 200


def test_branch_missing_is_explained(server, inpaint_prompt):
    bad = copy.deepcopy(inpaint_prompt)
    bad["4"]["inputs"]["model"] = ["1", 0]  # skip 'Apply Branch'
    result = cc.submit(server, bad)
    assert result.status == "error"
    assert result.error.node_type == "VideoPainterSampler"
    assert "no VideoPainter branch is attached" in result.error.exception_message
