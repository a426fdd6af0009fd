"""Issue #26 through the nodes: files checked against what they claim, first_frame batches, NaN widgets, LoRA
shapes, parts wiring. Each message is the exact text of ``tests/reliability_cases.py`` (rows ``26.N``)."""
from __future__ import annotations

from pathlib import Path
from unittest import mock

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import make_sample_clip
from reliability_cases import message as msg
from videopainter.nodes import encode, loaders, sampler
from videopainter.nodes import id_state as id_state_nodes
from videopainter.nodes import parts as parts_nodes
from videopainter.vp_core.checkpoints.tiny_checkpoints import STYLE_LORA_NAME
from videopainter.vp_core.model.transformer import CogVideoXTransformer
from vp_node_helpers import FileVideo, run

W, H = 96, 80


def write_faststart(path: Path, frames: np.ndarray, fps: int = 16) -> Path:
    """H.264 mp4 with its index (moov) first, as streamed downloads are: a cut copy still opens."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def clip40():
    return make_sample_clip.sample_frames(40, W, H)


def encode_files(video, mask, **given):
    return run(encode.VideoPainterEncode, video=video, mask=mask, width=W, height=H, **given)


def test_26_1_truncated_video_is_named_truncated(tmp_path, clip40):
    video, mask = clip40
    whole = write_faststart(tmp_path / "whole.mp4", video).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: int(len(whole) * 0.55)])
    mpath = make_sample_clip.write_mp4(tmp_path / "mask.mp4", mask, fps=16)
    with pytest.raises(ValueError) as e:
        encode_files(FileVideo(cut), FileVideo(mpath))
    got = str(e.value)
    n = int(got.split(" but only ")[1].split()[0])  # the packets in the cut file depend on the encoder's sizes
    assert 0 < n < 40
    up_to = got.split("(up to ")[1].split(" s)")[0]
    assert got == msg("truncated_video").replace("{n}", str(n)).replace("{t}", up_to)


def test_26_1_truncated_mkv_without_a_frame_count_is_named_truncated_by_its_duration(tmp_path, clip40):
    video, mask = clip40
    path = make_sample_clip.write_mp4(tmp_path / "whole.mkv", video, fps=16, codec="ffv1")
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.55)])
    with pytest.raises(ValueError, match=r"^video: the file is truncated: its container promises 40 frames \(2\.50 s\)"):
        encode_files(FileVideo(cut), torch.from_numpy(mask[:1].astype(np.float32) / 255))


def test_26_2_mask_video_longer_than_the_video_is_refused_before_sampling(tmp_path, clip40):
    video, mask = clip40
    vpath = make_sample_clip.write_mp4(tmp_path / "v.mp4", video, fps=24)
    mpath = make_sample_clip.write_mp4(tmp_path / "m.mp4", np.concatenate([mask, mask[:2]]), fps=24)
    with pytest.raises(ValueError) as e:  # 42 and 40 frames both sample to 14 at step 3
        encode_files(FileVideo(vpath), FileVideo(mpath))
    assert str(e.value) == msg("mask_video_frames")
    with pytest.raises(ValueError) as e:  # the same against an IMAGE batch
        encode_files(torch.from_numpy(video.astype(np.float32) / 255), FileVideo(mpath))
    assert str(e.value) == msg("mask_video_frames")


def test_26_2_mask_video_at_another_rate_is_refused(tmp_path, clip40):
    video, mask = clip40
    vpath = make_sample_clip.write_mp4(tmp_path / "v.mp4", video, fps=16)
    mpath = make_sample_clip.write_mp4(tmp_path / "m.mp4", mask, fps=8)
    with pytest.raises(ValueError) as e:
        encode_files(FileVideo(vpath), FileVideo(mpath))
    assert str(e.value) == msg("mask_video_rate")


def test_26_2_a_still_mask_video_is_used_for_every_frame(tmp_path, clip40):
    video, mask = clip40
    vpath = make_sample_clip.write_mp4(tmp_path / "v.mp4", video, fps=16)
    mpath = make_sample_clip.write_mp4(tmp_path / "m.mp4", mask[5:6], fps=16)
    job, frames, hole, _fps, _info = encode_files(FileVideo(vpath), FileVideo(mpath))
    assert job.frame_count == 20 and hole.shape[0] == 20
    assert torch.equal(hole[0], hole[-1]) and hole[0].sum() > 0


def test_26_3_first_frame_batch_is_refused(tmp_path, clip40):
    video, mask = clip40
    v = torch.from_numpy(video.astype(np.float32) / 255)
    m = torch.from_numpy(mask.astype(np.float32) / 255)
    vpath = make_sample_clip.write_mp4(tmp_path / "v.mp4", video, fps=16)
    for clip in (v, FileVideo(vpath)):  # the IMAGE-batch path and the VIDEO path
        with pytest.raises(ValueError) as e:
            encode_files(clip, m, first_frame=v)
        assert str(e.value) == msg("first_frame_batch")
    job, *_ = encode_files(v, m, first_frame=v[:1])  # one image is fine
    assert job.pipeline.image is not None


def test_26_5_a_continued_part_without_id_state_is_refused_before_any_step(loaded, clip_tensors):
    video, mask = clip_tensors  # 40 frames: windows of 17 (overlap 1) -> 3 windows, parts of 1 window
    (inpaint,) = run(encode.VideoPainterEncode, video=video, mask=mask, width=80, height=96, source_fps=0.0)[:1]
    part1, _ = run(parts_nodes.VideoPainterCutPart, inpaint=inpaint, window_frames=17, windows_per_part=1, part=1)
    with mock.patch.object(CogVideoXTransformer, "forward", side_effect=AssertionError("a step ran")):
        with pytest.raises(ValueError) as e:
            run(sampler.VideoPainterSampler, model=loaded.model, vae=loaded.vae, inpaint=part1, positive=loaded.positive,
                negative=loaded.negative, steps=1, window_frames=17)
    assert str(e.value) == msg("part_without_id_state")


def _latent(latents: int, **info):
    return {"samples": torch.zeros(1, 16, latents, 4, 4), "videopainter": {"padded_frames": 0, **info}}


def test_26_5_join_latents_refuses_runs_that_do_not_continue_each_other():
    join = id_state_nodes.VideoPainterJoinLatents
    first = _latent(5, shared_latents=0, parts=[0, 0, 3])
    with pytest.raises(ValueError) as e:  # the second run sampled without id_state: 21 frames for 14 before the fix
        join.execute(first=first, second=_latent(5, shared_latents=0))
    assert str(e.value) == msg("join_unrelated")
    with pytest.raises(ValueError) as e:  # part 2 after part 0
        join.execute(first=first, second=_latent(5, shared_latents=1, parts=[2, 2, 3]))
    assert str(e.value) == msg("join_out_of_order")
    (joined,) = join.execute(first=first, second=_latent(5, shared_latents=1, parts=[1, 1, 3])).result
    assert joined["samples"].shape[2] == 9 and joined["videopainter"]["parts"] == [0, 1, 3]
    (three,) = join.execute(first=joined, second=_latent(5, shared_latents=1, parts=[2, 2, 3])).result
    assert three["samples"].shape[2] == 13


@pytest.mark.parametrize("node", ["style", "id"])
def test_26_4_lora_of_another_model_size_is_refused_naming_file_key_and_shapes(loaded, demo_models, node):
    style = load_file(str(demo_models / "loras" / STYLE_LORA_NAME))
    # CogVideoX key names, another model size: every layer 32 wider
    other = {k: torch.zeros(v.shape[0], v.shape[1] + 32) if ".lora_A." in k else torch.zeros(v.shape[0] + 32, v.shape[1])
             for k, v in style.items()}
    path = demo_models / "loras" / "e2e_other_size.safetensors"
    save_file(other, str(path))
    try:
        with pytest.raises(ValueError) as e:
            if node == "style":
                run(loaders.VideoPainterStyleLora, model=loaded.model, lora_name="loras/e2e_other_size.safetensors")
            else:
                (with_branch,) = run(loaders.VideoPainterApplyBranch, model=loaded.model, branch=loaded.branch)
                run(loaders.VideoPainterApplyIDLora, model=with_branch, lora_name="loras/e2e_other_size.safetensors")
    finally:
        path.unlink()
    assert str(e.value) == msg("lora_other_size", demo_models)
