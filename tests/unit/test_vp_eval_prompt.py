"""scripts/vp_eval.py's per-row workflow (no server): captions, seed, dilation, replace_gt and the frames saved."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

from videopainter.vp_headless import evaluate as vp_eval  # noqa: E402

ROW = {"row_id": "clip_1.0.mp4", "caption": "a red car.", "region_caption": "a car."}


@pytest.mark.parametrize("replace_gt", [True, False])
def test_build_prompt_sets_the_row_and_saves_the_decoded_frames(replace_gt):
    cfg = vp_eval.EvalConfig(workflow=str(REPO / "workflows/api/videopainter_inpaint.json"), dilate=16,
                             replace_gt=replace_gt, seed=7, sets={"encode.width": 80, "encode.height": 96})
    prompt, size = vp_eval.build_prompt(ROW, cfg, "v.mp4", "m.mp4", clip_fps=8)
    assert size == (80, 96)
    by_title = {n.get("_meta", {}).get("title"): n for n in prompt.values()}
    assert by_title["video"]["inputs"]["file"] == "v.mp4" and by_title["mask"]["inputs"]["file"] == "m.mp4"
    assert by_title["prompt"]["inputs"]["value"] == "a red car." and by_title["seed"]["inputs"]["value"] == 7
    enc = by_title["encode"]["inputs"]
    assert enc["dilate"] == 16 and enc["target_fps"] == 8.0
    assert enc["output_rate"] == "sampled"  # the paper's numbers are on the sampled frames
    assert by_title["sampler"]["inputs"]["replace_gt"] is replace_gt
    assert not [n for n in prompt.values() if n["class_type"] == "SaveVideo"]
    save = prompt["vp_eval_save"]
    decode = next(i for i, n in prompt.items() if n["class_type"].startswith("VideoPainterDecode"))
    assert save["class_type"] == "SaveImage"
    if prompt[decode]["class_type"] == "VideoPainterDecodeVideo":  # VIDEO: losslessly encoded, then its frames
        assert prompt[decode]["inputs"]["codec"] == "ffv1"
        assert save["inputs"]["images"] == ["vp_eval_frames", 0]
        assert prompt["vp_eval_frames"]["inputs"]["video"] == [decode, 0]
    else:
        assert save["inputs"]["images"] == [decode, 0]


def test_flux_workflow_gets_the_region_caption_as_first_frame_prompt():
    cfg = vp_eval.EvalConfig(workflow=str(REPO / "workflows/api/videopainter_flux_fill_first_frame.json"))
    prompt, _ = vp_eval.build_prompt(ROW, cfg, "v.mp4", "m.mp4", clip_fps=8)
    titled = [n for n in prompt.values() if n.get("_meta", {}).get("title") == "first_frame_prompt"]
    assert titled and titled[0]["inputs"]["value"] == "a car."
