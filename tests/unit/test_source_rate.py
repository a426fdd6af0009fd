"""The source-rate composite (vp_core.pipeline.source_rate) on a known scene, no model: the "generated" frames are
the true frames at the sampled times (every 3rd). Every source frame comes out, the source's bytes outside each
frame's own dilated hole, and the in-between frames' holes close to the truth (the right pair, the right time)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import make_sample_clip
from videopainter.vp_core.pipeline import composite, source_rate
from videopainter.vp_core.video.video_io import TensorSource

from test_interpolate import H, W, STEP, texture, scene

DILATE, FEATHER = 4, 2


def clip(n: int):
    bg, patch = texture(H, W, 1), texture(96, 128, 2)
    frames, holes = zip(*(scene(t, bg, patch) for t in range(n)))
    return np.stack(frames), np.stack(holes)


def run(frames: np.ndarray, holes: np.ndarray, generated: torch.Tensor, space: int) -> torch.Tensor:
    src = TensorSource(torch.from_numpy((frames * 255).round().astype(np.uint8)))
    hole = TensorSource(torch.from_numpy(holes.astype(np.uint8) * 255))
    timeline = source_rate.SourceTimeline(src, hole, STEP, 30)
    chunks = source_rate.composited_chunks(timeline, lambda: iter(generated.split(4)), space, DILATE, FEATHER)
    return torch.cat(list(chunks()))


def psnr(a, b) -> float:
    return float(-10 * np.log10(((a - b) ** 2).mean()))


def test_every_source_frame_exact_outside_its_hole_and_interpolated_inside():
    n = 5 * STEP - 1  # 5 sampled frames (0, 3, ..., 12) and 2 frames after the last one
    frames, holes = clip(n)
    truth8 = (frames * 255).round().astype(np.uint8)
    generated = torch.from_numpy(frames[::STEP].copy())
    out = run(frames, holes, generated, STEP)
    assert out.shape == (n, H, W, 3)
    got = (out * 255).clamp(0, 255).byte().numpy()
    grown = composite.dilate_masks(torch.from_numpy(holes).to(torch.uint8) * 255, 2 * (DILATE + FEATHER + 1) + 1)
    outside = ~(grown > 0).numpy()
    assert all(np.array_equal(got[t][outside[t]], truth8[t][outside[t]]) for t in range(n))
    between = [t for t in range(n) if t % STEP]
    nearest = np.stack([frames[min(round(t / STEP), 4) * STEP] for t in between])
    inside = holes[between]
    flow_db = psnr(out.numpy()[between][inside], frames[between][inside])
    held_db = psnr(nearest[inside], frames[between][inside])
    assert flow_db >= held_db + 6, (flow_db, held_db)


def test_generated_frames_at_the_source_rate_are_used_as_they_are():
    n = 4 * STEP
    frames, holes = clip(n)
    generated = torch.from_numpy(frames[: 3 * STEP + 1].copy())  # (4 - 1) * 3 + 1 frames: an interpolator's output
    out = run(frames, holes, generated, 1).numpy()
    inside = holes[: 3 * STEP + 1]
    assert np.abs(out[: 3 * STEP + 1][inside] - frames[: 3 * STEP + 1][inside]).max() < 1e-6


@pytest.mark.parametrize("count, message", [(3, "generated ends at source frame 6, 5 source frames before the clip's end"),
                                            (6, "more frames than the clip's 12 source frames need")])
def test_too_few_or_too_many_generated_frames_are_an_error(count, message):
    frames, holes = clip(4 * STEP)
    with pytest.raises(ValueError, match=message):
        run(frames, holes, torch.from_numpy(frames[:count].copy()), STEP)


def test_spacing_names_what_it_expects():
    timeline = source_rate.SourceTimeline(TensorSource(torch.zeros(60, 4, 4, 3, dtype=torch.uint8)),
                                          TensorSource(torch.zeros(60, 4, 4, dtype=torch.uint8)), 3, 30)
    assert [source_rate.spacing(timeline, 20, g) for g in (20, 58, 60)] == [3, 1, 1]
    with pytest.raises(ValueError, match=r"generated has 30 frames; .* \(58 from an interpolator run on them with "
                                         r"multiplier 3, or 60\)"):
        source_rate.spacing(timeline, 20, 30)


def test_a_part_has_the_source_frames_of_its_sampled_frames():
    """parts.cut_part: sampled frames start..end-1 are source frames start*step.. (the last part to the clip's end)."""
    frames = torch.arange(59, dtype=torch.uint8)[:, None, None, None].expand(59, 2, 2, 3)
    timeline = source_rate.SourceTimeline(TensorSource(frames), TensorSource(frames[..., 0]), 3, 30)
    first, last = timeline.part(0, 9, last=False), timeline.part(8, 20, last=True)
    assert len(first) == 27 and int(first.frames.read(26, 27)[0, 0, 0, 0]) == 26
    assert len(last) == 59 - 24 and int(last.frames.read(0, 1)[0, 0, 0, 0]) == 24


@pytest.mark.parametrize("step", [3, 12])  # 12: a sampled period longer than a reader keeps (video_io.KEEP_FRAMES)
def test_crop_mode_decodes_each_source_frame_once(tmp_path, monkeypatch, step):
    """Crop mode at the source rate: the generated boxes are placed over their source frames and every source frame
    is pasted, from ONE reader that decodes each source frame once, in order."""
    import av

    from videopainter.vp_core.pipeline import crop
    from videopainter.vp_core.video import video_io

    n = 4 * step + 1
    frames, holes = clip(n)
    frames8 = (frames * 255).round().astype(np.uint8)
    path = tmp_path / "v.mkv"
    with av.open(str(path), mode="w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=30)
        s.width, s.height, s.pix_fmt = W, H, "bgr0"
        for f in frames8:
            for packet in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    readers = []
    reopen = video_io.FileSource.reopen
    monkeypatch.setattr(video_io.FileSource, "reopen", lambda self: readers.append(reopen(self)) or readers[-1])
    timeline = source_rate.SourceTimeline(video_io.FileSource(str(path)),
                                          TensorSource(torch.from_numpy(holes.astype(np.uint8) * 255)), step, 30)
    plan = crop.CropPlan((H, W), (60, 90), (120, 180), ((20, 30),) * 5, crop.FIXED)
    generated = torch.from_numpy(frames8[::step, 20:140, 30:210].copy()).float() / 255  # the boxes, at box size
    chunks = source_rate.composited_chunks(timeline, lambda: iter(generated.split(2)), step, DILATE, FEATHER,
                                           crop=plan)
    out = torch.cat(list(chunks()))
    assert out.shape == (n, H, W, 3)
    assert len(readers) == 1 and readers[0].decoded == n and readers[0].converted == n
    # the boxes are the source's own pixels: every sampled frame comes back as it was
    assert np.array_equal((out[::step] * 255).round().byte().numpy(), frames8[::step])


def test_a_still_mask_video_is_decoded_and_logged_once(tmp_path, caplog, monkeypatch):
    """The encoder's sampled holes and the source-rate timeline's holes come from one check of the mask video: a
    still mask is decoded once (and logged once) for both."""
    import logging

    from videopainter.vp_core.pipeline import clip_inputs
    from videopainter.vp_core.video import video_io

    class FileVideo:
        def __init__(self, path):
            self.path = str(path)

        def get_stream_source(self):
            return self.path

    rng = np.random.default_rng(0)
    make_sample_clip.write_mp4(tmp_path / "v.mkv", rng.integers(0, 256, (12, 32, 48, 3), dtype=np.uint8), 24,
                               codec="ffv1")
    still = np.zeros((1, 32, 48, 3), np.uint8)
    still[:, 8:20, 10:30] = 255
    make_sample_clip.write_mp4(tmp_path / "m.mkv", still, 24, codec="ffv1")
    made = []
    init = video_io.FileSource.__init__

    def counting(self, source, *a, **k):
        init(self, source, *a, **k)
        if str(source).endswith("m.mkv"):
            made.append(self)

    monkeypatch.setattr(video_io.FileSource, "__init__", counting)
    settings = clip_inputs.ClipSettings(target_fps=8.0, output_rate="source")
    with caplog.at_level(logging.INFO):
        job = clip_inputs.prepare(FileVideo(tmp_path / "v.mkv"), FileVideo(tmp_path / "m.mkv"), None, settings,
                                  width=48, height=32, dilate_size=3)
    assert caplog.text.count("the mask video has 1 frame") == 1
    assert len(made) == 1 and made[0].decoded == 1
    assert len(job.source.hole) == 12 and len(job.hole) == 4  # every source frame, and the sampled ones (step 3)
    want = torch.from_numpy(still[0, ..., 0])
    assert torch.equal(video_io.read_frames(job.source.hole, 11, 12)[0], want)
    assert torch.equal(video_io.read_frames(job.hole, 3, 4)[0], want)
