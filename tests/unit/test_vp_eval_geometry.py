"""``scripts/vp_eval.py --geometry`` (issue 25 item 4): the reference geometry (the default) keeps the paper's
sampled frames at the model's size and its numbers; the source geometry scores every source frame at the source
resolution (the source-rate composite) with the same metric definitions, and shows crop mode's gain with the model
bypassed. No server: the workflow each row gets, the dataset reader, and the scoring."""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import make_sample_clip
from videopainter.vp_core.evaluation import datasets, metrics
from videopainter.vp_core.evaluation.metrics import tiny
from videopainter.vp_core.pipeline import clip_inputs, crop, preprocess, source_rate
from videopainter.vp_core.video import video_io
from videopainter.vp_headless import evaluate as vp_eval

REPO = Path(__file__).resolve().parents[2]
ROW = {"row_id": "clip_1.0.mp4", "caption": "a red car.", "region_caption": "a car.", "step": 3}


def by_title(prompt: dict) -> dict:
    return {n.get("_meta", {}).get("title"): n for n in prompt.values()}


# ------------------------------------------------------------------------------------------------ the workflow


@pytest.mark.parametrize("workflow, crop_mode", [("videopainter_inpaint", "full frame"),
                                                  ("videopainter_inpaint_hd_crop", "crop follow")])
def test_source_geometry_runs_at_the_source_rate_and_measures_the_composite(workflow, crop_mode):
    cfg = vp_eval.EvalConfig(workflow=str(REPO / "workflows/api" / f"{workflow}.json"), geometry="source")
    prompt, _ = vp_eval.build_prompt(ROW, cfg, "v.mp4", "m.mp4", clip_fps=24)
    enc = by_title(prompt)["encode"]["inputs"]
    # the source-rate clip is sampled by the encoder with the row's step (24 fps -> 8 fps: step 3)
    assert enc["output_rate"] == "source" and enc["target_fps"] == 8.0
    assert preprocess.frame_step(24, enc["target_fps"], enc["fps_rule"]) == ROW["step"]
    assert enc["crop_mode"] == crop_mode  # the workflow's
    composite = next(i for i, n in prompt.items() if n["class_type"] == "VideoPainterCompositeVideo")
    assert prompt[composite]["inputs"]["codec"] == "ffv1"  # lossless
    assert prompt["vp_eval_frames"]["inputs"]["video"] == [composite, 0]
    # a row the reference does not sample (step 1): the clip's own rate
    prompt, _ = vp_eval.build_prompt({**ROW, "step": 1}, cfg, "v.mp4", "m.mp4", clip_fps=24)
    assert by_title(prompt)["encode"]["inputs"]["target_fps"] == 24.0
    # the reference geometry (default) still forces the paper's sampled, full-frame decoder output
    ref, _ = vp_eval.build_prompt(ROW, vp_eval.EvalConfig(workflow=cfg.workflow), "v.mp4", "m.mp4", clip_fps=8)
    enc = by_title(ref)["encode"]["inputs"]
    assert (enc["output_rate"], enc["crop_mode"], enc["target_fps"]) == ("sampled", "full frame", 8.0)
    assert prompt["vp_eval_frames"]["inputs"]["video"] != ref["vp_eval_frames"]["inputs"]["video"]


def test_source_geometry_takes_the_crop_mode_set_and_refuses_the_sampled_rate():
    wf = str(REPO / "workflows/api/videopainter_inpaint.json")
    cfg = vp_eval.EvalConfig(workflow=wf, geometry="source", sets={"encode.crop_mode": "crop fixed"})
    prompt, _ = vp_eval.build_prompt(ROW, cfg, "v.mp4", "m.mp4", clip_fps=24)
    assert by_title(prompt)["encode"]["inputs"]["crop_mode"] == "crop fixed"
    cfg = vp_eval.EvalConfig(workflow=wf, geometry="source", sets={"encode.output_rate": "sampled"})
    with pytest.raises(ValueError, match="--geometry source scores the output at the source rate"):
        vp_eval.build_prompt(ROW, cfg, "v.mp4", "m.mp4", clip_fps=24)


def test_the_geometry_is_part_of_the_setting_and_of_the_default_folder():
    args = vp_eval.build_parser().parse_args(["--dataset", "davis"])
    assert args.geometry == "reference"
    ref = vp_eval.config_from_args(args)
    assert "geometry" not in ref.setting()  # folders written before --geometry existed resume as they were
    src = vp_eval.config_from_args(vp_eval.build_parser().parse_args(["--dataset", "davis", "--geometry", "source"]))
    assert src.setting()["geometry"] == "source" and src.setting() != ref.setting()
    assert Path(src.out_dir).name == Path(ref.out_dir).name + "_source_geometry"
    assert "--geometry" in vp_eval.build_parser().format_help()


# ------------------------------------------------------------------------------------------------ the reader


def test_read_clip_at_the_source_rate_keeps_every_frame_the_sampled_frames_span(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (30, 16, 24, 3), dtype=np.uint8)
    labels = (rng.random((30, 16, 24)) < 0.2).astype(np.uint8)
    video, npz = tmp_path / "v.mp4", tmp_path / "m.npz"
    datasets.write_video(video, frames, 16)  # lossless
    np.savez_compressed(npz, labels)
    row = {"dataset": "VPBench", "name": "v", "video": str(video), "masks": str(npz), "mask_id": 1, "fps": 16,
           "start_frame": 2, "end_frame": 25, "step": 2}
    ref, ref_holes = datasets.read_clip(row, max_frames=4)
    src, src_holes = datasets.read_clip(row, max_frames=4, source_rate=True)
    assert len(ref) == 4 and len(src) == 8  # 4 sampled frames, each with its period of 2 source frames
    assert np.array_equal(src.numpy(), frames[2:10]) and np.array_equal(src_holes.numpy(), labels[2:10] * 255)
    assert torch.equal(src[::2], ref) and torch.equal(src_holes[::2], ref_holes)
    every, _ = datasets.read_clip(row, max_frames=None, source_rate=True)
    assert np.array_equal(every.numpy(), frames[2:25])


def test_davis_at_its_stored_size(tmp_path):
    from PIL import Image

    (tmp_path / "v").mkdir()
    (tmp_path / "m").mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(tmp_path / "v" / f"{i:05d}.png")
        Image.fromarray(np.zeros((24, 40), np.uint8)).save(tmp_path / "m" / f"{i:05d}.png")
    row = {"dataset": "davis", "name": "v", "video": str(tmp_path / "v"), "masks": str(tmp_path / "m")}
    frames, holes = datasets.read_clip(row, None, None)
    assert frames.shape == (3, 24, 40, 3) and holes.shape == (3, 24, 40)
    assert np.array_equal(frames[0].numpy(), np.asarray(Image.open(tmp_path / "v" / "00000.png")))
    assert datasets.read_clip(row, None, (80, 48))[0].shape == (3, 48, 80, 3)


# ------------------------------------------------------------------------------------------------ the scoring


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tiny.write_tiny_metric_models(tmp_path_factory.mktemp("metric_models") / "videopainter" / "metrics")
    return metrics.load_metric_models(root, "cpu")


def small_clip(n=6, h=40, w=64):
    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, generator=g)
    holes = torch.zeros(n, h, w, dtype=torch.uint8)
    for k in range(n):
        holes[k, 10:22, 8 + 3 * k:26 + 3 * k] = 255
    return frames, holes


# The reference geometry's numbers of this case, computed with the code before --geometry existed (vp_eval's
# evaluate_row: ground_truth_at, replace_background, clip_metrics). They must not move.
REFERENCE_NUMBERS = {"psnr": 26.0490883, "mse": 0.0024859, "mae": 0.0161128, "masked_psnr": 13.8345743,
                     "masked_mse": 0.0413798}


def test_reference_geometry_keeps_its_numbers_and_source_geometry_scores_every_source_frame(models):
    frames, holes = small_clip()
    cfg = vp_eval.EvalConfig(workflow="unused", dilate=5)
    model_size = (48, 32)  # (width, height)
    g = torch.Generator().manual_seed(4)
    noisy = lambda x: (x.float() + torch.randint(-60, 61, x.shape, generator=g)).clamp(0, 255).to(torch.uint8)  # noqa: E731
    # reference: the decoder's frames at the model size (one fewer, as a 'reference' window may return)
    gt_model, _ = metrics.ground_truth_at(frames, holes, 32, 48, 5)
    ref = vp_eval.score(frames, holes, noisy(gt_model[:5]), cfg, model_size, "a clip", "a hole", models)
    assert ref.frames == 5
    for key, value in REFERENCE_NUMBERS.items():
        assert ref.values[key] == pytest.approx(value, rel=1e-5), key
    # source: every source frame at the source size, against the source frames themselves
    src_cfg = vp_eval.EvalConfig(workflow="unused", dilate=5, geometry="source")
    result = noisy(frames)
    src = vp_eval.score(frames, holes, result, src_cfg, model_size, "a clip", "a hole", models)
    assert src.frames == 6
    hole = preprocess.dilate(holes, 5) > 127
    pasted = torch.where(hole[..., None], result, frames).float() / 255  # replace_gt at source resolution
    mse = float(((pasted - frames.float() / 255) ** 2).mean(dim=(1, 2, 3)).mean())
    assert src.values["mse"] == pytest.approx(mse, rel=1e-5)
    with pytest.raises(RuntimeError, match="the result has 5 frames of 64x40 but the source cut has 6 frames of 64x40"):
        vp_eval.score(frames, holes, result[:5], src_cfg, model_size, "a clip", "a hole", models)
    with pytest.raises(RuntimeError, match="the result has 6 frames of 48x32"):
        vp_eval.score(frames, holes, noisy(gt_model), src_cfg, model_size, "a clip", "a hole", models)


def test_the_tables_say_which_geometry_and_never_mix_them(tmp_path):
    row = {"row_id": "r", "index": 0, "name": "r", "frames": 12, "seconds": 1.0, "caption": "c", "region_caption": "r",
           **{k: 1.0 for k in metrics.WHOLE + metrics.MASKED}, "i3d_real": [0.0, 1.0], "i3d_fake": [0.5, 1.0],
           "geometry": "source", "width": 64, "height": 40}
    two = [row, {**row, "row_id": "s", "index": 1, "i3d_real": [1.0, 0.0], "i3d_fake": [1.0, 0.5]}]
    vp_eval.write_results(two, tmp_path, "VPBench")
    summary = json.loads((tmp_path / "VPBench_metrics.json").read_text())
    assert (summary["geometry"], summary["sizes"], summary["frames"]) == ("source", ["64x40"], 24)
    with open(tmp_path / "VPBench_metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["Geometry"], r["Size"]) for r in table] == [("source", "64x40")] * 2 + [("source", "64x40")]
    old = {k: v for k, v in row.items() if k not in ("geometry", "width", "height")}  # a row from before --geometry
    with pytest.raises(ValueError, match="geometries reference, source cannot go into one table"):
        vp_eval.write_results([old, {**row, "index": 1}], tmp_path, "VPBench")


# ------------------------------------------------------- the gain, measured with the paper's metrics (model bypassed)


class FileVideo:
    """The part of core's VIDEO the encoder reads: a streamable file."""

    def __init__(self, path):
        self.path = str(path)

    def get_stream_source(self):
        return self.path


def hd_like_clip(n: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A high-frequency texture moving 1 px a frame and a 60x45 object moving 12 px a frame (uint8)."""
    g = torch.Generator().manual_seed(1)
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    frames, holes = [], []
    for k in range(n):
        base = 0.5 + 0.25 * torch.sin((x + k) * 1.3) * torch.cos(y * 0.9)
        rgb = torch.stack([base, base.roll(2, 1), base.roll(3, 0)], -1) + 0.15 * torch.rand(h, w, 3, generator=g)
        frames.append(preprocess.to_uint8(rgb.clamp(0, 1)).numpy())
        hole = np.zeros((h, w), np.uint8)
        x0 = 150 + 12 * k
        hole[160:205, x0:x0 + 60] = 255
        holes.append(hole)
    return np.stack(frames), np.stack(holes)


def bypassed(job) -> torch.Tensor:
    """A perfect model: the sampled frames it saw (the whole frame, or the crop box) at the working size, resized
    as each window resizes them."""
    src = video_io.read_frames(job.frames, 0, len(job.frames))
    seen = job.crop.cut(src, 0) if job.crop is not None else src
    return (preprocess.window_video(seen, job.height, job.width)[0].permute(1, 2, 3, 0) / 2 + 0.5).clamp(0, 1)


def test_crop_follow_scores_higher_than_full_frame_at_source_resolution_with_the_model_bypassed(tmp_path, models,
                                                                                                 caplog):
    # 360x640 at 24 fps, sampled every 3rd frame, model size 240x160: full frame gives 0.375 model pixels per source
    # pixel, as 1920x1080 -> 720x480 does
    n, step, dilate = 13, 3, 8
    frames, holes = hd_like_clip(n, 360, 640)
    make_sample_clip.write_mp4(tmp_path / "v.mkv", frames, 24, codec="ffv1")
    make_sample_clip.write_mp4(tmp_path / "m.mkv", holes, 24, codec="ffv1")
    cfg = vp_eval.EvalConfig(workflow="unused", dilate=dilate, geometry="source")
    scores = {}
    for mode in (crop.FULL_FRAME, crop.FOLLOW):
        settings = clip_inputs.ClipSettings(target_fps=8.0, output_rate="source")
        with caplog.at_level(logging.INFO):
            job = clip_inputs.prepare(FileVideo(tmp_path / "v.mkv"), FileVideo(tmp_path / "m.mkv"), None, settings,
                                      width=240, height=160, dilate_size=dilate, first_frame_gt=False,
                                      crop=clip_inputs.CropSettings(mode, context_factor=1.5, context_pixels=8))
        assert (job.crop is None) == (mode == crop.FULL_FRAME) and job.source is not None
        generated = bypassed(job)
        assert len(generated) == 5 and job.source.step == step
        chunks = source_rate.composited_chunks(job.source, lambda: iter([generated]), step, 16, 8, crop=job.crop)
        out = preprocess.to_uint8(torch.cat(list(chunks())))
        assert out.shape == (n, 360, 640, 3)  # every source frame at the source resolution
        scores[mode] = vp_eval.score(torch.from_numpy(frames), torch.from_numpy(holes), out, cfg, (240, 160),
                                     "a textured scene", "an object", models).values
    full, follow = scores[crop.FULL_FRAME], scores[crop.FOLLOW]
    logging.getLogger(__name__).info("bypassed, source geometry: PSNR full frame %.2f dB, crop follow %.2f dB; "
                                     "SSIM %.4f / %.4f", full["psnr"], follow["psnr"], full["ssim"], follow["ssim"])
    print(f"source geometry, model bypassed: PSNR full frame {full['psnr']:.2f} dB, crop follow {follow['psnr']:.2f} dB; "
          f"SSIM {full['ssim']:.4f} / {follow['ssim']:.4f}; LPIPS {full['lpips']:.4f} / {follow['lpips']:.4f}")
    # the whole-frame metrics see the hole (replace_gt makes the rest the source's): crop mode's resolution shows
    assert follow["psnr"] > full["psnr"] + 2.0 and follow["ssim"] > full["ssim"] and follow["mse"] < full["mse"]
    # the paper's masked ("background") metrics leave the hole out: the same in both modes
    for key in ("masked_psnr", "masked_mse", "masked_mae"):
        assert follow[key] == pytest.approx(full[key], rel=1e-9), key


def test_a_workflow_exported_from_the_ui_gets_the_rows_seed_and_first_frame_prompt(tmp_path):
    """A workflow exported from the UI carries the readable titles ("Seed", "First frame prompt"), not the API
    files' handles: the row's seed and region caption still reach those nodes."""
    api = json.loads((REPO / "workflows/api/videopainter_flux_fill_first_frame.json").read_text())
    readable = {"seed": "Seed", "first_frame_prompt": "First frame prompt"}
    for node in api.values():
        title = node.get("_meta", {}).get("title")
        if title in readable:
            node["_meta"]["title"] = readable[title]
    assert set(by_title(api)) >= set(readable.values())
    exported = tmp_path / "exported.json"
    exported.write_text(json.dumps(api))
    prompt, _ = vp_eval.build_prompt(ROW, vp_eval.EvalConfig(workflow=str(exported), seed=7), "v.mp4", "m.mp4",
                                     clip_fps=8)
    nodes = by_title(prompt)
    assert nodes["Seed"]["inputs"]["value"] == 7
    assert nodes["First frame prompt"]["inputs"]["value"] == ROW["region_caption"]


@pytest.mark.parametrize("geometry", ["reference", "source"])
def test_both_encoders_of_the_flux_crop_workflow_get_the_rows_settings(geometry):
    """``videopainter_flux_fill_hd_crop`` has two encoders (``crop_box`` plans frame 0's box for FLUX Fill with the
    same settings as ``encode``): the row's settings reach both, so the box FLUX paints is the box the model sees."""
    cfg = vp_eval.EvalConfig(workflow=str(REPO / "workflows/api/videopainter_flux_fill_hd_crop.json"),
                             geometry=geometry, dilate=16)
    prompt, size = vp_eval.build_prompt(ROW, cfg, "v.mp4", "m.mp4", clip_fps=24 if geometry == "source" else 8)
    encode, box = by_title(prompt)["encode"]["inputs"], by_title(prompt)["crop_box"]["inputs"]
    assert {k: v for k, v in encode.items() if k != "first_frame"} == box
    assert (encode["dilate"], encode["target_fps"]) == (16, 8.0)
    want = ("source", "crop follow") if geometry == "source" else ("sampled", "full frame")
    assert (encode["output_rate"], encode["crop_mode"]) == want
    assert size == (encode["width"], encode["height"])
