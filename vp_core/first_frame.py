"""Frame 0 and its grown mask for an image inpainter (the reference fills frame 0 with FLUX Fill before the video).

``infer/inpaint.py`` / ``infer/edit.py`` dilate every mask with ``cv2.dilate(mask, np.ones((d, d)))`` (d = 32 for
inpainting, 48 for editing) and hand frame 0 with its dilated mask to FLUX Fill. The growth itself is
``preprocess.dilate`` (the one place that decides dilation); this module only picks frame 0 out of a clip.

Frame 0 of a core ``VIDEO`` is read with PyAV from ``get_stream_source()``, decoding nothing past it.
(TODO after the streaming reader of ``vp_core/video_io.py`` lands: read through it instead.)
"""
from __future__ import annotations

from dataclasses import dataclass

import av
import torch
from torch import Tensor

from . import preprocess


@dataclass
class FirstFrame:
    image: Tensor  # float [1, H, W, 3] in [0, 1] (ComfyUI IMAGE)
    mask: Tensor  # float [1, H, W], 1 = hole grown by the dilation (ComfyUI MASK)


def read_video_frame0(video) -> Tensor:
    """Frame 0 of a core ``VIDEO`` as an ``IMAGE`` ``[1, H, W, 3]``: the first frame at or after the video's trim
    start (ComfyUI >= 0.27 trims in ``LoadVideo``), converted like core's 0.3.75 reader (``rgb24`` / 255)."""
    start = 0.0
    trim = getattr(video, "get_active_trim_window", None)  # only hosts that trim have it
    if trim is not None:
        start = float(trim()[0])
    source = video.get_stream_source()
    with av.open(source, mode="r") as container:
        if not container.streams.video:
            raise ValueError("video: the file has no video stream; load a video file")
        stream = container.streams.video[0]
        start_pts = int(start / stream.time_base) if start > 0 and stream.time_base else 0
        if start_pts:
            container.seek(start_pts, stream=stream)
        for frame in container.decode(stream):
            if frame.pts is not None and frame.pts < start_pts:
                continue
            return torch.from_numpy(frame.to_ndarray(format="rgb24")).float().div(255.0)[None]
    raise ValueError("video: the clip has 0 frames; load a video with at least 1 frame")


def frame0(clip: Tensor | object) -> Tensor:
    """Frame 0 of an ``IMAGE`` batch ``[T, H, W, C]``, a ``MASK`` batch ``[T, H, W]`` (or one ``[H, W]``) or a core
    ``VIDEO``, with a batch dimension of 1."""
    if isinstance(clip, Tensor):
        if clip.ndim == 2:
            clip = clip[None]
        if clip.shape[0] == 0:
            raise ValueError("video: the clip has 0 frames; load a video with at least 1 frame")
        return clip[:1]
    if not callable(getattr(clip, "get_stream_source", None)):
        raise ValueError(f"video: expected an IMAGE batch or a VIDEO (e.g. from Load Video); got {type(clip).__name__}")
    return read_video_frame0(clip)


def first_frame_for_inpainting(video, mask, dilate_size: int, threshold: float = 0.5) -> FirstFrame:
    """Frame 0 of ``video`` and frame 0 of ``mask`` binarised at ``threshold`` and grown like the reference's
    ``cv2.dilate`` with a ``dilate_size`` square (``preprocess.dilate``: ``(d-1)//2`` px up/left, ``d//2`` down/right).

    ``video``: ``IMAGE`` batch or ``VIDEO``; ``mask``: ``MASK`` batch (one or one per frame), an ``IMAGE`` batch or a
    ``VIDEO`` of the mask (its red channel, as the workflows' ``ImageToMask``).
    """
    image = frame0(video)
    preprocess.check_finite("video", image)
    m = frame0(mask)
    if m.ndim == 4:
        m = m[..., 0]  # an IMAGE or VIDEO of the mask: red channel
    preprocess.check_finite("mask", m)
    if m.shape[1:] != image.shape[1:3]:
        raise ValueError(
            f"mask is {m.shape[2]}x{m.shape[1]} (WxH) but video is {image.shape[2]}x{image.shape[1]}: give the mask "
            "of this video (same size)"
        )
    if dilate_size < 0:
        raise ValueError(f"dilate: expected 0 (no growth) or more pixels; got {dilate_size}")
    hole = (m > threshold).to(torch.uint8) * 255
    grown = preprocess.dilate(hole, dilate_size)
    return FirstFrame(image.float(), (grown > 127).float())
