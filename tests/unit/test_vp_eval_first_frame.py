"""``scripts/vp_eval.py`` grows FLUX Fill's first-frame mask by the same kernel as the encoder's dilation."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
from videopainter.vp_headless import evaluate as vp_eval  # noqa: E402


@pytest.mark.parametrize("name", ["videopainter_edit", "videopainter_flux_fill_first_frame"])
def test_eval_dilation_reaches_the_first_frame_node(name):
    cfg = vp_eval.EvalConfig(workflow=str(REPO / "workflows" / "api" / f"{name}.json"), dilate=40)
    row = {"caption": "a clip", "region_caption": "a region", "row_id": "r0"}
    prompt, _ = vp_eval.build_prompt(row, cfg, "v.mp4", "m.mp4", 8.0)
    grown = [n["inputs"]["dilate"] for n in prompt.values() if n["class_type"] == "VideoPainterFirstFrame"]
    encode = [n["inputs"]["dilate"] for n in prompt.values() if n["class_type"] == "VideoPainterEncode"]
    assert grown == [40] and encode == [40]
