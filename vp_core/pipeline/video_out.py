"""The end of the chain as core's ``VIDEO``: frames are produced (decoded, composited) while they are encoded to
the file, so core's Save Video, previews and any node taking a VIDEO work on a clip of any length.

``StreamedVideo`` implements core's video input interface (``comfy_api`` ``VideoInput``, on 0.3.75 and 0.27.0)
over a function that yields chunks of frames ``float32 [f, H, W, 3]`` in [0, 1]. ``save_to`` encodes them as they
come (H.264, or lossless FFV1 for masks and intermediate results) and copies the source's audio; the frames are
converted to 8 bits exactly as core's Create Video + Save Video do, so both paths write the same pixels.
``get_components`` has to hold the whole clip in memory and says so in the log.
"""
from __future__ import annotations

import io
import json
import logging
import os
import time
from fractions import Fraction
from typing import Callable, Iterator

import av
import numpy as np
import torch
from comfy_api.v0_0_2 import Input, InputImpl, Types
from torch import Tensor

from . import composite
from .preprocess import AudioRef, InpaintInput
from ..video.video_io import DECODE_STATS, FileSource, close, read_frames, reader

log = logging.getLogger(__name__)

H264_LOOKAHEAD = 10
COMPOSITE_FRAMES = 1  # frames composited at once: ~10 float32 copies of each at source resolution (25 MB at 1080p)
CODECS = ("h264", "ffv1")  # ffv1: lossless RGB (masks, intermediate results); h264: yuv420p like core
Chunks = Callable[[], Iterator[Tensor]]


def to_uint8(frames: Tensor) -> np.ndarray:
    """[0, 1] floats -> uint8 the way core's video writer converts them (so the two paths match exactly)."""
    return (frames * 255).clamp(0, 255).byte().cpu().numpy()


class StreamedVideo(Input.Video):
    """A VIDEO whose frames are made when it is saved (see the module docstring).

    Parameters:
        chunks: returns a fresh iterator over the frames (called once per save).
        progress: ``progress(total)`` returns an ``update(done)`` function (one progress bar over all frames).
        guard: runs the save (e.g. turning out-of-memory into a clear message); default: call it.
    """

    def __init__(self, chunks: Chunks, width: int, height: int, frames: int, fps: float, codec: str = "h264",
                 audio: AudioRef | None = None, progress: Callable[[int], Callable[[int], None]] | None = None,
                 guard: Callable[[Callable[[], None]], None] | None = None):
        if codec not in CODECS:
            raise ValueError(f"codec: expected one of {', '.join(CODECS)}; got {codec!r}")
        self.chunks, self.width, self.height, self.frames = chunks, width, height, frames
        self.fps = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(8)
        self.codec, self.audio, self.progress, self.guard = codec, audio, progress, guard or (lambda fn: fn())
        self.encode_seconds = 0.0  # time spent encoding (for the benchmarks)

    # ------------------------------------------------------------------------------------------- core interface
    def get_dimensions(self) -> tuple[int, int]:
        return self.width, self.height

    def get_frame_count(self) -> int:
        return self.frames

    def get_frame_rate(self) -> Fraction:
        return self.fps

    def get_duration(self) -> float:
        return float(self.frames / self.fps)

    def get_container_format(self) -> str:
        return "mp4"

    def get_components(self):
        log.warning(
            "a node asked for the whole streamed video as an IMAGE batch: %d frames of %dx%d are held in memory "
            "(%.0f MB as float32); connect the video to Save Video instead for long clips",
            self.frames, self.width, self.height, self.frames * self.width * self.height * 12 / 2**20,
        )
        images = torch.cat(list(self.chunks())) if self.frames else torch.zeros(0, self.height, self.width, 3)
        audio = None
        if self.audio is not None:
            audio = _audio_components(self.audio, self.get_duration())
        return Types.VideoComponents(images=images, audio=audio, frame_rate=self.fps)

    def as_trimmed(self, start_time: float | None = None, duration: float | None = None, strict_duration: bool = False):
        """Core 0.27's trim: the video is encoded (to memory, compressed) and core's file video trims that."""
        return InputImpl.VideoFromFile(self.get_stream_source()).as_trimmed(start_time or 0, duration or 0, strict_duration)

    def save_to(self, path, format="auto", codec="auto", metadata: dict | None = None, bit_depth: int | None = None):
        codec = self.codec if str(getattr(codec, "value", codec)) == "auto" else str(getattr(codec, "value", codec))
        if codec not in CODECS:
            raise ValueError(f"codec: this video can be saved as {', '.join(CODECS)}; got {codec!r}")
        self.guard(lambda: self._write(path, str(getattr(format, "value", format)), codec, metadata))

    # ------------------------------------------------------------------------------------------------ writing
    def _write(self, path, format: str, codec: str, metadata: dict | None) -> None:
        to_file = isinstance(path, (str, os.PathLike))
        container = "matroska" if to_file and str(path).lower().endswith(".mkv") else "mp4"
        if format not in ("auto", "", None) and not to_file:
            container = format
        target = f"{path}.part" if to_file else path
        update = self.progress(self.frames) if self.progress is not None else None
        try:
            with av.open(target, mode="w", format=container,
                         options={"movflags": "use_metadata_tags"} if container == "mp4" else {}) as out:
                for key, value in (metadata or {}).items():
                    out.metadata[key] = value if isinstance(value, str) else json.dumps(value)
                stream = self._video_stream(out, codec)
                audio = _AudioCopy(out, self.audio) if self.audio is not None else None
                done, t_enc, t_all, dec0 = 0, 0.0, time.perf_counter(), (DECODE_STATS.frames, DECODE_STATS.seconds)
                for chunk in self.chunks():
                    t0 = time.perf_counter()
                    for img in to_uint8(chunk):
                        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                            out.mux(packet)
                    t_enc += time.perf_counter() - t0
                    done += chunk.shape[0]
                    if audio is not None:
                        audio.copy_until(done / self.fps)
                    if update is not None:
                        update(done)
                for packet in stream.encode():
                    out.mux(packet)
                if audio is not None:
                    audio.copy_until(self.get_duration(), final=True)
            if done != self.frames:
                log.warning("streamed video: %d frames were written, %d were announced", done, self.frames)
            dec_n, dec_s = DECODE_STATS.frames - dec0[0], DECODE_STATS.seconds - dec0[1]
            log.info("streamed video: %d frames (%s) in %.1f s; decoding the source %.2f ms/frame (%d frames read "
                     "again for the composite), encoding %.2f ms/frame", done, codec, time.perf_counter() - t_all,
                     1000 * dec_s / max(dec_n, 1), dec_n, 1000 * t_enc / max(done, 1))
            if to_file:
                os.replace(target, path)
        finally:
            if to_file and os.path.exists(target):
                os.remove(target)

    def _video_stream(self, out, codec: str):
        if codec == "ffv1":
            stream = out.add_stream("ffv1", rate=self.fps)
            stream.pix_fmt = "bgr0"  # RGB, lossless
        else:
            # core's writer: 'h264' at the rate rounded to 1/1000, yuv420p (yuv444p when a side is odd: 4:2:0 needs even)
            stream = out.add_stream("h264", rate=Fraction(round(self.fps * 1000), 1000))
            stream.pix_fmt = "yuv420p" if self.width % 2 == 0 and self.height % 2 == 0 else "yuv444p"
            # x264's default lookahead (40 frames, each kept whole) is ~410 MB at 1080p and 4x that at 4K; 10 frames
            # keep it at ~180 MB for a slightly weaker rate control (mb-tree sees 10 frames ahead, not 40).
            stream.options = {"rc-lookahead": str(H264_LOOKAHEAD)}
        stream.width, stream.height = self.width, self.height
        return stream


class _AudioCopy:
    """Copies the source's first audio stream (packets, not re-encoded) from the first sampled frame on, in step
    with the video. When the container cannot take that codec the audio is left out with a warning."""

    def __init__(self, out, ref: AudioRef):
        self.out, self.ref = out, ref
        src = ref.source.getvalue() if isinstance(ref.source, io.BytesIO) else ref.source
        self.inp = av.open(io.BytesIO(src) if isinstance(src, bytes) else src, mode="r")
        self.inp_stream = self.inp.streams.audio[0]
        try:
            self.stream = out.add_stream_from_template(template=self.inp_stream, opaque=True)
        except (ValueError, av.FFmpegError) as e:
            log.warning("the source's audio (%s) cannot go into this file and is left out: %s", self.inp_stream.codec_context.name, e)
            self.stream = None
        self.packets = self.inp.demux(self.inp_stream)
        tb = self.inp_stream.time_base
        self.start = int(ref.start / tb) + (self.inp_stream.start_time or 0)
        self.tb, self.pending = tb, None

    def copy_until(self, seconds: float, final: bool = False) -> None:
        if self.stream is None:
            return
        end = self.start + int(seconds / self.tb)
        while True:
            packet = self.pending or next(self.packets, None)
            self.pending = None
            if packet is None or packet.pts is None:
                if packet is None:
                    break
                continue
            if packet.pts >= end:
                self.pending = packet
                break
            if packet.pts < self.start:
                continue
            packet.pts -= self.start
            packet.dts = packet.pts if packet.dts is None else packet.dts - self.start
            packet.stream = self.stream
            self.out.mux(packet)
        if final:
            self.inp.close()


def _audio_components(ref: AudioRef, duration: float):
    """The audio as core's AUDIO dict (``get_components``), from the first sampled frame for ``duration``."""
    src = ref.source.getvalue() if isinstance(ref.source, io.BytesIO) else ref.source
    with av.open(io.BytesIO(src) if isinstance(src, bytes) else src, mode="r") as c:
        s = c.streams.audio[0]
        rate = s.sample_rate or 1
        data = np.concatenate([f.to_ndarray().reshape(s.channels, -1) for f in c.decode(s)], axis=1)
    a, b = int(ref.start * rate), int((ref.start + duration) * rate)
    return {"waveform": torch.from_numpy(data[:, a:b].astype(np.float32))[None], "sample_rate": rate}


# --------------------------------------------------------------------------------------------- frame producers


def decoded_chunks(decode_iter: Callable[[], Iterator[Tensor]], frames: int) -> Chunks:
    """VAE output chunks ``[1, 3, f, H, W]`` in [-1, 1] -> ``[f, H, W, 3]`` in [0, 1], trimmed to ``frames``
    (the same conversion as the IMAGE decode)."""

    def chunks() -> Iterator[Tensor]:
        done = 0
        for x in decode_iter():
            x = (x[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 3, 0).float().cpu()[: frames - done]
            if x.shape[0]:
                done += x.shape[0]
                yield x
            if done >= frames:
                return

    return chunks


def video_chunks(video, chunk: int = 8) -> tuple[Chunks, int, int, int]:
    """Any VIDEO as chunks of frames: a streamed one directly, others read from their file window by window.
    Returns (chunks, frames, width, height)."""
    if isinstance(video, StreamedVideo):
        return video.chunks, video.frames, video.width, video.height
    src = FileSource(video.get_stream_source(), name="generated")

    def chunks() -> Iterator[Tensor]:
        reader = src.reopen()
        for a in range(0, len(reader), chunk):
            yield reader.read(a, min(a + chunk, len(reader))).float() / 255.0

    return chunks, len(src), src.width, src.height


def composited_chunks(job: InpaintInput, generated: Chunks, dilate: int, feather: int) -> Chunks:
    """Each chunk of generated frames pasted over the originals, read again from the source (at source
    resolution) for just those frames; exact because every step of the composite works frame by frame."""

    def chunks() -> Iterator[Tensor]:
        frames, hole = reader(job.frames), reader(job.hole)
        try:
            yield from _paste_all(frames, hole, generated, dilate, feather, job.crop)
        finally:  # decoders and kept frames go at once, not when the garbage collector gets to them
            close(frames)
            close(hole)

    return chunks


def _paste_all(frames, hole, generated: Chunks, dilate: int, feather: int, crop=None) -> Iterator[Tensor]:
    """The composite of every generated chunk, reading the originals and holes for just those frames (crop mode:
    each generated box is first placed into source coordinates, ``composite.place``)."""
    n, done = len(frames), 0
    for gen in generated():
        k = gen.shape[0]
        if done + k > n:
            raise ValueError(
                f"generated has more frames than the original ({n}): use the encoder of this clip for 'inpaint' "
                "and window_mode 'fixed' (same frame count in and out)"
            )
        for a in range(0, k, COMPOSITE_FRAMES):  # the float copies at source resolution, a few frames at a time
            b = min(a + COMPOSITE_FRAMES, k)
            original = read_frames(frames, done + a, done + b).float() / 255.0
            mask = read_frames(hole, done + a, done + b).float() / 255.0
            placed = composite.place(gen[a:b], original, crop, first_index=done + a)
            yield composite.paste(original, placed, mask, dilate, feather, first_index=done + a)
        done += k
    if done != n:
        raise ValueError(
            f"generated has {done} frames but original has {n}: use the encoder of this clip for 'inpaint' and "
            "window_mode 'fixed' (same frame count in and out)"
        )
