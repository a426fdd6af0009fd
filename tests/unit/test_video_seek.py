"""Seeking in the streaming reader (vp_core.video.video_seek, video_io.FileSource): only to keyframes after which decoding
gives exactly the frames of decoding from the start (H.264 IDR, HEVC IRAP, FFV1 keyframes, intra-only streams), and a
read there equals the sequential read bit for bit, with frame-rate sampling, skipped frames and a trim window; the
mask preview of a long clip decodes a fraction of it."""
from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from videopainter.vp_core.pipeline import clip_inputs, preprocess

from videopainter.vp_core.video import video_io

import make_sample_clip  # noqa: E402

T, W, H, FPS = 150, 64, 48, 24
CODECS = {  # name: (codec, pix_fmt, options, container)
    "h264": ("libx264", "yuv420p", {"x264-params": "keyint=16:min-keyint=16:bframes=3:scenecut=0"}, "mp4"),
    "h264_open_gop": ("libx264", "yuv420p", {"x264-params": "keyint=16:min-keyint=16:bframes=3:scenecut=0:open-gop=1"}, "mp4"),
    "hevc_cra": ("libx265", "yuv420p", {"x265-params": "keyint=16:min-keyint=16:bframes=3:scenecut=0:log-level=none"}, "mp4"),
    "hevc_idr": ("libx265", "yuv420p", {"x265-params": "keyint=16:min-keyint=16:bframes=3:scenecut=0:open-gop=0:log-level=none"}, "mp4"),
    "ffv1": ("ffv1", "bgr0", {"g": "20"}, "mkv"),
    "png": ("png", "rgb24", {}, "mov"),
    "mpeg4": ("mpeg4", "yuv420p", {"g": "16"}, "mp4"),  # keyframes not judged: read from the start
}


def frames() -> np.ndarray:
    """Every frame different everywhere, with motion (inter codecs predict it)."""
    y, x = np.mgrid[0:H, 0:W]
    t = np.arange(T)[:, None, None]
    return np.stack([(x * 3 + t * 5) % 256, (y * 4 + t * 7) % 256, ((x + y) * 2 + t * 11) % 256], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d, out = tmp_path_factory.mktemp("seek"), {}
    for name, (codec, pix_fmt, options, ext) in CODECS.items():
        path = d / f"{name}.{ext}"
        with av.open(str(path), "w") as c:
            s = c.add_stream(codec, rate=FPS)
            s.width, s.height, s.pix_fmt, s.options = W, H, pix_fmt, options
            for f in frames():
                c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            c.mux(s.encode())
        out[name] = str(path)
    return out


def sequential(path: str, **kw) -> video_io.FileSource:
    """The reader without restart points: decodes from the start, the behaviour seeking must reproduce."""
    src = video_io.FileSource(path, **kw)
    src.info = dataclasses.replace(src.info, restarts=())
    return src


@pytest.mark.parametrize("name, want", [("h264", list(range(0, T, 16))), ("h264_open_gop", [0]),
                                        ("hevc_cra", list(range(0, T, 16))),
                                        ("hevc_idr", list(range(0, T, 16))), ("ffv1", list(range(0, T, 20))),
                                        ("png", list(range(T))), ("mpeg4", [])])
def test_restart_points_are_the_keyframes_nothing_after_refers_past(files, name, want):
    info = video_io.probe(files[name])
    assert [index for index, _ in info.restarts] == want


@pytest.mark.parametrize("name", list(CODECS))
@pytest.mark.parametrize("step, skip, trim", [(1, 0, (0.0, 0.0)), (3, 5, (0.0, 0.0)), (2, 1, (1.0, 4.5))])
def test_far_and_backward_reads_equal_the_sequential_read(files, name, step, skip, trim):
    src = video_io.FileSource(files[name], step=step, skip_first=skip, trim=trim)
    want = sequential(files[name], step=step, skip_first=skip, trim=trim).read(0, len(src)).numpy()
    n = len(src)
    for i in [0, n // 3, n - 1, n // 2, 1, n - 2]:  # forward far, then back
        assert np.array_equal(src.read(i, i + 1).numpy()[0], want[i]), (name, i)
    assert np.array_equal(src.read(n // 2, n).numpy(), want[n // 2:])


def test_a_seek_skips_decoding_and_one_that_lands_elsewhere_reads_from_the_start(files, caplog):
    src = video_io.FileSource(files["h264"])
    want = sequential(files["h264"]).read(T - 1, T).numpy()
    assert np.array_equal(src.read(T - 1, T).numpy(), want) and src.decoded == (T - 1) % 16 + 1  # from frame 144
    broken = video_io.FileSource(files["h264"])
    broken.info = dataclasses.replace(broken.info, restarts=tuple((i, p + 1) for i, p in broken.info.restarts))
    with caplog.at_level(logging.INFO):
        assert np.array_equal(broken.read(T - 1, T).numpy(), want)
    assert broken.decoded == T and "landed elsewhere; decoding from the start" in caplog.text


def test_windows_read_in_order_never_seek(files):
    src = video_io.FileSource(files["png"], step=3)  # every frame a restart point, 2 skipped between kept ones
    for a in range(0, len(src), 9):
        src.read(a, min(a + 10, len(src)))
    assert src.decoded == 3 * (len(src) - 1) + 1  # each frame decoded once, in order


class FileVideo:
    def __init__(self, path):
        self.path = str(path)

    def get_stream_source(self):
        return self.path


def test_the_mask_preview_of_a_long_clip_decodes_a_fraction_of_it(tmp_path, monkeypatch):
    video, mask = make_sample_clip.sample_frames(400, 64, 48)
    vpath = make_sample_clip.write_mp4(tmp_path / "v.mp4", video, 24)  # x264 defaults: closed GOP, IDR keyframes
    mpath = make_sample_clip.write_mp4(tmp_path / "m.mkv", mask, 24, codec="ffv1")
    assert video_io.probe(str(vpath)).restarts[1:] or pytest.skip("x264 put no IDR after frame 0 at its defaults")
    job = clip_inputs.prepare(FileVideo(vpath), FileVideo(mpath), None, clip_inputs.ClipSettings(24.0, 8.0),
                              width=64, height=48, dilate_size=4)
    picks = [0, 44, 88, 133]
    before = video_io.DECODE_STATS.frames
    got = list(preprocess.frames_and_holes(job, picks))
    decoded = video_io.DECODE_STATS.frames - before
    monkeypatch.setattr(video_io, "SEEK_GAP", 10**9)  # forward reads never seek: decoded from the start
    before = video_io.DECODE_STATS.frames
    want = list(preprocess.frames_and_holes(job, picks))
    assert video_io.DECODE_STATS.frames - before == 2 * (3 * 133 + 1)  # video and mask up to source frame 399
    for (frame, hole), (want_frame, want_hole) in zip(got, want):
        assert np.array_equal(frame.numpy(), want_frame.numpy()) and np.array_equal(hole.numpy(), want_hole.numpy())
    assert decoded < (3 * 133 + 1), decoded
