"""Crop to the mask through the real server (issue 25 item 2): a generated 1080p 30 fps clip (~4 s, a textured
background moving, a 200x150 object moving ~400 px) goes VIDEO in, VIDEO out (lossless) with the encoder in
``crop follow``: the encoder's info output and the server log give the hole's model pixels per source pixel; the
output is at source resolution and, outside the composite's reach around the hole, every byte is the source's."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from videopainter.vp_headless import comfy_client as cc

REPO = Path(__file__).resolve().parents[2]
HD_CROP = REPO / "workflows" / "api" / "videopainter_inpaint_hd_crop.json"
W, H, FPS, FRAMES = 1920, 1080, 30, 120  # 4 s
OBJ_W, OBJ_H, TRAVEL = 200, 150, 400
GROW, FEATHER = 16, 8  # the workflow's composite grow / feather

pytestmark = pytest.mark.e2e


def frame(t: int) -> tuple[np.ndarray, np.ndarray]:
    """Source frame ``t`` and its mask: fine stripes drifting 4 px a frame, the object moving TRAVEL px in all."""
    ys, xs = np.mgrid[0:H, 0:W]
    bg = 128 + 60 * np.sin((xs + 4 * t) * 0.35) * np.cos(ys * 0.21)
    img = np.stack([bg, np.roll(bg, 7, 1), 255 - bg], -1).astype(np.uint8)
    x0 = 700 + round(TRAVEL * t / (FRAMES - 1))
    y0 = 465
    img[y0:y0 + OBJ_H, x0:x0 + OBJ_W] = (220, 30, 30)
    mask = np.zeros((H, W), np.uint8)
    mask[y0:y0 + OBJ_H, x0:x0 + OBJ_W] = 255
    return img, mask


@pytest.fixture(scope="module")
def clip(server, tmp_path_factory):
    d = tmp_path_factory.mktemp("crop1080")
    paths = d / "v.mkv", d / "m.mkv"
    outs = []
    for path in paths:
        c = av.open(str(path), mode="w")
        s = c.add_stream("ffv1", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "bgr0"
        outs.append((c, s))
    for t in range(FRAMES):  # written frame by frame: the clip is never in memory
        img, mask = frame(t)
        for (c, s), x in zip(outs, (img, np.repeat(mask[..., None], 3, -1))):
            for packet in s.encode(av.VideoFrame.from_ndarray(x, format="rgb24")):
                c.mux(packet)
    for c, s in outs:
        for packet in s.encode():
            c.mux(packet)
        c.close()
    cc.upload_input(server, "vp_crop1080.mkv", paths[0])
    cc.upload_input(server, "vp_crop1080_mask.mkv", paths[1])


def test_crop_follow_on_hd_footage(server, clip, tmp_path):
    p = cc.apply_overrides(cc.load_workflow(HD_CROP), {
        **cc.demo_sets(HD_CROP), "sampler.steps": 1, "video.file": "vp_crop1080.mkv", "mask.file": "vp_crop1080_mask.mkv",
        "decode.codec": "ffv1", "composite.codec": "ffv1", "save.filename_prefix": "videopainter/crop1080"})
    enc = next(nid for nid, n in p.items() if n["class_type"] == "VideoPainterEncode")
    assert p[enc]["inputs"]["crop_mode"] == "crop follow"
    p["90"] = {"class_type": "PreviewAny", "inputs": {"source": [enc, 4]}}  # the encoder's info output
    log_start = server.log_path.stat().st_size
    result = cc.submit(server, p, timeout=1200)
    assert result.ok, f"{result.status}: {result.error}"
    info = result.outputs["90"]["text"][0]
    width, height = p[enc]["inputs"]["width"], p[enc]["inputs"]["height"]
    assert (width, height) == (80, 96)  # the tiny demo weights' fixed size (5:6); 720x480 is 3:2
    # the box of the working aspect around the 200x150 hole grown by dilate 32 (264x214), x1.5 + 32 px each side
    # (460x385): 5:6 -> 460x552. (At 720x480, 3:2: 579x386, 1.244 model px per source px; tests/unit/test_crop.py.)
    assert "crop to the mask (crop follow): box 460x552 (WxH) of the 1920x1080 source" in info, info
    assert f"{width / 460:.3f} model pixels per source pixel (linear)" in info
    log = server.log_path.read_text(errors="replace")[log_start:]
    assert "model pixels per source pixel" in log and "crop follow" in log
    files = [f for f in cc.collect_outputs(server, result.history, tmp_path / "out") if f.suffix == ".mp4"]
    assert len(files) == 1
    reach = GROW + FEATHER + 1
    with av.open(str(files[0])) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.width, s.height) == ("ffv1", W, H)  # at source resolution
        n = s.frames or None
        rate = s.average_rate
        out = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    # output_rate 'source' (the workflow's): every source frame at the source's rate, 4 s as the source
    assert p[enc]["inputs"]["output_rate"] == "source"
    assert len(out) == FRAMES and rate == FPS and n in (None, FRAMES), (len(out), rate, n)
    step = 1
    changed = 0
    for k, got in enumerate(out):
        src, mask = frame(k * step)
        near = torch.nn.functional.max_pool2d(torch.from_numpy(mask > 127)[None, None].float(), 2 * reach + 1,
                                              stride=1, padding=reach)[0, 0].numpy() > 0
        assert np.array_equal(got[~near], src[~near]), f"frame {k}: background differs outside the hole"
        changed += int(not np.array_equal(got[near], src[near]))
    assert changed == len(out)  # every frame's hole was repainted
