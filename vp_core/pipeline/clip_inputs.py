"""The encoder's inputs, from whatever the graph gives: core ``VIDEO`` (read lazily from its file) or IMAGE/MASK
batches already in memory, in any combination. One call, ``prepare``, returns the sampler's ``InpaintInput``."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from fractions import Fraction

import torch
from torch import Tensor

from . import crop as crop_geometry
from . import masks as mask_checks
from . import preprocess, source_rate
from ..video import video_io
from ..video.video_io import (MASK_CHANNELS, FileSource, FrameSource, TensorSource, VideoInfo, mask_reader, probe,
                              slice_frames)

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
    output_rate: str = "source"  # source_rate.OUTPUT_RATES: every source frame (source) or the sampled ones


@dataclass
class CropSettings:
    """Crop to the mask (``crop.plan_crop``): the mode and the context margin around the hole."""

    mode: str = crop_geometry.FULL_FRAME
    context_factor: float = 1.5
    context_pixels: int = 32
    smooth_frames: int = 9


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


def _mask_video(mask, s: ClipSettings, step: int, video_frames: int, video_fps: float, count: int,
                every_count: int) -> tuple[FrameSource, FrameSource]:
    """The holes of a mask VIDEO, checked against the video BEFORE frame-rate sampling (after it, 42 and 40 frames
    both sample to 14 at step 3 and the mismatch would pass): the same frame count and rate, or a single still mask,
    which is used for every frame (decoded once). Two sources of the one check: the sampled holes (``count``) and
    every source frame's from ``skip_first_frames`` on (``every_count``, for output at the source rate)."""
    info, trim = _probe(mask, "mask")
    post = mask_reader(s.mask_channel, s.threshold)
    if info.frames == 1:
        log.info("mask: the mask video has 1 frame: it is used for every frame of the video (%d)", video_frames)
        still = FileSource(mask.get_stream_source(), 1, 0, 0, trim, "mask", info=info, post=post)
        try:
            frame = still.read(0, 1)
        finally:
            still.close()
        return TensorSource(frame, count=count), TensorSource(frame, count=every_count)
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
    return _open(mask, step, s, "mask", post=post), _open(mask, 1, replace(s, frame_load_cap=0), "mask", post=post)


def prepare(video, mask, first_frame: Tensor | None, s: ClipSettings, *, width: int, height: int,
            dilate_size: int = 32, first_frame_gt: bool = True, resize_mode: str = "stretch",
            crop: CropSettings | None = None) -> preprocess.InpaintInput:
    """``video``: core VIDEO or IMAGE ``[T,H,W,3]``; ``mask``: core VIDEO (a mask video, ``mask_channel`` >
    ``threshold``) or MASK ``[T or 1,H,W]``. Two batches take the in-memory path (``prepare_inpaint``, unchanged);
    with a VIDEO the frames are read window by window when the sampler and the composite need them."""
    common = dict(width=width, height=height, dilate_size=dilate_size, first_frame_gt=first_frame_gt,
                  resize_mode=resize_mode)
    crop = crop or CropSettings()
    if crop.mode not in crop_geometry.CROP_MODES:
        raise ValueError(f"crop_mode: expected one of {', '.join(crop_geometry.CROP_MODES)}; got {crop.mode!r}")
    if crop.mode != crop_geometry.FULL_FRAME and resize_mode != "stretch":
        log.warning("encode: resize_mode %r does not apply in crop_mode %r (the box already has the working aspect; "
                    "it applies where crop mode falls back to the whole frame)", resize_mode, crop.mode)
    if s.output_rate not in source_rate.OUTPUT_RATES:
        raise ValueError(f"output_rate: expected one of {', '.join(source_rate.OUTPUT_RATES)}; got {s.output_rate!r}")
    if not is_video(video) and not is_video(mask) and crop.mode == crop_geometry.FULL_FRAME:
        if s.output_rate == "source":
            log.info("encode: output_rate 'source' needs a VIDEO input (or a mask VIDEO); with two batches in memory "
                     "the output has the sampled frames")
        step = preprocess.frame_step(s.source_fps, s.target_fps, s.fps_rule)
        frames, masks = video, mask
        if s.skip_first_frames or s.frame_load_cap:
            end = s.skip_first_frames + s.frame_load_cap * step if s.frame_load_cap else None
            frames = video[s.skip_first_frames:end]
            m = _mask_batch(mask)
            masks = m[s.skip_first_frames:end] if m.shape[0] == video.shape[0] else m
        job = preprocess.prepare_inpaint(frames, masks, first_frame, source_fps=s.source_fps, target_fps=s.target_fps,
                                         threshold=s.threshold, fps_rule=s.fps_rule, **common)
        scan = mask_checks.scan_holes(job.hole)
        _log_report(scan, s.threshold)
        job.info = geometry_info(job, s, scan)
        log.info("encode: %s", job.info)
        return job
    if is_video(video):
        info, trim = _probe(video, "video")
        fps = s.source_fps or float(info.fps)
        step = preprocess.logged_frame_step(fps, s.target_fps, s.fps_rule)
        frames: FrameSource = FileSource(video.get_stream_source(), step, s.skip_first_frames, s.frame_load_cap,
                                         trim, "video", info=info)
        source_frames = frames.info.frames
        every = FileSource(video.get_stream_source(), 1, s.skip_first_frames, 0, trim, "video", info=info)
    else:
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"video: expected an IMAGE batch [frames, height, width, 3]; got shape {tuple(video.shape)}")
        preprocess.check_finite("video", video)
        fps = s.source_fps
        step = preprocess.logged_frame_step(fps, s.target_fps, s.fps_rule)
        frames = TensorSource(_sample(video, step, s), preprocess.to_uint8)
        source_frames = video.shape[0]
        every = TensorSource(video[s.skip_first_frames:], preprocess.to_uint8)
    if is_video(mask):
        if s.mask_channel not in MASK_CHANNELS:
            raise ValueError(f"mask_channel: expected one of {', '.join(MASK_CHANNELS)}; got {s.mask_channel!r}")
        video_fps = float(frames.info.fps) if is_video(video) else s.source_fps
        hole, every_hole = _mask_video(mask, s, step, source_frames, video_fps, len(frames),
                                       max(source_frames - s.skip_first_frames, 0))
    else:
        m = _mask_batch(mask)
        preprocess.check_finite("mask", m)
        if m.shape[0] not in (1, source_frames):
            raise ValueError(
                f"mask has {m.shape[0]} frames but video has {source_frames}: give one mask per frame or a single mask"
            )
        sampled = _sample(m, step, s) if m.shape[0] > 1 else m
        binary = lambda x: ((x > s.threshold).to(torch.uint8) * 255).contiguous()  # noqa: E731
        hole = TensorSource(sampled, binary, count=len(frames))
        every_hole = TensorSource(m[s.skip_first_frames:] if m.shape[0] > 1 else m, binary,
                                  count=max(source_frames - s.skip_first_frames, 0))
    audio = None
    if is_video(video) and frames.info.has_audio:
        audio = preprocess.AudioRef(video.get_stream_source(), frames.start_seconds)
    out_fps = fps / step if fps > 0 else 0.0
    log.info("encode: %s, %d frames after sampling (every %d-th from frame %d), read window by window",
             "VIDEO" if is_video(video) else "IMAGE batch", len(frames), step, s.skip_first_frames)
    # The mask pre-pass: one cheap pass over the (sampled) mask alone, before sampling. It gives the mask report on
    # this path as on IMAGE batches, and crop mode's box.
    scan = mask_checks.scan_holes(hole)
    _log_report(scan, s.threshold)
    plan = crop_geometry.plan_crop(scan, (height, width), crop.mode, crop.context_factor, crop.context_pixels,
                                   pad=dilate_size, smooth_frames=crop.smooth_frames)
    source = _source_timeline(every, every_hole, len(frames), step, fps, s) if s.output_rate == "source" else None
    job = preprocess.prepare_stream(frames, hole, first_frame, fps=out_fps, audio=audio, crop=plan, source=source,
                                    **common)
    job.info = geometry_info(job, s, scan, crop.mode)
    log.info("encode: %s", job.info)
    return job


def _log_report(scan: mask_checks.HoleScan, threshold: float) -> None:
    """The mask report's warnings (empty, full, tiny holes) in the log, the same on every input path."""
    for warning in scan.report(threshold).warnings():
        log.warning("encode: %s", warning)


def geometry_info(job: preprocess.InpaintInput, s: ClipSettings, scan: mask_checks.HoleScan | None = None,
                  mode: str = crop_geometry.FULL_FRAME) -> str:
    """The encoder's info line: the geometry and the hole's model pixels per source pixel (linear)."""
    h, w = video_io.frame_size(job.frames)
    if job.crop is not None:
        text = job.crop.describe()
    else:
        scale = crop_geometry.full_frame_scale((h, w), (job.height, job.width))
        fell_back = f" ({mode} fell back to it, see the log)" if mode != crop_geometry.FULL_FRAME else ""
        text = (f"full frame{fell_back}: the {w}x{h} frame is resized to {job.width}x{job.height}: {scale:.3f} model "
                "pixels per source pixel (linear, the smaller axis)")
    if scan is not None and any(scan.areas):
        biggest = max((b for b in scan.boxes if b is not None), key=lambda b: (b[1] - b[0]) * (b[3] - b[2]))
        scale = job.crop.scale if job.crop is not None else crop_geometry.full_frame_scale((h, w), (job.height, job.width))
        text += (f"; the hole (largest {biggest[3] - biggest[2]}x{biggest[1] - biggest[0]} px) gets about "
                 f"{(biggest[3] - biggest[2]) * scale:.0f}x{(biggest[1] - biggest[0]) * scale:.0f} model px")
    return f"{text}; {len(job.frames)} frames at {job.fps:.6g} fps"


def _source_timeline(every: FrameSource, every_hole: FrameSource, sampled: int, step: int, fps: float,
                     s: ClipSettings) -> source_rate.SourceTimeline | None:
    """The source frames of the sampled ones (from the first sampled frame, ``step`` per sampled frame, to the
    clip's end at most), for output at the source rate; None (sampled output, logged) when the rate is unknown."""
    if fps <= 0:
        log.info("encode: output_rate 'source' needs the source's frame rate (an IMAGE batch with source_fps 0 has "
                 "none): the output has the sampled frames")
        return None
    n = source_rate.source_count(sampled, step, min(len(every), len(every_hole)))
    rate = Fraction(fps).limit_denominator(1001)
    log.info("encode: output_rate 'source': %d source frames at %.6g fps (%d sampled frames go through the model; "
             "the %d in between get motion-compensated interpolation of the generated frames)", n, float(rate),
             sampled, n - sampled)
    return source_rate.SourceTimeline(slice_frames(every, 0, n), slice_frames(every_hole, 0, n), step, rate)
