"""Keyframes a reader may seek to: decoding forward from one gives exactly the frames decoding from the start gives.

The readers (``video_io.FileSource``) count frames in presentation order from the start of the trim window, as
core's reader does, so a frame is only as exact as the decoder state it is decoded with. After a seek the decoder
starts empty; that is the same state only at a keyframe that nothing after it refers past:

- H.264 IDR pictures (NAL type 5): the reference lists are emptied;
- HEVC IRAP pictures (BLA, IDR, CRA: types 16-21): no picture after one in output order refers to a picture before
  it in decoding order (the specification's constraint on trailing pictures); the leading pictures decoded after
  it (RASL, RADL) come before it in output order and are passed over, as is anything before its pts;
- FFV1 keyframes: the range coder's context states are reset (FFV1 specification, "key frame");
- any keyframe of a stream whose every packet is a keyframe (intra-only: PNG, MJPEG, ProRes, all-intra H.264 ...).

Not: H.264 keyframes that are not IDR (open-GOP I pictures with a recovery-point SEI, x264 ``open-gop``; cameras'
non-IDR I frames), after which later frames may refer past them (exactly only if the SEI says so), nor keyframes
of other inter codecs (not checked here). A file without such
keyframes is read from the start, as before. ``restart_test`` decides per packet; the probe records the frame index
(presentation order inside the trim window) and pts of each such keyframe (``VideoInfo.restarts``).
"""
from __future__ import annotations

import bisect
from typing import Callable

import av

_RESTART_NAL = {"h264": lambda b: b & 0x1F == 5, "hevc": lambda b: 16 <= (b >> 1) & 0x3F <= 21}
_KEYFRAMES_RESET = frozenset({"ffv1"})


def _nal_headers(data: bytes, length_size: int) -> list[int]:
    """The first header byte of each NAL unit of a packet: length-prefixed (``avcC`` / ``hvcC`` extradata, as in
    MP4, MOV and Matroska) when ``length_size`` > 0, else Annex B start codes (MPEG-TS, raw streams)."""
    out, i = [], 0
    if length_size:
        while i + length_size < len(data):
            n = int.from_bytes(data[i:i + length_size], "big")
            i += length_size
            if n <= 0 or i + n > len(data):
                break
            out.append(data[i])
            i += n
        return out
    while (j := data.find(b"\x00\x00\x01", i)) >= 0 and j + 3 < len(data):
        out.append(data[j + 3])
        i = j + 3
    return out


def _length_size(codec: str, extradata: bytes | None) -> int:
    """NAL length-prefix size from ``avcC`` (byte 4) / ``hvcC`` (byte 21) extradata; 0 for Annex B."""
    if not extradata or extradata[0] != 1:
        return 0
    at = 4 if codec == "h264" else 21
    return (extradata[at] & 3) + 1 if len(extradata) > at else 0


def restart_test(stream: av.video.stream.VideoStream) -> Callable[[av.Packet], bool] | None:
    """Whether a keyframe packet of ``stream`` is a restart point (see the module docstring); None when this codec's
    keyframes are not judged (then only an all-keyframe stream has restart points)."""
    codec = stream.codec_context.name
    if codec in _KEYFRAMES_RESET:
        return lambda p: p.is_keyframe
    if codec in _RESTART_NAL:
        restarts, size = _RESTART_NAL[codec], _length_size(codec, stream.codec_context.extradata)
        return lambda p: p.is_keyframe and any(restarts(b) for b in _nal_headers(bytes(p), size))
    return None


class RestartPoints:
    """Collects, packet by packet while the probe demuxes, the restart points inside a trim window ``[lo, hi)`` (pts):
    ``points()`` is ``((frame index, pts), ...)`` with the frame index in presentation order. Empty when the frames
    cannot be told apart by pts (a packet without one, duplicate pts) or packets are flagged to be discarded (edit
    lists), since the reader counts frames the decoder outputs and a seek must land on the same count."""

    def __init__(self, stream, lo: float, hi: float):
        self.lo, self.hi, self.test = lo, hi, restart_test(stream)
        self.pts: list[int] = []
        self.keys: list[tuple[int, bool]] = []
        self.exact = True

    def add(self, p: av.Packet) -> None:
        if p.size <= 0 or (p.pts is not None and not self.lo <= p.pts < self.hi):
            return
        if p.pts is None or p.is_discard:
            self.exact = False
            return
        self.pts.append(p.pts)
        if p.is_keyframe:
            self.keys.append((p.pts, self.test is not None and self.test(p)))

    def points(self) -> tuple[tuple[int, int], ...]:
        order = sorted(self.pts)
        if not self.exact or not order or len(set(order)) != len(order):
            return ()
        intra_only = len(self.keys) == len(order)
        return tuple(sorted((bisect.bisect_left(order, pts), pts) for pts, ok in self.keys if ok or intra_only))
