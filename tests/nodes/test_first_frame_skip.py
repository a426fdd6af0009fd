"""The first frame given to FLUX Fill is the clip's first kept frame when the encoder skips source frames: the
first-frame node's ``skip_first_frames`` reads that frame (VIDEO and IMAGE/MASK batches alike), and a reader and an
encoder of the same video that disagree on it are refused from the prompt graph, naming both nodes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from videopainter.nodes import encode, first_frame, video
from videopainter.vp_core.video import video_io

from make_sample_clip import sample_frames, write_mp4
from vp_node_helpers import FileVideo, node_kwargs, run

FRAMES, W, H, SKIP = 12, 48, 32, 5


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("skip")
    v, m = sample_frames(FRAMES, W, H)
    v[..., 2] = (np.arange(FRAMES) * 20)[:, None, None]  # every frame differs everywhere (blue = frame number)
    return v, m, write_mp4(d / "v.mkv", v, codec="ffv1"), write_mp4(d / "m.mkv", m, codec="ffv1")


def test_first_frame_node_reads_the_encoders_first_kept_frame_of_a_video(clip):
    v, m, vpath, mpath = clip
    image, grown = run(first_frame.VideoPainterFirstFrame, video=FileVideo(vpath), mask=FileVideo(mpath), dilate=0,
                       skip_first_frames=SKIP)
    job = run(encode.VideoPainterEncode, video=FileVideo(vpath), mask=FileVideo(mpath), width=48, height=32,
              source_fps=16.0, target_fps=8.0, dilate=0, skip_first_frames=SKIP)[0]
    kept = video_io.read_frames(job.frames, 0, 1)[0]  # the encoder's frame 0: source frame SKIP
    assert np.array_equal(kept.numpy(), v[SKIP])
    assert torch.equal((image[0] * 255).round().byte(), kept)
    assert torch.equal(grown[0] > 0.5, torch.from_numpy(m[SKIP] > 127))
    assert not np.array_equal(m[SKIP], m[0])  # the mask moves: frame 0's would be another hole


def test_first_frame_node_skips_in_image_and_mask_batches_and_a_single_mask_is_for_every_frame(clip):
    v, m, _, _ = clip
    images, masks = torch.from_numpy(v).float() / 255.0, torch.from_numpy(m).float() / 255.0
    image, grown = run(first_frame.VideoPainterFirstFrame, video=images, mask=masks, dilate=0, skip_first_frames=SKIP)
    assert torch.equal(image, images[SKIP:SKIP + 1]) and torch.equal(grown, (masks[SKIP:SKIP + 1] > 0.5).float())
    _, one = run(first_frame.VideoPainterFirstFrame, video=images, mask=masks[:1], dilate=0, skip_first_frames=SKIP)
    assert torch.equal(one, (masks[:1] > 0.5).float())
    image, _ = run(first_frame.VideoPainterFirstFrame, video=images, mask=masks, dilate=0)  # default: frame 0
    assert torch.equal(image, images[:1])


@pytest.mark.parametrize("kind", ["video", "batch"])
def test_skipping_past_the_end_names_skip_first_frames(clip, kind):
    v, m, vpath, mpath = clip
    given = (FileVideo(vpath), FileVideo(mpath)) if kind == "video" else (torch.from_numpy(v).float(), torch.from_numpy(m).float())
    with pytest.raises(ValueError, match=rf"^skip_first_frames: the video has {FRAMES} frames \(0..{FRAMES - 1}\); got {FRAMES}"):
        run(first_frame.VideoPainterFirstFrame, video=given[0], mask=given[1], dilate=0, skip_first_frames=FRAMES)


# ------------------------------------------------------------------------------------- the prompt graph


def _prompt(reader_class: str = "VideoPainterFirstFrame", frame=0, skip=SKIP, reader_video=("1", 0)) -> dict:
    """Load Video -> reader -> FLUX Fill (stand-ins) -> encoder's first_frame, as the example workflows wire it."""
    key = "skip_first_frames" if reader_class == "VideoPainterFirstFrame" else "index"
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "v.mkv"}},
        "2": {"class_type": "LoadVideo", "inputs": {"file": "m.mkv"}},
        "9": {"class_type": "LoadVideo", "inputs": {"file": "v.mkv"}},
        "50": {"class_type": reader_class, "_meta": {"title": "flux_first_frame_source"},
               "inputs": {"video": list(reader_video), "mask": ["2", 0], "dilate": 32, "threshold": 0.5, key: frame}},
        "41": {"class_type": "InpaintModelConditioning", "inputs": {"pixels": ["50", 0], "mask": ["50", 1]}},
        "42": {"class_type": "KSampler", "inputs": {"positive": ["41", 0], "latent_image": ["41", 2]}},
        "43": {"class_type": "VAEDecode", "inputs": {"samples": ["42", 0]}},
        "14": {"class_type": "VideoPainterEncode", "_meta": {"title": "encode"},
               "inputs": {"video": ["1", 0], "mask": ["2", 0], "first_frame": ["43", 0], "skip_first_frames": skip}},
    }


def _hidden(node_cls, prompt, unique_id, monkeypatch):
    monkeypatch.setattr(node_cls, "hidden", SimpleNamespace(prompt=prompt, unique_id=unique_id), raising=False)


def test_an_encoder_refuses_a_first_frame_read_from_another_source_frame(clip, monkeypatch):
    v, m, vpath, mpath = clip
    _hidden(encode.VideoPainterEncode, _prompt(frame=0), "14", monkeypatch)
    first = torch.from_numpy(v[:1]).float() / 255.0
    given = node_kwargs(encode.VideoPainterEncode, video=FileVideo(vpath), mask=FileVideo(mpath), width=48, height=32,
                        source_fps=16.0, first_frame=first, skip_first_frames=SKIP)
    with pytest.raises(ValueError) as e:
        encode.VideoPainterEncode.execute(**given)
    msg = str(e.value)
    assert msg.startswith("first_frame: node 50 (VideoPainterFirstFrame, 'flux_first_frame_source') reads source frame "
                          "0 (skip_first_frames 0)"), msg
    assert f"node 14 (VideoPainterEncode, 'encode') starts the clip at source frame {SKIP}" in msg, msg
    assert msg.endswith(f"Set skip_first_frames to {SKIP} on node 50 (the same value as the encoder's skip_first_frames)")
    _hidden(encode.VideoPainterEncode, _prompt(frame=SKIP), "14", monkeypatch)  # the same frame: runs
    assert encode.VideoPainterEncode.execute(**given).result[0].frame_count == -(-(FRAMES - SKIP) // 2)


def test_the_first_frame_node_refuses_before_flux_runs_and_agrees_when_equal(clip, monkeypatch):
    v, m, vpath, mpath = clip
    node = first_frame.VideoPainterFirstFrame
    given = dict(video=FileVideo(vpath), mask=FileVideo(mpath), dilate=0)
    _hidden(node, _prompt(frame=0), "50", monkeypatch)
    with pytest.raises(ValueError, match=rf"Set skip_first_frames to {SKIP} on node 50"):
        run(node, **given)
    _hidden(node, _prompt(frame=SKIP), "50", monkeypatch)
    image, _ = run(node, skip_first_frames=SKIP, **given)
    assert np.array_equal((image[0] * 255).round().byte().numpy(), v[SKIP])


def test_the_frame_node_is_judged_by_its_index(clip, monkeypatch):
    _, _, vpath, _ = clip
    _hidden(video.VideoPainterVideoFrame, _prompt("VideoPainterVideoFrame", frame=2), "50", monkeypatch)
    with pytest.raises(ValueError, match=rf"reads source frame 2 \(index 2\).*Set index to {SKIP} on node 50"):
        run(video.VideoPainterVideoFrame, video=FileVideo(vpath), index=2)
    _hidden(video.VideoPainterVideoFrame, _prompt("VideoPainterVideoFrame", frame=SKIP), "50", monkeypatch)
    (image,) = run(video.VideoPainterVideoFrame, video=FileVideo(vpath), index=SKIP)
    assert image.shape == (1, H, W, 3)


@pytest.mark.parametrize("case", ["other video node", "frame from a link", "skip from a link", "same link",
                                  "no first_frame link", "no prompt"])
def test_what_the_graph_does_not_tell_is_not_judged(case):
    from videopainter.nodes import first_frame_source

    prompt = {
        "other video node": _prompt(frame=0, reader_video=("9", 0)),  # another Load Video: its file is not judged
        "frame from a link": _prompt(frame=["7", 0]),
        "skip from a link": _prompt(frame=0, skip=["7", 0]),
        "same link": _prompt(frame=["7", 0], skip=["7", 0]),
        "no first_frame link": {k: v for k, v in _prompt(frame=0).items() if k != "43"} | {
            "14": {"class_type": "VideoPainterEncode", "inputs": {"video": ["1", 0], "skip_first_frames": SKIP}}},
        "no prompt": None,
    }[case]
    assert first_frame_source.mismatch(prompt, "14") is None
    assert first_frame_source.mismatch(_prompt(frame=0), "14") is not None  # the same graph with literals: judged


def test_numbers_from_a_primitive_int_node_are_judged():
    from videopainter.nodes import first_frame_source

    prim = {"7": {"class_type": "PrimitiveInt", "inputs": {"value": 0}}}
    assert "reads source frame 0" in first_frame_source.mismatch(_prompt(frame=["7", 0]) | prim, "14")
    skip = {"7": {"class_type": "PrimitiveInt", "inputs": {"value": SKIP}}}
    assert first_frame_source.mismatch(_prompt(frame=["7", 0]) | skip, "14") is None
    assert f"starts the clip at source frame {SKIP + 1}" in first_frame_source.mismatch(
        _prompt(frame=SKIP, skip=["7", 0]) | {"7": {"class_type": "PrimitiveInt", "inputs": {"value": SKIP + 1}}}, "14")
    computed = {"7": {"class_type": "SomeMathNode", "inputs": {"value": 0}}}  # another node's output: not judged
    assert first_frame_source.mismatch(_prompt(frame=["7", 0]) | computed, "14") is None
