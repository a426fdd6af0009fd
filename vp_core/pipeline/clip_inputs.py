"""The encoder's inputs, from whatever the graph gives: core ``VIDEO`` (read lazily from its file) or IMAGE/MASK
batches already in memory, in any combination. One call, ``prepare``, returns the sampler's ``InpaintInput``."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from . import preprocess
from ..video import video_io
from ..video.video_io import MASK_CHANNELS, FileSource, FrameSource, TensorSource, VideoInfo, mask_reader, probe

log = logging.getLogger(__name__)


@dataclass
class ClipSettings:
    """How the clip is read (VideoHelperSuite's habits: frames skipped first, then frame-rate sampling, then a cap
    on the frames kept) and how the mask is read from a mask video."""

    source_fps: float = 0.0  # 0: the VIDEO's own rate (an IMAGE batch then keeps every frame)
    target_fps: float = 8.0
    skip_first_frames: int = 0
    frame_load_cap: int = 0  # sampled frames, 0 = all
    mask_channel: str = "red"
    threshold: float = 0.5
    fps_rule: str = "reference"  # preprocess.frame_step's rule


def is_video(x) -> bool:
    """Core's VIDEO (``comfy_api`` ``VideoInput``): anything that can hand over a streamable file."""
    return not isinstance(x, Tensor) and callable(getattr(x, "get_stream_source", None))


def _trim(video) -> tuple[float, float]:
    """The trim window core's newer VIDEO can carry (``get_active_trim_window``, ComfyUI 0.2x); none on 0.3.75."""
    get = getattr(video, "get_active_trim_window", None)
    return tuple(get()) if callable(get) else (0.0, 0.0)


def _probe(video, name: str) -> tuple[VideoInfo, tuple[float, float]]:
    """The file's facts, inside the trim window core's newer VIDEO can carry (``get_active_trim_window``)."""
    trim = _trim(video)
    return probe(video.get_stream_source(), trim, name), trim


def video_frame(video, index: int = 0, name: str = "video", index_name: str = "index") -> Tensor:
    """Frame ``index`` of a core VIDEO, inside its trim window, as a ComfyUI IMAGE ``[1, H, W, 3]``
    (``index_name``: the input that gave ``index``, for the message when it is past the end)."""
    return video_io.video_frame(video.get_stream_source(), index, name, _trim(video), index_name).float()[None] / 255.0


def _open(video, step: int, s: ClipSettings, name: str, post=None) -> FileSource:
    info, trim = _probe(video, name)
    return FileSource(video.get_stream_source(), step, s.skip_first_frames, s.frame_load_cap, trim, name, info=info,
                      post=post)


def _sample(t: Tensor, step: int, s: ClipSettings) -> Tensor:
    """The same skip / every-step / cap on a batch in memory (a view: nothing is copied)."""
    t = t[s.skip_first_frames::step]
    return t[: s.frame_load_cap] if s.frame_load_cap > 0 else t


def _mask_batch(mask: Tensor) -> Tensor:
    if mask.ndim == 4 and mask.shape[-1] in (1, 3):
        mask = mask[..., 0]
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise ValueError(f"mask: expected a MASK batch [frames, height, width]; got shape {tuple(mask.shape)}")
    return mask


def _mask_video(mask, s: ClipSettings, step: int, video_frames: int, video_fps: float, count: int) -> FrameSource:
    """The holes of a mask VIDEO, checked against the video BEFORE frame-rate sampling (after it, 42 and 40 frames
    both sample to 14 at step 3 and the mismatch would pass): the same frame count and rate, or a single still mask,
    which is used for every frame."""
    info, trim = _probe(mask, "mask")
    post = mask_reader(s.mask_channel, s.threshold)
    if info.frames == 1:
        log.info("mask: the mask video has 1 frame: it is used for every frame of the video (%d)", video_frames)
        still = FileSource(mask.get_stream_source(), 1, 0, 0, trim, "mask", info=info, post=post)
        try:
            return TensorSource(still.read(0, 1), count=count)
        finally:
            still.close()
    if info.frames != video_frames:
        raise ValueError(
            f"mask: the mask video has {info.frames} frames but the video has {video_frames} (both before frame-rate "
            "sampling): give a mask video with one frame per video frame (the same length as the video), or a single "
            "still mask for every frame"
        )
    if video_fps > 0 and info.fps > 0 and abs(float(info.fps) / video_fps - 1) > 1e-3:
        raise ValueError(
            f"mask: the mask video runs at {float(info.fps):.6g} fps but the video at {video_fps:.6g} fps: their frames "
            "would not line up; give the mask video at the video's frame rate (one mask frame per video frame)"
        )
    return _open(mask, step, s, "mask", post=post)


def prepare(video, mask, first_frame: Tensor | None, s: ClipSettings, *, width: int, height: int,
            dilate_size: int = 32, first_frame_gt: bool = True, resize_mode: str = "stretch") -> preprocess.InpaintInput:
    """``video``: core VIDEO or IMAGE ``[T,H,W,3]``; ``mask``: core VIDEO (a mask video, ``mask_channel`` >
    ``threshold``) or MASK ``[T or 1,H,W]``. Two batches take the in-memory path (``prepare_inpaint``, unchanged);
    with a VIDEO the frames are read window by window when the sampler and the composite need them."""
    common = dict(width=width, height=height, dilate_size=dilate_size, first_frame_gt=first_frame_gt,
                  resize_mode=resize_mode)
    if not is_video(video) and not is_video(mask):
        step = preprocess.frame_step(s.source_fps, s.target_fps, s.fps_rule)
        frames, masks = video, mask
        if s.skip_first_frames or s.frame_load_cap:
            end = s.skip_first_frames + s.frame_load_cap * step if s.frame_load_cap else None
            frames = video[s.skip_first_frames:end]
            m = _mask_batch(mask)
            masks = m[s.skip_first_frames:end] if m.shape[0] == video.shape[0] else m
        return preprocess.prepare_inpaint(frames, masks, first_frame, source_fps=s.source_fps, target_fps=s.target_fps,
                                          threshold=s.threshold, fps_rule=s.fps_rule, **common)
    if is_video(video):
        info, trim = _probe(video, "video")
        fps = s.source_fps or float(info.fps)
        step = preprocess.logged_frame_step(fps, s.target_fps, s.fps_rule)
        frames: FrameSource = FileSource(video.get_stream_source(), step, s.skip_first_frames, s.frame_load_cap,
                                         trim, "video", info=info)
        source_frames = frames.info.frames
    else:
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"video: expected an IMAGE batch [frames, height, width, 3]; got shape {tuple(video.shape)}")
        preprocess.check_finite("video", video)
        fps = s.source_fps
        step = preprocess.logged_frame_step(fps, s.target_fps, s.fps_rule)
        frames = TensorSource(_sample(video, step, s), preprocess.to_uint8)
        source_frames = video.shape[0]
    if is_video(mask):
        if s.mask_channel not in MASK_CHANNELS:
            raise ValueError(f"mask_channel: expected one of {', '.join(MASK_CHANNELS)}; got {s.mask_channel!r}")
        hole = _mask_video(mask, s, step, source_frames, float(frames.info.fps) if is_video(video) else s.source_fps,
                           len(frames))
    else:
        m = _mask_batch(mask)
        preprocess.check_finite("mask", m)
        if m.shape[0] not in (1, source_frames):
            raise ValueError(
                f"mask has {m.shape[0]} frames but video has {source_frames}: give one mask per frame or a single mask"
            )
        sampled = _sample(m, step, s) if m.shape[0] > 1 else m
        hole = TensorSource(sampled, lambda x: ((x > s.threshold).to(torch.uint8) * 255).contiguous(), count=len(frames))
    audio = None
    if is_video(video) and frames.info.has_audio:
        audio = preprocess.AudioRef(video.get_stream_source(), frames.start_seconds)
    out_fps = fps / step if fps > 0 else 0.0
    log.info("encode: %s, %d frames after sampling (every %d-th from frame %d), read window by window",
             "VIDEO" if is_video(video) else "IMAGE batch", len(frames), step, s.skip_first_frames)
    return preprocess.prepare_stream(frames, hole, first_frame, fps=out_fps, audio=audio, **common)
