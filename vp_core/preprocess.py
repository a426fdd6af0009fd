"""Video and mask pre-processing (spec §6.1, §6.3): the one module that prepares pixels and masks.

Frames are ``uint8 [T, H, W, 3]`` tensors and masks ``uint8 [T, H, W]`` (255 = hole) at source resolution until a
window is processed; only then is that window resized (PIL Lanczos through diffusers' ``VideoProcessor``, as the
reference), so memory does not grow with the clip beyond the source frames themselves.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.video_processor import VideoProcessor
from PIL import Image
from torch import Tensor

log = logging.getLogger(__name__)

_VIDEO = VideoProcessor(vae_scale_factor=8)
_MASK = VideoProcessor(vae_scale_factor=8, do_normalize=False, do_binarize=True, do_convert_grayscale=True)


def dilate(masks: Tensor, size: int) -> Tensor:
    """Dilate ``[T, H, W]`` masks with a ``size x size`` square, anchored like OpenCV (``cv2.dilate`` with
    ``np.ones((d, d))``): a hole grows ``(d-1)//2`` px up/left and ``d//2`` px down/right (off-centre for even d).

    A flat square is separable, so this is two 1-D max-pools instead of kornia's ``morphology.dilation``, whose
    unfold/conv engines need ``d*d`` copies of the frame (gigabytes at source resolution with d = 32).
    """
    if size <= 1:
        return masks.clone()
    x = masks[:, None].float()
    lo, hi = size // 2, size - 1 - size // 2  # OpenCV anchor d//2: output(y) = max input(y - d//2 ... y + d - 1 - d//2)
    x = F.pad(x, (lo, hi, lo, hi), value=float("-inf"))
    x = F.max_pool2d(x, kernel_size=(size, 1), stride=1)
    x = F.max_pool2d(x, kernel_size=(1, size), stride=1)
    return x[:, 0].to(masks.dtype)


@dataclass
class PipelineInputs:
    """What the reference passes to its pipeline: ``video`` = masked video with the inpainted first frame,
    ``masks`` = dilated binary masks (255 = hole), ``image`` = the I2V first frame."""

    video: Tensor
    masks: Tensor
    image: Tensor


def reference_inputs(
    frames: Tensor, masks: Tensor, first_frame: Tensor | None, dilate_size: int, first_frame_gt: bool = True
) -> PipelineInputs:
    """``infer/inpaint.py`` pre-processing from raw frames ``uint8 [T,H,W,3]`` and binary masks ``uint8 [T,H,W]``.

    1. masked video: hole pixels (undilated mask) set to black;
    2. masks dilated (at source resolution);
    3. frame 0 of the video and of the masked video replaced by ``first_frame`` (e.g. a FLUX Fill result);
    4. ``first_frame_gt``: mask 0 cleared, so frame 0 counts as known;
    5. the I2V image is masked frame 0.
    """
    hole = masks > 127
    masked = torch.where(hole[..., None], torch.zeros_like(frames), frames)
    dilated = dilate((hole.to(torch.uint8) * 255), dilate_size)
    if first_frame is not None:
        if first_frame.shape != frames.shape[1:]:
            raise ValueError(
                f"first_frame is {tuple(first_frame.shape[:2])} (HxW) but the video is {tuple(frames.shape[1:3])}; "
                "resize the first frame to the video size"
            )
        masked = masked.clone()
        masked[0] = first_frame
    if first_frame_gt:
        dilated = dilated.clone()
        dilated[0] = 0
    return PipelineInputs(masked, dilated, masked[0])


def _pil_frames(frames: Tensor) -> list[Image.Image]:
    arr = frames.cpu().numpy()
    return [Image.fromarray(a) for a in arr]


def window_video(frames: Tensor, height: int, width: int) -> Tensor:
    """``uint8 [F,H,W,3]`` -> ``float32 [1, 3, F, height, width]`` in [-1, 1] (PIL Lanczos resize)."""
    return _VIDEO.preprocess_video(_pil_frames(frames), height=height, width=width).to(torch.float32)


def window_masks(masks: Tensor, height: int, width: int) -> Tensor:
    """``uint8 [F,H,W]`` (255 = hole) -> binary ``float32 [1, 1, F, height, width]`` (Lanczos, then >= 0.5)."""
    return _MASK.preprocess_video(_pil_frames(masks), height=height, width=width).to(torch.float32)


def image(frame: Tensor, height: int, width: int) -> Tensor:
    """``uint8 [H,W,3]`` -> ``[1, 3, height, width]`` in [-1, 1] (the I2V first frame)."""
    return _VIDEO.preprocess(Image.fromarray(frame.cpu().numpy()), height=height, width=width)


def latent_mask(pixel_mask: Tensor, latent_frames: int, height: int, width: int) -> Tensor:
    """Nearest interpolation of ``[1, 1, F, H, W]`` to ``[1, latent_frames, 1, height, width]`` (§6.3, §9 item 8)."""
    m = F.interpolate(pixel_mask, size=(latent_frames, height, width))
    return m.permute(0, 2, 1, 3, 4)


def to_uint8(images: Tensor) -> Tensor:
    """ComfyUI ``IMAGE``/``MASK`` floats in [0, 1] -> uint8 (round to nearest)."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


RESIZE_MODES = ("stretch", "center_crop")


SIZE_FACTOR = 16  # the VAE downsamples by 8 and the transformer's patches are 2x2 latents
MIN_SIZE, MAX_SIZE = 16, 4096


def size_error(width: int, height: int) -> str | None:
    """Why ``width`` x ``height`` cannot be the model's working size, or ``None`` when it can."""
    if all(MIN_SIZE <= v <= MAX_SIZE and v % SIZE_FACTOR == 0 for v in (width, height)):
        return None
    fix = [min(max(SIZE_FACTOR * round(v / SIZE_FACTOR), MIN_SIZE), MAX_SIZE) for v in (width, height)]
    return (
        f"width x height: expected multiples of {SIZE_FACTOR} between {MIN_SIZE} and {MAX_SIZE} (the VAE downsamples "
        f"by 8, the transformer's patches are 2x2); got {width}x{height}. Use e.g. {fix[0]}x{fix[1]}; the video "
        "itself may have any size (each window is resized to width x height)"
    )


def check_size(width: int, height: int) -> None:
    error = size_error(width, height)
    if error is not None:
        raise ValueError(error)


def check_finite(name: str, t: Tensor | None) -> None:
    """NaN or infinite pixels would silently turn the whole window into NaN; refuse them up front."""
    if t is None or not t.is_floating_point():
        return
    finite = torch.isfinite(t)
    if bool(finite.all()):
        return
    nan = int(torch.isnan(t).sum())
    inf = t.numel() - int(finite.sum()) - nan
    raise ValueError(
        f"{name}: expected finite values in [0, 1]; got {nan} NaN and {inf} infinite values (of {t.numel()}): "
        "check the node that produced it"
    )


@dataclass
class InpaintInput:
    """Output of the encode step: the pipeline's inputs at source resolution and how to process them.

    ``frames``/``hole`` are the (frame-rate sampled) original frames and undilated binary masks, kept for
    compositing; ``pipeline`` holds what the reference pipeline receives; ``height``/``width`` is the model's
    working size (each window is resized to it with PIL Lanczos, as the reference).
    """

    pipeline: PipelineInputs
    frames: Tensor
    hole: Tensor
    height: int
    width: int
    fps: float


def frame_and_hole(job: InpaintInput, index: int) -> tuple[Tensor, Tensor]:
    """Frame ``index`` of an encoded job (``uint8 [H, W, 3]``, source resolution) and the dilated hole the sampler
    fills there (``bool [H, W]``; frame 0 has none with ``first_frame_gt``). The one place that reads single frames
    out of an :class:`InpaintInput` (its storage may change; e.g. lazily read frames)."""
    return job.frames[index], job.pipeline.masks[index] > 127


def frame_count(job: InpaintInput) -> int:
    return int(job.frames.shape[0])


def _resize_image(img: Tensor, height: int, width: int) -> Tensor:
    return torch.from_numpy(np.array(Image.fromarray(img.numpy()).resize((width, height), Image.LANCZOS)))


def _center_crop(x: Tensor, aspect: float) -> Tensor:
    h, w = x.shape[1], x.shape[2]
    if w / h > aspect:
        nw = int(round(h * aspect))
        left = (w - nw) // 2
        return x[:, :, left:left + nw]
    nh = int(round(w / aspect))
    top = (h - nh) // 2
    return x[:, top:top + nh]


def prepare_inpaint(
    frames: Tensor, masks: Tensor, first_frame: Tensor | None, *, width: int, height: int, source_fps: float = 0.0,
    target_fps: float = 8.0, dilate_size: int = 32, threshold: float = 0.5, first_frame_gt: bool = True,
    resize_mode: str = "stretch",
) -> InpaintInput:
    """Video ``[T,H,W,3]`` and masks ``[T or 1,H,W]`` (ComfyUI floats in [0, 1], 1 = region to fill) -> pipeline inputs.

    Steps, in the reference's order: frame-rate sampling (every ``int(source_fps // target_fps)``-th frame, §9 item 20),
    optional centre crop to the working aspect, mask binarisation at ``threshold``, then ``reference_inputs``
    (masked video, dilation at source resolution, first frame, ``first_frame_gt``). Without a ``first_frame`` the
    ground-truth frame 0 is the I2V image; with ``first_frame_gt`` it is also the (fully known) frame 0 of the
    video, without it frame 0 keeps its hole (use this for the later parts of a clip done in parts).
    """
    if frames.ndim >= 1 and frames.shape[0] == 0:
        raise ValueError("video: the clip has 0 frames; load a video with at least 1 frame")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"video: expected an IMAGE batch [frames, height, width, 3]; got shape {tuple(frames.shape)}")
    if masks.ndim == 4 and masks.shape[-1] in (1, 3):
        masks = masks[..., 0]
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"mask: expected a MASK batch [frames, height, width]; got shape {tuple(masks.shape)}")
    if masks.shape[0] not in (1, frames.shape[0]):
        raise ValueError(
            f"mask has {masks.shape[0]} frames but video has {frames.shape[0]}: give one mask per frame or a single mask"
        )
    if masks.shape[1:] != frames.shape[1:3]:
        # Policy: no silent resize. A mask of another size usually belongs to another clip or crop, and stretching
        # it would move the hole; the user resizes it explicitly if that is what they want.
        raise ValueError(
            f"mask is {masks.shape[2]}x{masks.shape[1]} (WxH) but video is {frames.shape[2]}x{frames.shape[1]}: "
            "resize the mask to the video size before this node (e.g. Convert Mask to Image -> Upscale Image -> "
            "Convert Image to Mask)"
        )
    for name, t in (("video", frames), ("mask", masks), ("first_frame", first_frame)):
        check_finite(name, t)
    check_size(width, height)
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode: expected one of {', '.join(RESIZE_MODES)}; got {resize_mode!r}")
    step = int(source_fps // target_fps) if source_fps > 0 and target_fps > 0 else 1
    step = max(step, 1)
    if step > 1:
        log.info("frame-rate sampling: keeping every %d-th frame (%.3g fps -> %.3g fps)", step, source_fps, source_fps / step)
    total = frames.shape[0]
    frames = frames[::step]
    masks = masks[::step] if masks.shape[0] == total else masks.expand(frames.shape[0], -1, -1)
    if resize_mode == "center_crop":
        frames, masks = _center_crop(frames, width / height), _center_crop(masks, width / height)
    video = to_uint8(frames)
    hole = ((masks > threshold).to(torch.uint8) * 255).contiguous()
    ff = None
    if first_frame is not None:
        ff = to_uint8(first_frame[0] if first_frame.ndim == 4 else first_frame)
        if ff.shape != video.shape[1:]:
            log.warning(
                "first_frame is %dx%d (WxH) but the video is %dx%d: resizing it (Lanczos); give a first frame of the "
                "video's size to avoid the resize", ff.shape[1], ff.shape[0], video.shape[2], video.shape[1],
            )
            ff = _resize_image(ff, video.shape[1], video.shape[2])
    if ff is None and not first_frame_gt:
        # No first frame and frame 0 not known: frame 0 keeps its hole like every other frame (a continued part of
        # a longer clip); the original frame is the I2V image should this run start from scratch.
        pipe = reference_inputs(video, hole, None, dilate_size, False)
        pipe = PipelineInputs(pipe.video, pipe.masks, video[0])
    else:
        pipe = reference_inputs(video, hole, ff if ff is not None else video[0], dilate_size, first_frame_gt)
    fps = source_fps / step if source_fps > 0 else 0.0
    return InpaintInput(pipe, video, hole, height, width, fps)
