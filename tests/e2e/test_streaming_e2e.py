"""The streaming path through the real server: a generated 540p 30 fps lossless (FFV1) clip goes VIDEO in (Load
Video -> Encode), VIDEO out (Decode to Video -> Composite Video -> Save Video), with one output frame per sampled
input frame at the sampled rate, the background outside the dilated hole identical to the source, and every
pixel equal to the IMAGE/MASK path on the same frames (saved as PNG by core's Save Image)."""
from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
import requests
import torch
from PIL import Image

from videopainter.vp_headless import comfy_client as cc
import make_sample_clip
from image_path import image_path

REPO = Path(__file__).resolve().parents[2]
INPAINT = REPO / "workflows" / "api" / "videopainter_inpaint.json"
W, H, FPS, SECONDS = 960, 540, 30, 3  # 90 frames; every 3rd kept at 8 fps -> 30 frames at 10 fps, two windows
DILATE, GROW, FEATHER = 32, 16, 8  # the workflow's encoder dilation and composite grow/feather

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def clip(server, tmp_path_factory):
    d = tmp_path_factory.mktemp("stream540")
    video, mask = make_sample_clip.sample_frames(FPS * SECONDS, W, H)
    cc.upload_input(server, "vp_stream540.mkv", make_sample_clip.write_mp4(d / "v.mkv", video, FPS, codec="ffv1"))
    cc.upload_input(server, "vp_stream540_mask.mkv", make_sample_clip.write_mp4(d / "m.mkv", mask, FPS, codec="ffv1"))
    # The same frames for the IMAGE path, as rgb24 PNG video: core's own reader returns those bytes exactly on every
    # host (ComfyUI 0.2x reads bgr0 FFV1 through float RGB, up to 1/255 dark; this pack's reader keeps the bytes).
    cc.upload_input(server, "vp_stream540_png.mov", make_sample_clip.write_mp4(d / "vp.mov", video, FPS, codec="png"))
    cc.upload_input(server, "vp_stream540_mask_png.mov", make_sample_clip.write_mp4(d / "mp.mov", mask, FPS, codec="png"))
    return video, mask


def prompt() -> dict:
    p = cc.apply_overrides(cc.load_workflow(INPAINT), {
        **cc.demo_sets(INPAINT), "sampler.steps": 1, "video.file": "vp_stream540.mkv", "mask.file": "vp_stream540_mask.mkv",
        "decode.codec": "ffv1", "composite.codec": "ffv1", "save.filename_prefix": "videopainter/stream540"})
    assert p["14"]["inputs"]["video"] == ["9", 0] and p["20"]["inputs"]["video"] == ["18", 0]  # VIDEO in, VIDEO out
    p["14"]["inputs"]["output_rate"] = "sampled"  # compared with the IMAGE path, which has the sampled frames
    return p


def test_video_in_video_out_is_lossless_outside_the_hole_and_equals_the_image_path(server, clip, tmp_path):
    video, mask = clip
    result = cc.submit(server, prompt(), timeout=900)
    assert result.ok, f"{result.status}: {result.error}"
    files = [f for f in cc.collect_outputs(server, result.history, tmp_path / "stream") if f.suffix == ".mp4"]
    assert len(files) == 1
    with av.open(str(files[0])) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
        assert float(c.streams.video[0].average_rate) == FPS / 3  # the sampled rate
        got = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    sampled, holes = video[::3], mask[::3]
    assert got.shape == sampled.shape == (30, H, W, 3)  # one output frame per sampled input frame

    grown = torch.from_numpy(holes > 127).to(torch.uint8)[:, None].float()
    reach = DILATE + GROW + FEATHER  # no pixel farther than this from the hole can change
    grown = torch.nn.functional.max_pool2d(grown, 2 * reach + 1, stride=1, padding=reach)[:, 0] > 0
    outside = ~grown.numpy()
    assert outside.mean() > 0.3 and np.array_equal(got[outside], sampled[outside])
    assert not np.array_equal(got[~outside], sampled[~outside])  # the hole was repainted

    # the IMAGE/MASK path on the same frames, its composite saved losslessly as PNGs
    ref = image_path(cc.apply_overrides(prompt(), {"video.file": "vp_stream540_png.mov",
                                                   "mask.file": "vp_stream540_mask_png.mov"}))
    del ref["19"], ref["20"]
    ref["20"] = {"class_type": "SaveImage", "inputs": {"images": ["18", 0], "filename_prefix": "videopainter/stream540_ref"}}
    ref_result = cc.submit(server, ref, timeout=900)
    assert ref_result.ok, f"{ref_result.status}: {ref_result.error}"
    pngs = []
    for entry in ref_result.outputs["20"]["images"]:
        r = requests.get(server.url + "/view", params=entry, timeout=30)
        r.raise_for_status()
        pngs.append(np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")))
    assert len(pngs) == 30 and np.array_equal(np.stack(pngs), got)
