"""VideoPainter Mask Check (``execute`` called directly) and its analysis, ``vp_core.pipeline.masks.mask_report``."""
from __future__ import annotations

import logging

import pytest
import torch

from videopainter.nodes.utils import VideoPainterMaskCheck
from videopainter.vp_core.pipeline import masks

H, W = 96, 80  # 7680 px: 0.1% is 7.68 px


def frames(*holes: int) -> torch.Tensor:
    """One frame per entry with that many hole pixels (values 1.0), the rest 0."""
    out = torch.zeros(len(holes), H, W)
    for i, n in enumerate(holes):
        out[i].view(-1)[:n] = 1.0
    return out


def test_pass_through_is_unchanged_and_reports_every_frame(caplog):
    mask = frames(900, 1200, 1000)
    before = mask.clone()
    with caplog.at_level(logging.WARNING):
        out = VideoPainterMaskCheck.execute(mask=mask)
    passed, report = out.result
    assert passed is mask and torch.equal(mask, before)
    assert report == (
        "mask check: 3 frame(s) of 80x96, hole = value > 0.5\n"
        "hole share of the frame: min 11.72%, mean 13.45%, max 15.62%\n"
        "OK: no empty, full or tiny masks\n"
        "hole pixels per frame: 900, 1200, 1000"
    )
    assert out.ui.as_dict() == {"text": (report,)}  # shown on the node by web/js/videopainter.js
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "Mask Check" in r.getMessage()]


def test_empty_full_and_tiny_frames_are_named_and_logged(caplog):
    mask = frames(0, 0, 500, H * W, 7, 8, 0)
    with caplog.at_level(logging.WARNING):
        _, report = VideoPainterMaskCheck.execute(mask=mask, threshold=0.5, min_fraction=0.001).result
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = [
        "empty mask (no hole: nothing to fill) in 3 of 7 frame(s): 0-1, 6",
        "full mask (everything masked: no context is kept) in 1 of 7 frame(s): 3",
        "tiny hole (below 0.100% of the frame, smallest 7 px; one model token covers 16x16 px, so it may be missed "
        "by the 8x latent / 2x2 token grid) in 1 of 7 frame(s): 4",
    ]
    assert warnings == [f"VideoPainter Mask Check: {e}" for e in expected]
    assert [line[len("WARNING: "):] for line in report.splitlines() if line.startswith("WARNING: ")] == expected
    assert report.endswith("hole pixels per frame: 0, 0, 500, 7680, 7, 8, 0")


def test_every_frame_empty_says_so():
    report = masks.mask_report(torch.zeros(4, H, W))
    assert report.warnings() == ["empty mask (no hole: nothing to fill) in every frame"]
    assert report.empty == (0, 1, 2, 3) and report.full == () and report.tiny == ()


def test_threshold_and_single_mask():
    mask = torch.full((H, W), 0.4)  # one mask for all frames ([H, W])
    assert masks.mask_report(mask, threshold=0.5).empty == (0,)
    assert masks.mask_report(mask, threshold=0.3).full == (0,)
    _, report = VideoPainterMaskCheck.execute(mask=mask, threshold=0.3).result
    assert report.startswith("mask check: 1 frame(s) of 80x96, hole = value > 0.3")


def test_min_fraction_bounds_tiny():
    mask = frames(77)  # 1.0% of the frame
    assert masks.mask_report(mask, min_fraction=0.01).tiny == ()  # 77 >= 76.8
    assert masks.mask_report(mask, min_fraction=0.011).tiny == (0,)
    assert masks.mask_report(mask, min_fraction=0.0).tiny == ()


def test_bad_input_names_the_input():
    with pytest.raises(ValueError, match=r"mask: expected a MASK batch \[frames, height, width\].*\(2, 3, 4, 5\)"):
        VideoPainterMaskCheck.execute(mask=torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="mask: .*at least one frame"):
        masks.mask_report(torch.zeros(0, H, W))
    with pytest.raises(ValueError, match="min_fraction must be within"):
        masks.mask_report(frames(1), min_fraction=2.0)


@pytest.mark.parametrize("indices, text", [((), ""), ((4,), "4"), ((0, 1, 2, 5, 7, 8), "0-2, 5, 7-8"), ((3, 5), "3, 5")])
def test_format_frames(indices, text):
    assert masks.format_frames(indices) == text


def test_schema_output_ids_differ_from_inputs():
    schema = VideoPainterMaskCheck.define_schema()
    assert [i.id for i in schema.inputs] == ["mask", "threshold", "min_fraction", "mask_channel"]
    assert [o.id for o in schema.outputs] == ["mask_out", "report"]
    assert schema.is_output_node and schema.category == "videopainter/utils"
