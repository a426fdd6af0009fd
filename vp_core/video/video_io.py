"""Frames read lazily, window by window: the clip never has to be in memory as a whole.

A ``FrameSource`` is the frame-rate *sampled* timeline of a clip: ``len(src)`` sampled frames, ``src.read(a, b)``
returns frames ``a..b-1`` as ``uint8 [n, H, W, C]`` (``C`` = 3 for video; masks are ``[n, H, W]``).

- ``FileSource`` decodes a video file with PyAV: frames are decoded in order, and only the kept ones (every
  ``step``-th after ``skip_first``, at most ``cap``) are converted to RGB, at once as uint8. Reading goes forward; the
  last 16 sampled frames are kept, so consecutive windows that share frames (the overlap) do not decode them twice.
  A read before the cursor and outside those reopens the file (sequential decoding is exact on any codec; seeking by
  timestamp is not frame-exact on every file), or, where the file has a keyframe after which decoding is exactly
  decoding from the start (H.264 IDR, HEVC IRAP, FFV1 and intra-only keyframes: ``video_seek``), seeks to the last such
  keyframe before the frame; so does a read far ahead of the decoder (the mask preview's few frames of a long clip).
- ``TensorSource`` is the same interface over an IMAGE/MASK batch already in memory (short clips, masks made by
  other nodes).
- ``Mapped`` applies a per-frame function (crop, mask threshold, masking, dilation) on the fly, which is exact
  window by window because every pre-processing step of the reference works frame by frame.
"""
from __future__ import annotations

import functools
import io
import itertools
import logging
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator, Union

import av
import numpy as np
import torch
from torch import Tensor

from . import video_seek

log = logging.getLogger(__name__)

Source = Union[str, io.BytesIO, bytes]


@dataclass
class DecodeStats:
    """Process-wide: source frames decoded and the seconds spent decoding/converting them (for the benchmarks)."""

    frames: int = 0
    seconds: float = 0.0


DECODE_STATS = DecodeStats()


# Pixel formats core's reader converts straight to rgb24 on every host (ComfyUI 0.2x's list); it reads every other
# format (yuv420p H.264, bgr0 FFV1, ...) through 32-bit float RGB there, and through rgb24 on 0.3.75.
_RGB24_ON_EVERY_HOST = frozenset({"yuvj420p", "yuvj422p", "yuvj444p", "rgb24", "rgba", "pal8"})


@functools.cache
def host_reads_in_float() -> bool:
    """Whether the running ComfyUI's own reader (Load Video -> Get Video Components) converts frames of the other
    formats through ``gbrpf32le`` (ComfyUI 0.2x) rather than ``rgb24`` (0.3.75). The two conversions differ by up to
    ~80/255 at sharp chroma edges, so the VIDEO path asks the host, once, on a 1-frame yuv420p clip, and converts the
    way it does: a VIDEO and the IMAGE batch core decodes from it then give the same pixels. False without a host."""
    try:
        from comfy_api.v0_0_2 import InputImpl
    except ImportError:
        return False
    y, x = np.mgrid[0:32, 0:64]
    rgb = np.stack([(x % 16 < 8) * 255, (y % 8 < 4) * 200, 40 + x], -1).astype(np.uint8)  # sharp chroma edges
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=8)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        for packet in [*s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")), *s.encode()]:
            c.mux(packet)
    with av.open(io.BytesIO(buf.getvalue())) as c:
        direct = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
    core = InputImpl.VideoFromFile(io.BytesIO(buf.getvalue())).get_components().images[0].float().numpy() * 255
    return not np.allclose(core, direct, atol=1e-2)


def quarter_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns that show a frame upright, from its display rotation (PyAV's
    ``VideoFrame.rotation``: degrees counter-clockwise, as players apply it); ``rotation // 90`` as ComfyUI 0.2x's
    own reader turns frames (a display matrix's mirror flips are ignored there too)."""
    return int(rotation // 90) % 4


def upright(img: np.ndarray, rotation: float) -> np.ndarray:
    """A decoded frame ``[H, W, ...]`` turned upright by its display rotation (``quarter_turns``)."""
    turns = quarter_turns(rotation)
    return np.ascontiguousarray(np.rot90(img, k=turns)) if turns else img


def to_rgb24(frame: av.VideoFrame) -> np.ndarray:
    """One decoded frame, upright (turned by its display rotation, see ``quarter_turns``), as ``uint8 [H, W, 3]``.

    YUV and gray frames are converted as the host's own reader converts them (see ``host_reads_in_float``), the
    float path rounded to the nearest uint8 (within 1/510 of core's float IMAGE). RGB frames (lossless FFV1
    ``bgr0``, PNG sequences, ...) keep the file's bytes on every host: swscale's 8-bit RGB -> float conversion reads
    up to 0.98/255 dark, so there this path is exact where core 0.2x is not."""
    rotation = frame.rotation  # before any padding: a filtered frame need not keep the display matrix
    if frame.format.name in _RGB24_ON_EVERY_HOST or frame.format.is_rgb or not host_reads_in_float():
        img = frame.to_ndarray(format="rgb24")
    else:
        h, w = frame.height, frame.width
        if w % 32:  # padded like core pads (swscale's float path is not deterministic on other widths), then cropped
            frame = _padded(frame)
        img = np.clip(np.rint(frame.to_ndarray(format="gbrpf32le")[:h, :w] * 255.0), 0, 255).astype(np.uint8)
    return upright(img, rotation)


def _padded(frame: av.VideoFrame) -> av.VideoFrame:
    """``frame`` padded to a multiple of 32 both ways with its border smeared outwards (the caller crops it back)."""
    pw, ph = -(-frame.width // 32) * 32, -(-frame.height // 32) * 32
    g = av.filter.Graph()
    src = g.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                       time_base=frame.time_base or Fraction(1, 1))
    pad = g.add("pad", f"{pw}:{ph}:0:0")
    fill = g.add("fillborders", f"left=0:right={pw - frame.width}:top=0:bottom={ph - frame.height}:mode=smear")
    sink = g.add("buffersink")
    src.link_to(pad)
    pad.link_to(fill)
    fill.link_to(sink)
    g.configure()
    src.push(frame)
    return sink.pull()


class FrameSource:
    """Sampled frames of a clip, read by index range (see the module docstring)."""

    height: int
    width: int

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, start: int, end: int) -> Tensor:
        raise NotImplementedError

    def reopen(self) -> "FrameSource":
        """A reader of the same frames with its own position (stateless sources return themselves)."""
        return self

    def close(self) -> None:
        """Release decoders and kept frames (a later read opens the file again)."""


Frames = Union[Tensor, FrameSource]


def read_frames(src: Frames, start: int, end: int) -> Tensor:
    """Frames ``start..end-1`` of a tensor or a source; indices past the clip repeat its last frame (the fixed
    window mode's padding)."""
    n = len(src)
    if isinstance(src, Tensor):
        return src[torch.arange(start, end).clamp(max=n - 1)]
    if end <= n:
        return src.read(start, end)
    got = src.read(min(start, n - 1), n)
    pad = got[-1:].expand(end - max(start, n), *got.shape[1:])
    return pad.clone() if start >= n else torch.cat([got, pad])


def frame_size(src: Frames) -> tuple[int, int]:
    """(height, width) of a source's frames."""
    return (src.shape[1], src.shape[2]) if isinstance(src, Tensor) else (src.height, src.width)


def video_frame(source: Source, index: int, name: str = "video",
                trim: tuple[float, float] = (0.0, 0.0), index_name: str = "index") -> Tensor:
    """Frame ``index`` (counted from the ``trim`` start) of a file as uint8 ``[H, W, 3]``, converted as the host
    converts (``to_rgb24``); frames before it are decoded, not converted. ``index_name``: the input that gave it."""
    src = FileSource(source, name=name, trim=trim)
    try:
        if len(src) == 0:
            raise ValueError(f"{name}: the clip has 0 frames; load a video with at least 1 frame")
        if not 0 <= index < len(src):
            raise ValueError(f"{index_name}: the {name} has {len(src)} frames (0..{len(src) - 1}); got {index}")
        return src.read(index, index + 1)[0]
    finally:
        src.close()


def reader(src: Frames) -> Frames:
    """A reader of ``src`` with its own position (a tensor is its own reader)."""
    return src if isinstance(src, Tensor) else src.reopen()


# --------------------------------------------------------------------------------------------------- sources


class TensorSource(FrameSource):
    """A uint8 (or float, converted by ``convert``) batch as a source; a single frame is broadcast to ``count``."""

    def __init__(self, frames: Tensor, convert: Callable[[Tensor], Tensor] | None = None, count: int | None = None):
        self.frames, self.convert = frames, convert
        self.count = count if count is not None else frames.shape[0]
        self.height, self.width = frames.shape[1], frames.shape[2]

    def __len__(self) -> int:
        return self.count

    def read(self, start: int, end: int) -> Tensor:
        idx = torch.arange(start, end)
        x = self.frames[idx.clamp(max=self.frames.shape[0] - 1)] if self.frames.shape[0] > 1 else self.frames[[0] * len(idx)]
        return self.convert(x) if self.convert is not None else x


class Mapped(FrameSource):
    """``fn(frames, start)`` applied to each block read from ``src`` (``start`` = index of its first frame)."""

    def __init__(self, src: FrameSource, fn: Callable[[Tensor, int], Tensor], height: int | None = None,
                 width: int | None = None):
        self.src, self.fn = src, fn
        self.height = height if height is not None else src.height
        self.width = width if width is not None else src.width

    def __len__(self) -> int:
        return len(self.src)

    def reopen(self) -> "Mapped":
        return Mapped(self.src.reopen(), self.fn, self.height, self.width)

    def close(self) -> None:
        self.src.close()

    def read(self, start: int, end: int) -> Tensor:
        return self.fn(self.src.read(start, end), start)


class Slice(FrameSource):
    """Frames ``start..end-1`` of ``src`` (a part of a clip)."""

    def __init__(self, src: FrameSource, start: int, end: int):
        self.src, self.start, self.end = src, start, end
        self.height, self.width = src.height, src.width

    def __len__(self) -> int:
        return self.end - self.start

    def reopen(self) -> "Slice":
        return Slice(self.src.reopen(), self.start, self.end)

    def close(self) -> None:
        self.src.close()

    def read(self, start: int, end: int) -> Tensor:
        return self.src.read(self.start + start, self.start + end)


def close(src: Frames) -> None:
    """``src.close()`` for a source (a tensor holds no decoder)."""
    if isinstance(src, FrameSource):
        src.close()


def slice_frames(src: Frames, start: int, end: int) -> Frames:
    return src[start:end] if isinstance(src, Tensor) else Slice(src, start, end)


# ------------------------------------------------------------------------------------------------ video files


def _opener(source: Source) -> Callable[[], av.container.InputContainer]:
    """A function that opens ``source`` afresh each time (in-memory files get their own reader each)."""
    if isinstance(source, io.BytesIO):
        source = source.getvalue()
    if isinstance(source, bytes):
        data = source
        return lambda: av.open(io.BytesIO(data), mode="r")
    return lambda: av.open(source, mode="r")


@dataclass(frozen=True)
class VideoInfo:
    """What a file says about its first video stream (``frames`` counted from its packets). ``width`` x ``height``
    is the size of the frames ``read`` returns: upright, so swapped from the stored size when the display rotation
    (``rotation``, degrees counter-clockwise) is a quarter turn."""

    frames: int
    fps: Fraction
    width: int
    height: int
    has_audio: bool
    rotation: int = 0
    restarts: tuple[tuple[int, int], ...] = ()  # (frame index, pts) of keyframes a reader may seek to (video_seek)


def probe(source: Source, trim: tuple[float, float] = (0.0, 0.0), name: str = "video") -> VideoInfo:
    """Frame count (packets of the video stream inside the trim window), frame rate, upright size and display
    rotation of a file. Only the first frame is decoded (the display rotation comes with the decoded frames).

    A job asks this of each file several times (encoder, first frame, readers, composite, preview): a file on disk
    is probed once per (path, inode, size, mtime, trim), so a rewritten file is probed again. Failures are not
    cached, and name the input (``name``) that gave the file."""
    try:
        key = _file_key(source)
        return _probe_file(*key, tuple(trim)) if key is not None else _probe(source, tuple(trim))
    except _Unreadable as e:
        raise ValueError(f"{name}: {e}") from e.__cause__


class _Unreadable(Exception):
    """Why a file cannot be probed, without the input's name (``probe`` adds it)."""


def _file_key(source: Source) -> tuple[str, int, int, int] | None:
    """(resolved path, inode, size, mtime_ns) of a file on disk; None for an in-memory file or a missing path (then
    opening it reports the error)."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    try:
        st = os.stat(source)
    except OSError:
        return None
    return os.path.realpath(source), st.st_ino, st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _probe_file(path: str, inode: int, size: int, mtime_ns: int, trim: tuple[float, float]) -> VideoInfo:
    """``_probe`` of a file on disk; the file's identity is in the arguments so a changed file misses the cache."""
    return _probe(path, trim)


def _probe(source: Source, trim: tuple[float, float]) -> VideoInfo:
    try:
        with _opener(source)() as c:
            if not c.streams.video:
                raise _Unreadable("the file has no video stream; load a video file")
            s = c.streams.video[0]
            fps = Fraction(s.average_rate) if s.average_rate else (Fraction(s.guessed_rate) if s.guessed_rate else Fraction(0))
            lo, hi = _trim_pts(s, trim)
            n, rotation, restarts = 0, None, video_seek.RestartPoints(s, lo, hi)
            total, ends = 0, {}  # video packets in the whole file; where each stream's packets end (seconds)
            for p in c.demux():  # every stream: a longer audio track is not mistaken for a cut-off video
                if p.pts is not None and p.size > 0:
                    ends[p.stream.index] = max(ends.get(p.stream.index, 0.0), float((p.pts + (p.duration or 0)) * p.time_base))
                if p.stream.index != s.index:
                    continue
                total += p.size > 0
                restarts.add(p)
                if rotation is None and p.size > 0:
                    try:
                        rotation = next((f.rotation for f in p.decode()), None)
                    except av.error.InvalidDataError:  # a damaged first packet: the next frame tells
                        pass
                n += p.pts is not None and p.size > 0 and lo <= p.pts < hi
            _check_complete(c, s, fps, total, ends)
            rotation = int(rotation or 0)
            w, h = s.codec_context.width, s.codec_context.height
            if quarter_turns(rotation) % 2:
                w, h = h, w
            return VideoInfo(n, fps, w, h, bool(c.streams.audio), rotation, restarts.points())
    except av.FFmpegError as e:
        raise _Unreadable(f"cannot read the video file ({e}); check that it is a video PyAV/FFmpeg can open (a download or "
                         "copy that was cut off reads like this too: get it again)") from e


def _check_complete(c, s, fps: Fraction, total: int, ends: dict[int, float]) -> None:
    """A file whose packets stop short of what its container promises (its frame count, or its duration by more
    than 2 frames and 2 %) was cut off (an interrupted download or copy): name it as truncated, with the remedy."""
    start = min((float(x.start_time * x.time_base) for x in c.streams if x.start_time is not None), default=0.0)
    end = max(ends.values(), default=0.0) - start
    duration = c.duration / av.time_base if c.duration else 0.0
    short = total < s.frames or (fps > 0 and duration - end > max(2 / float(fps), 0.02 * duration))
    if short:
        promised = s.frames or round(duration * float(fps))
        raise _Unreadable(
            f"the file is truncated: its container promises {promised} frames ({duration:.2f} s) but only {total} "
            f"are in it (up to {end:.2f} s); the download or copy was cut off. Download or copy it again (or, to use "
            "the frames that are there, re-encode it: ffmpeg -i in.mp4 -c:v libx264 out.mp4)"
        )


def _trim_pts(stream, trim: tuple[float, float]) -> tuple[float, float]:
    start, duration = trim
    if not start and not duration:
        return float("-inf"), float("inf")
    tb = float(stream.time_base)
    first = (stream.start_time or 0) * tb
    lo = (first + start) / tb
    return lo, ((first + start + duration) / tb) if duration else float("inf")


SEEK_GAP = 48  # source frames: a restart point at least this far ahead of the decoder is sought, not decoded up to
KEEP_FRAMES = 8  # sampled frames a reader keeps (6 MB each at 1080p RGB): covers the windows' overlap (default 1)
DECODE_THREADS = 2


class FileSource(FrameSource):
    """The sampled frames of a video file (see the module docstring).

    Parameters:
        source: a path or an in-memory file (what core's ``VIDEO.get_stream_source()`` returns).
        step: keep every ``step``-th frame (frame-rate sampling).
        skip_first: source frames dropped before sampling starts.
        cap: at most this many sampled frames (0 = all).
        trim: ``(start_seconds, duration_seconds)`` of the file to use (core's trimmed videos; 0 = to the end).
        keep: sampled frames kept after reading (consecutive windows share ``overlap_frames`` of them).
        post: applied to each converted frame before it is kept (a mask video keeps 1-byte holes, not RGB).
    """

    def __init__(self, source: Source, step: int = 1, skip_first: int = 0, cap: int = 0,
                 trim: tuple[float, float] = (0.0, 0.0), name: str = "video", keep: int = KEEP_FRAMES,
                 info: VideoInfo | None = None, post: Callable[[np.ndarray], np.ndarray] | None = None):
        self.source, self.cap = source, cap
        self.open, self.name = _opener(source), name
        self.step, self.skip_first, self.trim = max(int(step), 1), max(int(skip_first), 0), trim
        self.info = info if info is not None else probe(source, trim, name)
        avail = max(self.info.frames - self.skip_first, 0)
        n = -(-avail // self.step)
        self.count = min(n, cap) if cap > 0 else n
        self.height, self.width = self.info.height, self.info.width
        self._container = None
        self._frames = None  # iterator over decoded frames in the trim window
        self._next = 0  # sampled index the iterator will produce next
        self._need = 0  # after a seek: frames to decode up to that sampled frame (else counted from the step)
        self.keep, self.post = keep, post
        self._cache_start, self._cache = 0, []  # the last ``keep`` sampled frames decoded (uint8 arrays)
        self.decoded = self.converted = 0  # frames decoded (skipped ones included) and converted, for tests/benchmarks

    def reopen(self) -> "FileSource":
        """Another reader of the same frames with its own decoder (for a second consumer reading at its own pace)."""
        return FileSource(self.source, self.step, self.skip_first, self.cap, self.trim, self.name, self.keep, self.info,
                          self.post)

    @property
    def fps(self) -> Fraction:
        """Frame rate of the sampled frames."""
        return self.info.fps / self.step

    @property
    def start_seconds(self) -> float:
        """Time of the first sampled frame in the file (for the audio)."""
        fps = float(self.info.fps) or 1.0
        return self.trim[0] + self.skip_first / fps

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._frames, self._next, self._need = None, None, 0, 0
        self._cache_start, self._cache = 0, []

    def _restart(self) -> None:
        self.close()
        self._container = self.open()
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        # Frame threading holds a frame per thread: ffmpeg's automatic count (cores + 1) costs ~140 MB per 1080p
        # H.264 decoder on a 16-core machine, and a job has up to five decoders open. Two threads: ~55 MB.
        stream.codec_context.thread_count = DECODE_THREADS
        self._frames = self._decoded(stream)

    def _decoded(self, stream) -> Iterator[av.VideoFrame]:
        """The decoded frames of the trim window, from the container's position on."""
        lo, hi = _trim_pts(stream, self.trim)
        for frame in self._container.decode(stream):
            if frame.pts is not None and not lo <= frame.pts < hi:
                if frame.pts >= hi:
                    return
                continue
            yield frame

    def _seek(self, pos: int) -> bool:
        """Put the decoder just before sampled frame ``pos`` by seeking to the last restart point at or before it
        (``VideoInfo.restarts``: keyframes after which decoding gives exactly the frames of decoding from the start,
        see ``video_seek``), where that saves decoding at least ``SEEK_GAP`` frames or decoding again from the
        start. The frame is found by the restart point's pts, then counted on from it as the sequential read counts.
        False when nothing was done (or the seek did not land on that keyframe: then the file is read from the
        start, as without seeking)."""
        target = self.skip_first + pos * self.step  # source frame index in the trim window
        points = [r for r in self.info.restarts if r[0] <= target]
        if not points or points[-1][0] == 0:
            return False
        index, pts = points[-1]
        behind = self._frames is not None and pos < self._next
        cursor = 0 if self._frames is None or self._next == 0 else self.skip_first + (self._next - 1) * self.step + 1
        if not behind and index - cursor < SEEK_GAP:
            return False
        self._restart()
        stream = self._container.streams.video[0]
        self._container.seek(pts, stream=stream, backward=True, any_frame=False)
        self._frames = self._decoded(stream)
        frame = None
        for frame in self._frames:  # pictures before the keyframe (leading, or an earlier keyframe): not counted
            if frame.pts is None or frame.pts >= pts:
                break
        if frame is None or frame.pts != pts:
            log.info("%s: seeking to frame %d (pts %d) landed elsewhere; decoding from the start", self.name, index, pts)
            self._restart()
            return False
        self._frames = itertools.chain([frame], self._frames)
        self._next, self._need = pos, target - index + 1
        return True

    def _advance(self, convert: bool) -> np.ndarray | None:
        """Decode up to the next sampled frame; convert only that one, and only when it is wanted."""
        need = self._need or (self.skip_first if self._next == 0 else self.step - 1) + 1
        self._need = 0
        t0 = time.perf_counter()
        try:
            return self._advance_timed(need, convert)
        finally:
            DECODE_STATS.seconds += time.perf_counter() - t0
            DECODE_STATS.frames += need

    def _advance_timed(self, need: int, convert: bool) -> np.ndarray | None:
        frame = None
        for _ in range(need):
            try:
                frame = next(self._frames, None)
            except av.FFmpegError as e:
                raise ValueError(f"{self.name}: source frame {self.decoded} cannot be decoded ({e}): the file is damaged; "
                                 "download or copy it again, or re-encode it (ffmpeg -i in.mp4 -c:v libx264 out.mp4)") from e
            if frame is None:
                raise ValueError(
                    f"{self.name}: the file ended after {self.decoded} frames but its packets promised more "
                    f"({self.info.frames}); re-encode it (e.g. ffmpeg -i in.mp4 -c:v libx264 out.mp4)"
                )
            self.decoded += 1
        self._next += 1
        if not convert:
            return None
        self.converted += 1
        img = to_rgb24(frame)
        return img if self.post is None else self.post(img)

    def read(self, start: int, end: int) -> Tensor:
        end = min(end, self.count)
        if not 0 <= start < end:
            raise IndexError(f"{self.name}: frames {start}..{end - 1} of {self.count}")
        c0, cache = self._cache_start, self._cache
        pos = start
        out: list[np.ndarray] = []
        if c0 <= start < c0 + len(cache):
            out = cache[start - c0: end - c0]
            pos = start + len(out)
        if pos < end:
            if not self._seek(pos) and (self._frames is None or pos < self._next):
                if self._frames is not None:
                    log.info("%s: sampled frame %d is behind the decoder (at %d) and not among the last %d kept; "
                             "decoding again from the start of the file", self.name, pos, self._next, self.keep)
                self._restart()
            while self._next < pos:  # skip forward: decode, never convert
                self._advance(False)
            new = [self._advance(True) for _ in range(pos, end)]
            out = out + new
            if pos == c0 + len(cache):
                cache = cache + new
            else:
                c0, cache = pos, new
            drop = max(len(cache) - self.keep, 0)
            self._cache_start, self._cache = c0 + drop, cache[drop:]
        return torch.from_numpy(np.stack(out))

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


# ----------------------------------------------------------------------------------------------- conversions


MASK_CHANNELS = ("red", "green", "blue", "luma")


def mask_reader(channel: str, threshold: float) -> Callable[[np.ndarray], np.ndarray]:
    """A ``FileSource`` ``post`` turning each RGB frame of a mask video into its binary hole ``[H, W]`` at once."""
    return lambda rgb: mask_from_rgb(torch.from_numpy(rgb)[None], channel, threshold)[0].numpy()


def mask_from_rgb(frames: Tensor, channel: str, threshold: float) -> Tensor:
    """uint8 RGB ``[n, H, W, 3]`` of a mask video -> binary uint8 ``[n, H, W]`` (255 = hole): the channel as core's
    Image To Mask reads it (value / 255), then ``> threshold`` like the encoder does with a MASK."""
    if channel == "luma":
        v = (frames.float() * torch.tensor([0.299, 0.587, 0.114])).sum(-1) / 255.0
    else:
        v = frames[..., MASK_CHANNELS.index(channel)].float() / 255.0
    return ((v > threshold).to(torch.uint8) * 255).contiguous()
