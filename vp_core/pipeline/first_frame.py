"""Frame 0 and its grown mask for an image inpainter (the reference fills frame 0 with FLUX Fill before the video).

``infer/inpaint.py`` / ``infer/edit.py`` dilate every mask with ``cv2.dilate(mask, np.ones((d, d)))`` (d = 32 for
inpainting, 48 for editing) and hand frame 0 with its dilated mask to FLUX Fill. The growth itself is
``preprocess.dilate`` (the one place that decides dilation); this module only picks the clip's first frame out.

"Frame 0" is the clip's first kept frame: source frame ``skip_first_frames``, the encoder's own start (it drops that
many source frames before frame-rate sampling), so FLUX Fill paints the frame the video model starts from. A core
``VIDEO`` is read through the streaming reader (``clip_inputs.video_frame``: inside the VIDEO's trim window,
converted as the host's own reader converts), decoding nothing past that frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import clip_inputs, preprocess


@dataclass
class FirstFrame:
    image: Tensor  # float [1, H, W, 3] in [0, 1] (ComfyUI IMAGE)
    mask: Tensor  # float [1, H, W], 1 = hole grown by the dilation (ComfyUI MASK)


def frame_at(clip: Tensor | object, index: int = 0, name: str = "video", one_for_all: bool = False) -> Tensor:
    """Source frame ``index`` of an ``IMAGE`` batch ``[T, H, W, C]``, a ``MASK`` batch ``[T, H, W]`` (or one
    ``[H, W]``) or a core ``VIDEO``, with a batch dimension of 1. ``one_for_all``: a batch of one frame is that frame
    whatever the index (one mask for every frame, as the encoder takes it)."""
    if isinstance(clip, Tensor):
        if clip.ndim == 2:
            clip = clip[None]
        if clip.shape[0] == 0:
            raise ValueError(f"{name}: the clip has 0 frames; load a video with at least 1 frame")
        if clip.shape[0] == 1 and one_for_all:
            return clip
        if index >= clip.shape[0]:
            raise ValueError(f"skip_first_frames: the {name} has {clip.shape[0]} frames (0..{clip.shape[0] - 1}); got "
                             f"{index}: skip fewer frames (the encoder's skip_first_frames)")
        return clip[index:index + 1]
    if not clip_inputs.is_video(clip):
        raise ValueError(f"{name}: expected an IMAGE batch or a VIDEO (e.g. from Load Video); got {type(clip).__name__}")
    return clip_inputs.video_frame(clip, index, name, index_name="skip_first_frames")


def first_frame_for_inpainting(video, mask, dilate_size: int, threshold: float = 0.5,
                               skip_first_frames: int = 0) -> FirstFrame:
    """The clip's first kept frame (source frame ``skip_first_frames``, as the encoder starts) of ``video`` and the
    same frame of ``mask`` binarised at ``threshold`` and grown like the reference's ``cv2.dilate`` with a
    ``dilate_size`` square (``preprocess.dilate``: ``(d-1)//2`` px up/left, ``d//2`` down/right).

    ``video``: ``IMAGE`` batch or ``VIDEO``; ``mask``: ``MASK`` batch (one or one per frame), an ``IMAGE`` batch or a
    ``VIDEO`` of the mask (its red channel, as the workflows' ``ImageToMask``).
    """
    if skip_first_frames < 0:
        raise ValueError(f"skip_first_frames: expected 0 or more source frames; got {skip_first_frames}")
    image = frame_at(video, skip_first_frames, "video")
    preprocess.check_finite("video", image)
    m = frame_at(mask, skip_first_frames, "mask", one_for_all=True)
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


def first_frame_of_job(job: "preprocess.InpaintInput") -> FirstFrame:
    """Frame 0 of an encoded clip and the grown hole the sampler fills there, as the model sees them: in crop mode
    the crop box of frame 0 (the same box, from the same mask pre-pass, that an encoder with the same settings gives
    the video model), otherwise the whole frame. The job must come from an encoder WITHOUT a first frame (with one,
    frame 0's hole is already filled and, with ``first_frame_gt``, cleared)."""
    if job.pipeline.image is not None:
        raise ValueError(
            "crop_from: this encoder already has a first_frame, so frame 0's hole is filled; connect an encoder of the "
            "same clip and settings WITHOUT first_frame (its crop box is the same)")
    frame, hole = next(iter(list(preprocess.frames_and_holes(job, [0]))))
    if job.crop is not None:
        top, left, h, w = job.crop.box(0)
        frame, hole = frame[top:top + h, left:left + w], hole[top:top + h, left:left + w]
    return FirstFrame(frame[None].float() / 255.0, hole[None].float())
