"""Crop to the mask (issue 25 item 2): the box geometry (vp_core.pipeline.crop), the mask pre-pass it is planned from
(vp_core.pipeline.masks.scan_holes), the placement of the generated box back into source coordinates and the
composite at source resolution, with the model bypassed; chained parts cut from a crop-mode encode; the mask report
on the VIDEO path (issue 26 item 8)."""
from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import torch

from videopainter.vp_core.pipeline import clip_inputs, composite, crop, id_state, masks, parts, preprocess, video_out
from videopainter.vp_core.video import video_io


def scan_of(boxes, height=1080, width=1920):
    areas = tuple(0 if b is None else (b[1] - b[0]) * (b[3] - b[2]) for b in boxes)
    return masks.HoleScan(height, width, tuple(boxes), areas)


def covers(plan, k, b):
    top, left, h, w = plan.box(k)
    return top <= b[0] and b[1] <= top + h and left <= b[2] and b[3] <= left + w


# ------------------------------------------------------------------------------------------------ geometry

def test_one_box_of_the_exact_working_aspect_with_the_margin():
    boxes = [(400, 550, 100 + 10 * k, 300 + 10 * k) for k in range(20)]  # 200x150, moving 10 px a frame
    plan = crop.plan_crop(scan_of(boxes), (480, 720), crop.FIXED, context_factor=1.0, context_pixels=0)
    h, w = plan.size
    assert w * 480 == h * 720  # 3:2 exactly
    assert w >= 390 and h >= 150 and (w - 3, h - 2) < (390, 150)  # the smallest 3:2 box holding the union (390x150)
    assert len(set(plan.positions)) == 1 and all(covers(plan, k, b) for k, b in enumerate(boxes))
    wider = crop.plan_crop(scan_of(boxes), (480, 720), crop.FIXED, context_factor=1.5, context_pixels=20)
    assert wider.size[1] >= 390 * 1.5 + 40 and wider.size[1] * 2 == wider.size[0] * 3
    padded = crop.plan_crop(scan_of(boxes), (480, 720), crop.FIXED, context_factor=1.0, context_pixels=0, pad=32)
    assert padded.size[1] >= 390 + 64
    # another working aspect: 768x432 is 16:9
    other = crop.plan_crop(scan_of(boxes), (432, 768), crop.FIXED)
    assert other.size[1] * 9 == other.size[0] * 16
    assert plan.scale == pytest.approx(720 / plan.size[1])


def test_the_box_is_clamped_to_the_frame():
    boxes = [(0, 40, 1850, 1920)] * 5  # a hole in the top-right corner
    plan = crop.plan_crop(scan_of(boxes), (480, 720), crop.FIXED, context_factor=1.5, context_pixels=32)
    top, left, h, w = plan.box(0)
    assert top == 0 and left + w == 1920 and covers(plan, 0, boxes[0])


def test_follow_mode_moves_smoothly_with_the_hole_and_always_covers_it():
    # a 200x150 object moving 400 px over 30 frames, with jitter and a frame without hole
    rng = np.random.default_rng(0)
    boxes = []
    for k in range(30):
        x = 300 + int(400 * k / 29) + int(rng.integers(-6, 7))
        boxes.append((500, 650, x, x + 200))
    boxes[12] = None
    plan = crop.plan_crop(scan_of(boxes), (480, 720), crop.FOLLOW, context_factor=1.5, context_pixels=16, smooth_frames=9)
    fixed = crop.plan_crop(scan_of(boxes), (480, 720), crop.FIXED, context_factor=1.5, context_pixels=16)
    assert plan.size[1] < fixed.size[1]  # one object's size, not the whole path's
    assert len({p for p in plan.positions}) > 10  # it moves
    assert all(covers(plan, k, b) for k, b in enumerate(boxes) if b is not None)
    lefts = np.array([p[1] for p in plan.positions])
    raw = np.array([b[2] if b is not None else boxes[11][2] for b in boxes])
    # smoother than the hole's own jittery track: the second differences are smaller
    assert np.abs(np.diff(lefts, 2)).mean() < np.abs(np.diff(raw, 2)).mean()
    assert plan.positions[12] == plan.positions[12]  # the frame without hole has a box too
    assert len(plan) == 30


def test_fallback_to_the_whole_frame_is_logged(caplog):
    big = [(0, 1000, 100, 1800)] * 3
    with caplog.at_level(logging.WARNING):
        assert crop.plan_crop(scan_of(big), (480, 720), crop.FIXED) is None
    assert "does not fit a box of the working aspect 720:480 smaller than the 1920x1080 frame: the whole frame" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert crop.plan_crop(scan_of([None, None]), (480, 720), crop.FOLLOW) is None
    assert "no hole in any frame" in caplog.text
    assert crop.plan_crop(scan_of([(0, 10, 0, 10)]), (480, 720), crop.FULL_FRAME) is None
    with pytest.raises(ValueError, match="context_factor: expected a finite number >= 1"):
        crop.plan_crop(scan_of([(0, 10, 0, 10)]), (480, 720), crop.FIXED, context_factor=float("nan"))


def test_the_pre_pass_finds_each_frames_box_and_area():
    holes = torch.zeros(4, 30, 40, dtype=torch.uint8)
    holes[0, 3:7, 5:9] = 255
    holes[2, 10:12, 30:40] = 255
    scan = masks.scan_holes(video_io.TensorSource(holes), chunk=3)
    assert scan.boxes == ((3, 7, 5, 9), None, (10, 12, 30, 40), None)
    assert scan.areas == (16, 0, 20, 0)
    assert scan.report(0.5).empty == (1, 3)
