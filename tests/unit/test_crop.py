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


# ------------------------------------------------------------- the composite at source resolution, model bypassed

def texture(frames: int, height: int, width: int) -> torch.Tensor:
    """A high-frequency texture (fine stripes and noise, moving 3 px a frame): what a stretch to the model's size
    and back loses."""
    g = torch.Generator().manual_seed(1)
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    out = []
    for k in range(frames):
        base = 0.5 + 0.25 * torch.sin((x + 3 * k) * 1.3) * torch.cos(y * 0.9)
        rgb = torch.stack([base, base.roll(2, 1), base.roll(3, 0)], -1) + 0.15 * torch.rand(height, width, 3, generator=g)
        out.append(rgb.clamp(0, 1))
    return torch.stack(out)


def moving_object(frames: int, height: int, width: int) -> torch.Tensor:
    m = torch.zeros(frames, height, width)
    for k in range(frames):
        x = 300 + 40 * k
        m[k, 240:285, x:x + 60] = 1  # 60x45 px, 40 px a frame
    return m


def bypassed(job: preprocess.InpaintInput) -> torch.Tensor:
    """What a perfect model would hand back: the frames it saw (the source, or the source's box in crop mode),
    resized to the working size exactly as each window resizes them (``preprocess.window_video``), in [0, 1]."""
    src = video_io.read_frames(job.frames, 0, len(job.frames))
    seen = job.crop.cut(src, 0) if job.crop is not None else src
    return (preprocess.window_video(seen, job.height, job.width)[0].permute(1, 2, 3, 0) / 2 + 0.5).clamp(0, 1)


def composite_of(job, generated, dilate=8, feather=4) -> torch.Tensor:
    return torch.cat(list(video_out.composited_chunks(job, lambda: iter([generated]), dilate, feather)()))


def hole_psnr(out: torch.Tensor, source: torch.Tensor, hole: torch.Tensor) -> float:
    # PSNR over the hole's pixels only (torchmetrics' PSNR takes no mask): 10 log10(1 / MSE) on [0, 1] values
    err = ((out - source) ** 2)[hole.bool()]
    return float(10 * torch.log10(1 / err.mean()))


def encode(video, mask, mode, **kw):
    settings = clip_inputs.ClipSettings(target_fps=0.0)
    return clip_inputs.prepare(video, mask, None, settings, width=240, height=160, dilate_size=8, first_frame_gt=False,
                               crop=clip_inputs.CropSettings(mode, context_factor=1.5, context_pixels=8, **kw))


@pytest.mark.parametrize("mode", [crop.FIXED, crop.FOLLOW])
def test_crop_mode_gives_the_hole_more_resolution_than_full_frame(mode, caplog):
    video, mask = texture(5, 540, 960), moving_object(5, 540, 960)
    with caplog.at_level(logging.INFO):
        full = encode(video, mask, crop.FULL_FRAME)
        cropped = encode(video, mask, mode)
    assert full.crop is None and cropped.crop is not None and cropped.crop.mode == mode
    assert "0.250 model pixels per source pixel" in full.info
    assert f"{cropped.crop.scale:.3f} model pixels per source pixel" in cropped.info and cropped.crop.scale > 0.5
    assert cropped.info in caplog.text
    src8 = preprocess.to_uint8(video)
    results = {}
    for name, job in (("full", full), ("crop", cropped)):
        out = composite_of(job, bypassed(job))
        assert out.shape == video.shape  # at source resolution
        results[name] = hole_psnr(out, src8.float() / 255, mask)
        # the exact-background rule: outside the dilated (8) + feathered (4) hole every byte is the source's
        keep = preprocess.dilate_holes(preprocess.to_uint8(mask), 2 * (8 + 2 * 4) + 1) == 0
        assert np.array_equal(video_out.to_uint8(out)[keep.numpy()], src8.numpy()[keep.numpy()])
    print(f"hole PSNR vs source ({mode}): full frame {results['full']:.2f} dB, crop {results['crop']:.2f} dB "
          f"(scale {cropped.crop.scale:.3f} vs 0.250)")
    assert results["crop"] > results["full"] + 3.0


def test_place_puts_each_generated_box_at_its_frames_position():
    plan = crop.CropPlan((20, 30), (4, 6), (6, 9), ((0, 0), (14, 21)), crop.FOLLOW)
    original = torch.zeros(2, 20, 30, 3)
    generated = torch.ones(2, 4, 6, 3)
    out = composite.place(generated, original, plan)
    ones = torch.ones(6, 9, 3)
    assert torch.allclose(out[0, :6, :9], ones) and out[0, 6:].eq(0).all() and out[0, :, 9:].eq(0).all()
    assert torch.allclose(out[1, 14:, 21:], ones) and out[1, :14].eq(0).all() and out[1, :, :21].eq(0).all()
    full = composite.place(generated, original, None)  # full frame: the whole frame resized to the source size
    assert full.shape == (2, 20, 30, 3) and torch.allclose(full, torch.ones_like(full))
    assert composite.place(original, original, None) is original  # already at the source size: as it is


# --------------------------------------------------------------------------------------- parts and the ID state

def test_parts_cut_from_a_crop_mode_encode_equal_the_one_run():
    video, mask = texture(49, 270, 480), torch.zeros(49, 270, 480)
    for k in range(49):
        mask[k, 100:140, 20 + 6 * k: 70 + 6 * k] = 1
    job = encode(video, mask, crop.FOLLOW)
    assert job.crop is not None and len(set(job.crop.positions)) > 5
    generated = bypassed(job)
    whole = composite_of(job, generated)
    for part in (0, 1):
        p, _ = parts.cut_part(job, 17, 1, "fixed", 2, part)
        start = 0 if part == 0 else 32
        n = p.frame_count
        assert p.crop.positions == job.crop.positions[start:start + n] and p.crop.size == job.crop.size
        for name in ("video", "masks"):  # the model's inputs: the one run's, bit for bit
            got = video_io.read_frames(getattr(p.pipeline, name), 0, n)
            want = video_io.read_frames(getattr(job.pipeline, name), start, start + n)
            assert torch.equal(got, want), name
        # the part's composite of its generated frames = the one run's composite of those frames
        assert torch.equal(composite_of(p, generated[start:start + n]), whole[start:start + n])


def test_an_id_state_made_with_another_box_is_refused():
    class Cfg:
        num_layers, num_attention_heads, attention_head_dim, patch_size, in_channels = 2, 2, 8, 2, 32
        max_text_seq_length, text_embed_dim, latent_channels = 8, 16, 16

    class Plan:
        window_frames, overlap_frames, mode = 17, 1, "fixed"

    box = crop.CropPlan((540, 960), (160, 240), (108, 162), ((0, 0),), crop.FOLLOW).spec()
    made = id_state.run_spec(Cfg, 160, 240, Plan, 1, (5, 16, 20, 30), box)
    state = id_state.IDState([], torch.zeros(0), torch.zeros(1, 5 * 10 * 15, dtype=torch.bool), torch.zeros(1, 5, 16, 20, 30),
                             0, made_with=made)
    assert id_state.fit_differences(state, made) == []
    full = id_state.run_spec(Cfg, 160, 240, Plan, 1, (5, 16, 20, 30))
    assert "geometry crop follow box 162x108 (this run: full frame)" in id_state.fit_differences(state, full)[0]


# ------------------------------------------------------------------------- the mask report on the VIDEO path

class FileVideo:
    """The part of core's VIDEO the encoder reads: a streamable file."""

    def __init__(self, path):
        self.path = str(path)

    def get_stream_source(self):
        return self.path


def write_video(path, frames: np.ndarray, fps: int = 8):
    with av.open(str(path), mode="w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for f in frames:
            for packet in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def test_an_effectively_empty_mask_video_is_warned_before_sampling(tmp_path, caplog):
    rng = np.random.default_rng(0)
    write_video(tmp_path / "v.mkv", rng.integers(0, 256, (6, 32, 48, 3), dtype=np.uint8))
    write_video(tmp_path / "m.mkv", np.full((6, 32, 48, 3), 102, dtype=np.uint8))  # 0.4 everywhere, threshold 0.5
    settings = clip_inputs.ClipSettings(target_fps=0.0)
    with caplog.at_level(logging.WARNING):
        job = clip_inputs.prepare(FileVideo(tmp_path / "v.mkv"), FileVideo(tmp_path / "m.mkv"), None, settings,
                                  width=48, height=32, dilate_size=3)
    assert job.streamed
    assert "encode: empty mask (no hole: nothing to fill) in every frame" in caplog.text
    caplog.clear()
    holes = np.zeros((6, 32, 48, 3), dtype=np.uint8)
    holes[:, 10:20, 10:20] = 255
    holes[3] = 0
    write_video(tmp_path / "m2.mkv", holes)
    with caplog.at_level(logging.WARNING):
        clip_inputs.prepare(FileVideo(tmp_path / "v.mkv"), FileVideo(tmp_path / "m2.mkv"), None, settings,
                            width=48, height=32, dilate_size=3)
    assert "empty mask (no hole: nothing to fill) in 1 of 6 frame(s): 3" in caplog.text


def test_the_mask_report_is_the_same_on_image_batches(caplog):
    video = torch.rand(4, 64, 96, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(4, 64, 96)
    mask[0, 10:12, 10:12] = 1  # 4 px: tiny
    mask[1] = 1  # full
    settings = clip_inputs.ClipSettings(target_fps=0.0)
    with caplog.at_level(logging.WARNING):
        clip_inputs.prepare(video, mask, None, settings, width=96, height=64, dilate_size=3)
    assert "encode: empty mask (no hole: nothing to fill) in 2 of 4 frame(s): 2-3" in caplog.text
    assert "encode: full mask (everything masked: no context is kept) in 1 of 4 frame(s): 1" in caplog.text
    assert "encode: tiny hole (below 0.100% of the frame, smallest 4 px" in caplog.text


def test_the_issues_hd_case_gets_more_model_pixels_than_source_pixels():
    # 1080p, 30 fps, 4 s sampled every 3rd frame (40 frames), a 200x150 object moving 400 px; the encoder's
    # defaults (dilate 32, context x1.5 + 32 px), working size 720x480
    boxes = [(465, 615, 700 + round(400 * k / 39), 900 + round(400 * k / 39)) for k in range(40)]
    scan = masks.HoleScan(1080, 1920, tuple(boxes), (200 * 150,) * 40)
    follow = crop.plan_crop(scan, (480, 720), crop.FOLLOW, 1.5, 32, pad=32)
    fixed = crop.plan_crop(scan, (480, 720), crop.FIXED, 1.5, 32, pad=32)
    assert follow.size == (386, 579) and follow.scale == pytest.approx(1.2435, abs=1e-4) and follow.scale >= 1.0
    assert fixed.size == (708, 1062) and fixed.scale == pytest.approx(0.678, abs=1e-3)
    assert crop.full_frame_scale((1080, 1920), (480, 720)) == 0.375
