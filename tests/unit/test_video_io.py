"""Frames read lazily from video files (vp_core.video.video_io, vp_core.pipeline.clip_inputs): frame-rate sampling at decode time,
reads that overlap or go back, and the streamed encoder inputs equal to the in-memory IMAGE/MASK path."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from videopainter.vp_core.pipeline import clip_inputs, preprocess

from videopainter.vp_core.video import video_io

import make_sample_clip  # noqa: E402

FRAMES, W, H, FPS = 45, 96, 80, 24


def write_ffv1(path: Path, frames: np.ndarray, fps: int = FPS) -> Path:
    return make_sample_clip.write_mp4(path, frames, fps, codec="ffv1")


class FileVideo:
    """The part of core's VIDEO the encoder uses: a file to stream from."""

    def __init__(self, path: Path):
        self.path = str(path)

    def get_stream_source(self):
        return self.path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    video, mask = make_sample_clip.sample_frames(FRAMES, W, H)
    return video, mask, write_ffv1(d / "v.mkv", video), write_ffv1(d / "m.mkv", mask)


def test_sampling_happens_at_decode_time_and_skipped_frames_are_not_converted(clip):
    video, _, path, _ = clip
    src = video_io.FileSource(str(path), step=3, skip_first=2, cap=0)
    assert len(src) == 15 and src.fps == 8
    got = src.read(0, len(src))
    assert np.array_equal(got.numpy(), video[2::3])
    assert src.converted == 15 and src.decoded == 2 + 3 * 14 + 1
    capped = video_io.FileSource(str(path), step=3, cap=4)
    assert len(capped) == 4 and np.array_equal(capped.read(0, 4).numpy(), video[0:12:3])


def test_overlapping_windows_decode_each_frame_once_and_going_back_is_exact(clip):
    video, _, path, _ = clip
    src = video_io.FileSource(str(path))
    a, b = src.read(0, 17), src.read(16, 33)  # windows sharing one frame
    assert src.decoded == 33 and np.array_equal(torch.cat([a, b[1:]]).numpy(), video[:33])
    assert np.array_equal(src.read(2, 5).numpy(), video[2:5])  # behind the kept frames: the file is read again
    assert src.decoded == 33 + 5


def test_reads_past_the_end_repeat_the_last_frame(clip):
    video, _, path, _ = clip
    src = video_io.FileSource(str(path))
    assert np.array_equal(video_io.read_frames(src, 40, 48).numpy(), video[[40, 41, 42, 43, 44, 44, 44, 44]])
    assert np.array_equal(video_io.read_frames(src, 46, 48).numpy(), video[[44, 44]])
    tensor = torch.from_numpy(video)
    assert torch.equal(video_io.read_frames(tensor, 46, 48), tensor[[44, 44]])


@pytest.mark.parametrize("resize_mode, first_gt, with_first", [("stretch", True, False), ("center_crop", False, False),
                                                               ("stretch", True, True), ("stretch", False, True)])
def test_streamed_inputs_equal_the_image_mask_path(clip, resize_mode, first_gt, with_first):
    video, mask, vpath, mpath = clip
    first = torch.rand(1, H, W, 3) if with_first else None
    common = dict(width=64, height=32, dilate_size=5, first_frame_gt=first_gt, resize_mode=resize_mode)
    s = clip_inputs.ClipSettings(0.0, 8.0, skip_first_frames=1, frame_load_cap=12, mask_channel="red", threshold=0.5)
    job = clip_inputs.prepare(FileVideo(vpath), FileVideo(mpath), first, s, **common)
    images = torch.from_numpy(video).float() / 255.0
    masks = torch.from_numpy(mask).float() / 255.0
    ref = clip_inputs.prepare(images, masks, first, clip_inputs.ClipSettings(FPS, 8.0, 1, 12), **common)
    assert job.streamed and not ref.streamed and job.frame_count == ref.frame_count == 12 and job.fps == ref.fps == 8
    n = ref.frame_count
    for a, b in ((job.pipeline.video, ref.pipeline.video), (job.pipeline.masks, ref.pipeline.masks),
                 (job.frames, ref.frames), (job.hole, ref.hole)):
        got = torch.cat([video_io.read_frames(a, i, i + 5) for i in range(0, n + 3, 5)])[: n + 3]
        assert torch.equal(got, video_io.read_frames(b, 0, n + 3))
    if with_first:
        assert torch.equal(job.pipeline.image, ref.pipeline.image)
    else:  # no first frame: no I2V image on either path (window 0 gets a zero image latent)
        assert job.pipeline.image is None and ref.pipeline.image is None


def test_a_mask_batch_with_a_video_is_sampled_like_the_video(clip):
    video, mask, vpath, _ = clip
    masks = torch.from_numpy(mask).float() / 255.0
    job = clip_inputs.prepare(FileVideo(vpath), masks, None, clip_inputs.ClipSettings(), width=64, height=32)
    assert torch.equal(job.hole.read(0, len(job.hole)), (masks[::3] > 0.5).to(torch.uint8) * 255)
    with pytest.raises(ValueError, match="mask has 40 frames but video has 45: give one mask per frame"):
        clip_inputs.prepare(FileVideo(vpath), masks[:40], None, clip_inputs.ClipSettings(), width=64, height=32)


def test_mask_video_of_another_length_is_refused_with_the_numbers(clip, tmp_path):
    _, mask, vpath, _ = clip
    short = FileVideo(write_ffv1(tmp_path / "short.mkv", mask[:30]))
    # compared before frame-rate sampling (issue #26 item 2): 30 and 45 source frames, not 10 and 15 sampled
    with pytest.raises(ValueError, match=r"^mask: the mask video has 30 frames but the video has 45 \(both before "):
        clip_inputs.prepare(FileVideo(vpath), short, None, clip_inputs.ClipSettings(), width=64, height=32)


def test_frame_step_is_the_reference_rule():
    assert preprocess.frame_step(29.97, 8.0) == 3 and preprocess.frame_step(24, 8) == 3
    assert preprocess.frame_step(8, 8) == 1 and preprocess.frame_step(0, 8) == 1 and preprocess.frame_step(5, 8) == 1


@pytest.mark.parametrize("size", [2, 3, 4, 32, 33, 49])
def test_dilate_is_the_opencv_anchored_square(size):
    """Running maxima (scipy) equal a padded max-pool with cv2.dilate's anchor, for binary and soft masks."""
    lo, hi = size // 2, size - 1 - size // 2
    g = torch.Generator().manual_seed(size)
    for masks in ((torch.rand(3, 37, 53, generator=g) > 0.97).to(torch.uint8) * 255, torch.rand(2, 21, 19, generator=g)):
        x = torch.nn.functional.pad(masks[:, None].float(), (lo, hi, lo, hi), value=float("-inf"))
        x = torch.nn.functional.max_pool2d(torch.nn.functional.max_pool2d(x, (size, 1), stride=1), (1, size), stride=1)
        assert torch.equal(preprocess.dilate(masks, size), x[:, 0].to(masks.dtype))


# ------------------------------------------------------------------------------------------- one probe per file


@pytest.fixture
def opens(monkeypatch):
    """How many times a file is opened through ``video_io._opener`` (the probe's and the readers' one way in)."""
    count = {"n": 0}
    real = video_io._opener

    def counting(source):
        open_ = real(source)
        return lambda: count.__setitem__("n", count["n"] + 1) or open_()

    monkeypatch.setattr(video_io, "_opener", counting)
    return count


def test_an_unchanged_file_is_probed_once_and_a_rewritten_one_again(tmp_path, opens):
    frames = make_sample_clip.sample_frames(6, 32, 16)[0]
    path = write_ffv1(tmp_path / "v.mkv", frames)
    first = video_io.probe(str(path), name="video")
    assert video_io.probe(path, name="mask") == first and opens["n"] == 1  # any name, str or Path: one open
    assert video_io.FileSource(str(path)).info == first and opens["n"] == 1  # a reader's own probe too
    trimmed = video_io.probe(str(path), (0.1, 0.0))  # another trim window is another question
    assert opens["n"] == 2 and 0 < trimmed.frames < first.frames
    write_ffv1(tmp_path / "v.mkv", frames[:4])  # rewritten in place: another size and mtime
    assert video_io.probe(str(path)).frames == 4 and opens["n"] == 3
    data = path.read_bytes()
    video_io.probe(data), video_io.probe(data)  # in-memory files are not kept: probed each time
    assert opens["n"] == 5


def test_failures_are_not_cached_and_name_the_input_each_time(tmp_path, opens):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    for name in ("video", "mask", "video"):
        with pytest.raises(ValueError, match=rf"^{name}: cannot read the video file \("):
            video_io.probe(str(bad), name=name)
    assert opens["n"] == 3
    write_ffv1(bad, make_sample_clip.sample_frames(3, 32, 16)[0])  # fixed: read now
    assert video_io.probe(str(bad)).frames == 3
