"""Parts cut in the sampled timeline (vp_core.pipeline.parts): each part is windows of the one-run plan; cuts that could not
join exactly are refused with the numbers. (That chained parts equal one run is tested through the server in
tests/e2e/test_id_state_e2e.py, on the parts workflow that uses this cut.)"""
from __future__ import annotations

import pytest
import torch

from videopainter.vp_core.pipeline import parts, preprocess

from videopainter.vp_core.video import video_io


def encoded(frames: int, source_fps: float = 0.0):
    g = torch.Generator().manual_seed(0)
    video = torch.rand(frames, 32, 48, 3, generator=g)
    mask = (torch.rand(frames, 32, 48, generator=g) > 0.7).float()
    return preprocess.prepare_inpaint(video, mask, None, width=48, height=32, source_fps=source_fps, dilate_size=3)


def test_parts_are_windows_of_the_sampled_timeline():
    job = encoded(147, source_fps=24.0)  # every 3rd frame: 49 sampled frames -> windows at 0, 16, 32
    first, text0 = parts.cut_part(job, 17, 1, "fixed", 2, 0)
    second, text1 = parts.cut_part(job, 17, 1, "fixed", 2, 1)
    assert (first.frame_count, second.frame_count) == (33, 17)  # part 2 starts on part 1's last frame
    assert torch.equal(first.pipeline.video, job.pipeline.video[:33]) and first.pipeline.image is job.pipeline.image
    assert torch.equal(second.pipeline.masks, job.pipeline.masks[32:])
    assert second.pipeline.image is None  # a continued part: no I2V image, its latent comes from the ID state
    assert second.window_settings == (17, 1, "fixed") and "sampled frames 32..48" in text1 and "windows 2..2" in text1


def test_a_cut_that_cannot_join_is_refused_with_the_numbers():
    job = encoded(41)  # windows at 0, 16 and an end-aligned one at 24
    with pytest.raises(ValueError, match=r"part 1: sampled frames 24\.\.40 \(windows 2\.\.2 of 3\) cannot be joined "
                                         r"exactly .*continues latent 2 of the window before, a chained part always "
                                         r"continues latent 4"):
        parts.cut_part(job, 17, 1, "fixed", 2, 1)
    with pytest.raises(ValueError, match=r"part: the clip has 3 windows, 2 part\(s\) of 2 window\(s\) \(0\.\.1\); got 2"):
        parts.cut_part(job, 17, 1, "fixed", 2, 2)


def test_streamed_parts_read_only_their_frames():
    job = encoded(49)
    src = video_io.TensorSource(job.frames)
    streamed = preprocess.InpaintInput(preprocess.PipelineInputs(video_io.TensorSource(job.pipeline.video),
                                                                 video_io.TensorSource(job.pipeline.masks),
                                                                 job.pipeline.image), src, src, 32, 48, 8.0)
    second, _ = parts.cut_part(streamed, 17, 1, "fixed", 2, 1)
    assert torch.equal(video_io.read_frames(second.pipeline.video, 0, 20), video_io.read_frames(job.pipeline.video[32:], 0, 20))


def test_the_sampler_refuses_other_window_settings_than_the_cut():
    part, _ = parts.cut_part(encoded(49), 17, 1, "fixed", 2, 1)
    with pytest.raises(ValueError, match="this part was cut for windows of 17 frames, overlap 1, mode 'fixed', but the "
                                         "sampler uses 33, 1, 'fixed'"):
        parts.check_window_settings(part, 33, 1, "fixed")
