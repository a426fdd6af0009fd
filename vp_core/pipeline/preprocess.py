"""Video and mask pre-processing (spec §6.1, §6.3): the one module that prepares pixels and masks.

Frames are ``uint8 [T, H, W, 3]`` tensors and masks ``uint8 [T, H, W]`` (255 = hole) at source resolution until a
window is processed; only then is that window resized (PIL Lanczos through diffusers' ``VideoProcessor``, as the
reference), so memory does not grow with the clip beyond the source frames themselves.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.video_processor import VideoProcessor
from PIL import Image
from scipy import ndimage
from torch import Tensor

from ..video.video_io import FrameSource, Frames, Mapped, close, read_frames, reader
from .crop import CropPlan

log = logging.getLogger(__name__)

_VIDEO = VideoProcessor(vae_scale_factor=8)
_MASK = VideoProcessor(vae_scale_factor=8, do_normalize=False, do_binarize=True, do_convert_grayscale=True)


def dilate(masks: Tensor, size: int) -> Tensor:
    """Dilate ``[T, H, W]`` masks with a ``size x size`` square, anchored like OpenCV (``cv2.dilate`` with
    ``np.ones((d, d))``): a hole grows ``(d-1)//2`` px up/left and ``d//2`` px down/right (off-centre for even d).

    A flat square is separable: two 1-D running maxima (scipy's ``maximum_filter1d``, whose cost does not grow with
    ``d``: about 40 ms per 1080p frame with d = 33 on one core, where ``max_pool2d`` takes 0.6 s and kornia's
    ``morphology.dilation`` needs ``d*d`` copies of the frame). Its window at origin 0 is ``y - d//2 .. y + d - 1 -
    d//2``, the OpenCV anchor; ``nearest`` borders repeat an edge pixel the window already holds, so the border
    changes nothing.
    """
    if size <= 1:
        return masks.clone()
    x = masks.cpu().numpy()
    for axis in (1, 2):
        x = ndimage.maximum_filter1d(x, size, axis=axis, mode="nearest")
    return torch.from_numpy(x).to(masks.device)


def mask_video(frames: Tensor, masks: Tensor) -> Tensor:
    """Hole pixels (``masks > 127``, undilated) set to black."""
    return torch.where((masks > 127)[..., None], torch.zeros_like(frames), frames)


def dilate_holes(masks: Tensor, size: int, chunk: int = 8) -> Tensor:
    """Binary ``uint8`` holes (255) of ``masks > 127`` dilated by ``size``, ``chunk`` frames at a time (dilation is
    per frame, so this is exact; it bounds the float copies at source resolution)."""
    hole = (masks > 127).to(torch.uint8) * 255
    return torch.cat([dilate(hole[i:i + chunk], size) for i in range(0, hole.shape[0], chunk)]) if hole.shape[0] else hole


@dataclass
class PipelineInputs:
    """What the reference passes to its pipeline: ``video`` = masked video with the inpainted first frame,
    ``masks`` = dilated binary masks (255 = hole), ``image`` = the I2V first frame; ``None`` when there is none
    (no first frame given): window 0 then gets a zero image latent (see ``first_frame_inputs``)."""

    video: Tensor
    masks: Tensor
    image: Tensor | None


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
    masked = mask_video(frames, masks)
    dilated = dilate_holes(masks, dilate_size)
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


NO_FIRST_FRAME_REMEDY = (
    "for the reference's result connect an inpainted first frame: frame 0 filled by an image inpainter, e.g. FLUX "
    "Fill with 'VideoPainter First Frame for Inpainting' (workflows/videopainter_flux_fill_first_frame.json)"
)


def first_frame_inputs(
    video: Tensor, hole: Tensor, first_frame: Tensor | None, dilate_size: int, first_frame_gt: bool
) -> PipelineInputs:
    """The one place that decides the I2V image and frame 0's mask, from uint8 frames and binary masks.

    With a ``first_frame`` (an inpainted frame 0): exactly ``reference_inputs`` (``infer/inpaint.py``).

    Without one, the original frame 0 must not condition anything: its hole still shows the object to remove or
    edit. Fallback: frame 0 is a hole like every other frame (hole blacked out in the masked video, its dilated mask
    kept, so ``first_frame_gt`` cannot apply) and the I2V image is ``None``, which the sampler turns into an all-zero
    image latent. Both are inputs the model was trained with: ``train_cogvideox_inpainting_i2v_video.py`` replaces
    the image latent by zeros with probability ``--noised_image_dropout`` (0.05 in ``train/VideoPainter.sh`` and
    ``VideoPainterID.sh``), and every frame after frame 0 reaches the branch masked this way. Neither the hole's
    original pixels nor the masked frame 0 (a black blob an I2V model would copy) become the I2V image.
    """
    if first_frame is not None:
        return reference_inputs(video, hole, first_frame, dilate_size, first_frame_gt)
    pipe = reference_inputs(video, hole, None, dilate_size, first_frame_gt=False)
    return PipelineInputs(pipe.video, pipe.masks, None)


FPS_RULES = ("reference", "float")


def nominal_fps(fps: float) -> int:
    """A frame rate at its nominal integer, as the reference's integer ``fps`` (23.976 -> 24; half up, not to even)."""
    return math.floor(fps + 0.5)


def frame_step(source_fps: float, target_fps: float, rule: str = "reference") -> int:
    """Keep every ``frame_step``-th frame to go from ``source_fps`` towards ``target_fps`` (1 = every frame).

    ``reference``: the reference's integer arithmetic, ``int(fps // down_sample_fps)`` with both rates integers
    (``infer/inpaint.py`` takes ``fps`` from its dataset CSV, an integer per clip, and ``--down_sample_fps`` is an
    int); a float rate is taken at its nominal integer (rounded): 23.976 -> 24 -> step 3 at 8 fps. ``float``:
    ``int(source_fps // target_fps)`` on the exact rates: 23.976 -> step 2. (The reference's fallback for a file
    outside its CSV, ``int(cv2 fps)``, truncates; with an integer target that gives the ``float`` step.)
    A rate of 0 (unknown) keeps every frame.
    """
    if rule not in FPS_RULES:
        raise ValueError(f"fps_rule: expected one of {', '.join(FPS_RULES)}; got {rule!r}")
    if rule == "reference":
        source_fps, target_fps = nominal_fps(source_fps), nominal_fps(target_fps)
    if source_fps <= 0 or target_fps <= 0:
        return 1
    return max(int(source_fps // target_fps), 1)


def logged_frame_step(source_fps: float, target_fps: float, fps_rule: str = "reference") -> int:
    """``frame_step`` with the rule and the step in the log (both input paths log it the same way)."""
    step = frame_step(source_fps, target_fps, fps_rule)
    if source_fps > 0:
        nominal = nominal_fps(source_fps)
        counted = f" (counted as {nominal})" if fps_rule == "reference" and nominal != source_fps else ""
        log.info("frame-rate sampling (fps_rule %s): %.6g fps%s -> target %.6g fps: step %d (frames 0, %d, %d, ...: "
                 "%.6g fps)", fps_rule, source_fps, counted, target_fps, step, step, 2 * step, source_fps / step)
    return step


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
    frames: Frames
    hole: Frames
    height: int
    width: int
    fps: float
    audio: "AudioRef | None" = None
    window_settings: tuple | None = None  # (window_frames, overlap_frames, mode) a part was cut for (vp_core.pipeline.parts)
    crop: CropPlan | None = None  # crop mode: the model's box per frame; ``frames``/``hole`` stay at source size
    info: str = ""  # the encoder's geometry line (model pixels per source pixel)
    # every source frame, for output at the source rate: a source_rate.SourceTimeline (which imports this module)
    source: object | None = None
    part: tuple[int, int] | None = None  # (part, parts) of a cut part, 0-based (vp_core.pipeline.parts)

    @property
    def frame_count(self) -> int:
        """Frames of the (sampled) clip."""
        return len(self.pipeline.video)

    @property
    def streamed(self) -> bool:
        """True when the frames are read from a file window by window rather than held in memory."""
        return not isinstance(self.pipeline.video, Tensor)


@dataclass(frozen=True)
class AudioRef:
    """Where the clip's sound is: the source file and the time of the first sampled frame in it (seconds)."""

    source: object  # a path or an in-memory file
    start: float


def frames_and_holes(job: InpaintInput, indices: list[int]) -> Iterator[tuple[Tensor, Tensor]]:
    """Frames ``indices`` of an encoded job (``uint8 [H, W, 3]``, source resolution), each with the dilated hole the
    sampler fills there (``bool [H, W]``; frame 0 has none with ``first_frame_gt``), in ascending order, through
    readers of their own (the job's readers, which the sampler uses, keep their place) released at the end. The one
    place that reads single frames out of an :class:`InpaintInput` (its storage may change; e.g. lazily read frames)."""
    frames, masks = reader(job.frames), reader(job.pipeline.masks)
    try:
        for index in sorted(indices):
            frame, hole = read_frames(frames, index, index + 1)[0], read_frames(masks, index, index + 1)[0] > 127
            if job.crop is not None:  # the box's mask, in source coordinates
                top, left, h, w = job.crop.box(index)
                full = torch.zeros(frame.shape[:2], dtype=torch.bool)
                full[top:top + h, left:left + w] = hole
                hole = full
            yield frame, hole
    finally:
        close(frames)
        close(masks)


def frame_count(job: InpaintInput) -> int:
    return job.frame_count


def _resize_image(img: Tensor, height: int, width: int) -> Tensor:
    return torch.from_numpy(np.array(Image.fromarray(img.numpy()).resize((width, height), Image.LANCZOS)))


# A first frame of another size than the clip counts as "of the clip's aspect" within this relative tolerance: core's
# VAE nodes crop images to their latent grid (multiples of 8), so FLUX Fill's result on an 854x480 frame is 848x480
# (0.7 %); on sides of 400 px and more such crops stay under 2 %.
FIRST_FRAME_ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True)
class FrameGeometry:
    """How a source frame (``source`` = height, width) becomes the model's input at ``working`` size: the region
    ``crop`` = (top, left, height, width) of every frame is kept (the whole frame with ``stretch``; the centred
    region of the working aspect with ``center_crop``) and each window resizes it to the working size (Lanczos).

    The one place that decides the geometry of the video, the mask and the first frame alike (``frame_geometry``)."""

    source: tuple[int, int]
    working: tuple[int, int]
    crop: tuple[int, int, int, int]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the kept region: the frames' size in the pipeline until a window resizes them."""
        return self.crop[2], self.crop[3]

    @property
    def crops(self) -> bool:
        return self.size != self.source

    def apply(self, x: Tensor) -> Tensor:
        """The kept region of frames ``[T, H, W, ...]`` of the source size (a view)."""
        top, left, h, w = self.crop
        return x[:, top:top + h, left:left + w]

    def first_frame(self, first_frame: Tensor | None) -> Tensor | None:
        """The inpainted first frame (IMAGE ``[1, H, W, 3]`` or ``[H, W, 3]``) as uint8 ``[*self.size, 3]``, placed
        like frame 0 of the clip:

        - at the clip's (source) size: cut exactly like the video (frame 0 of an image inpainter's output);
        - at the working size: taken as already cut and resized (not cut again), only scaled to ``self.size``;
        - any other size of the clip's aspect ratio (within ``FIRST_FRAME_ASPECT_TOLERANCE``): the same cut as the
          video, then resized (with a warning);
        - otherwise a ValueError: stretching it would move its content against the clip's frames.
        """
        if first_frame is None:
            return None
        if first_frame.ndim == 4 and first_frame.shape[0] != 1:
            raise ValueError(
                f"first_frame: expected one image (the inpainted frame 0); got a batch of {first_frame.shape[0]} images. "
                "Connect a single image: the image inpainter's result for frame 0 (e.g. 'VideoPainter First Frame for "
                "Inpainting' -> FLUX Fill), or pick one with Image From Batch (batch_index 0, length 1)"
            )
        ff = to_uint8(first_frame[0] if first_frame.ndim == 4 else first_frame)
        shape = tuple(ff.shape[:2])
        if shape == self.source:
            return self.apply(ff[None])[0].contiguous()
        if self.crops and shape == self.size:
            log.info("first_frame is %dx%d (WxH), the size of the region the model sees: taken as that region of the "
                     "clip's frame 0 (e.g. the first-frame node's crop-mode output after the image inpainter)",
                     shape[1], shape[0])
            return ff.contiguous()
        if shape == self.working:
            log.info("first_frame is at the working size %dx%d (WxH): used as the clip's frame 0 after %s",
                     shape[1], shape[0], "the crop and resize" if self.crops else "the resize")
            return _resize_image(ff, *self.size) if shape != self.size else ff
        (sh, sw), (wh, ww) = self.source, self.working
        if abs((shape[1] / shape[0]) / (sw / sh) - 1) > FIRST_FRAME_ASPECT_TOLERANCE:
            raise ValueError(
                f"first_frame is {shape[1]}x{shape[0]} (WxH, aspect {shape[1] / shape[0]:.2f}) but the video is "
                f"{sw}x{sh} (aspect {sw / sh:.2f}; working size {ww}x{wh}): the aspect ratios differ by more than "
                f"{FIRST_FRAME_ASPECT_TOLERANCE:.0%}, so it cannot be placed on the clip's first frame without moving "
                f"its content. Give the clip's first frame after the image inpainter at the video's size {sw}x{sh} "
                f"(e.g. 'VideoPainter First Frame for Inpainting' -> FLUX Fill), or one already cut and resized to the "
                f"working size {ww}x{wh}"
            )
        log.warning(
            "first_frame is %dx%d (WxH) but the video is %dx%d: %s (Lanczos); give a first frame of the video's size "
            "to avoid the resize", shape[1], shape[0], sw, sh,
            "cropping it like the video and resizing it" if self.crops else "resizing it",
        )
        own = frame_geometry(shape[0], shape[1], width=ww, height=wh, resize_mode="center_crop" if self.crops else "stretch")
        return _resize_image(own.apply(ff[None])[0].contiguous(), *self.size)


def frame_geometry(source_height: int, source_width: int, *, width: int, height: int, resize_mode: str) -> FrameGeometry:
    """The :class:`FrameGeometry` of source frames ``source_width`` x ``source_height`` for the working size
    ``width`` x ``height`` and ``resize_mode`` (``stretch``: the whole frame; ``center_crop``: the centred region of
    the working aspect, rounded to whole pixels)."""
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode: expected one of {', '.join(RESIZE_MODES)}; got {resize_mode!r}")
    h, w, top, left = source_height, source_width, 0, 0
    if resize_mode == "center_crop":
        aspect = width / height
        if w / h > aspect:
            w = int(round(h * aspect))
            left = (source_width - w) // 2
        else:
            h = int(round(w / aspect))
            top = (source_height - h) // 2
    return FrameGeometry((source_height, source_width), (height, width), (top, left, h, w))


def _log_no_first_frame(first_frame_gt: bool) -> None:
    what = (
        "no first_frame given: frame 0 is inpainted like every other frame (its original pixels inside the hole are "
        "not used) and window 0 gets a zero image latent (no image condition, as in 5% of the model's training "
        "samples: noised_image_dropout 0.05)"
    )
    if first_frame_gt:
        log.warning("%s; first_frame_gt is ignored. This is a fallback: %s", what, NO_FIRST_FRAME_REMEDY)
    else:  # the documented setting of a later part continued from an ID state, whose latent replaces the zero one
        log.info("%s, unless an id_state from an earlier part is given to the sampler", what)


def prepare_inpaint(
    frames: Tensor, masks: Tensor, first_frame: Tensor | None, *, width: int, height: int, source_fps: float = 0.0,
    target_fps: float = 8.0, dilate_size: int = 32, threshold: float = 0.5, first_frame_gt: bool = True,
    resize_mode: str = "stretch", fps_rule: str = "reference",
) -> InpaintInput:
    """Video ``[T,H,W,3]`` and masks ``[T or 1,H,W]`` (ComfyUI floats in [0, 1], 1 = region to fill) -> pipeline inputs.

    Steps, in the reference's order: frame-rate sampling (every ``frame_step``-th frame, ``fps_rule``, §9 item 20),
    optional centre crop to the working aspect, mask binarisation at ``threshold``, then ``first_frame_inputs``
    (masked video, dilation at source resolution, first frame, ``first_frame_gt``). Without a ``first_frame``
    frame 0 keeps its hole and window 0 gets a zero image latent (the documented fallback, logged as a warning
    unless ``first_frame_gt`` is off, the setting of a later part continued from an ID state).
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
    geometry = frame_geometry(frames.shape[1], frames.shape[2], width=width, height=height, resize_mode=resize_mode)
    ff = geometry.first_frame(first_frame)
    step = logged_frame_step(source_fps, target_fps, fps_rule)
    total = frames.shape[0]
    frames = frames[::step]
    masks = masks[::step] if masks.shape[0] == total else masks.expand(frames.shape[0], -1, -1)
    video = to_uint8(geometry.apply(frames))
    hole = ((geometry.apply(masks) > threshold).to(torch.uint8) * 255).contiguous()
    if ff is None:
        _log_no_first_frame(first_frame_gt)
    pipe = first_frame_inputs(video, hole, ff, dilate_size, first_frame_gt)
    fps = source_fps / step if source_fps > 0 else 0.0
    return InpaintInput(pipe, video, hole, height, width, fps)


# ------------------------------------------------------------------------------------ streamed (window by window)


class PipelineVideo(FrameSource):
    """The masked video of ``first_frame_inputs``, computed for the frames read: holes blacked out, frame 0 replaced
    by ``first`` (the inpainted first frame; without one frame 0 keeps its hole)."""

    def __init__(self, frames: FrameSource, hole: FrameSource, first: Tensor | None):
        self.frames, self.hole, self.first = frames, hole, first
        self.height, self.width = frames.height, frames.width

    def reopen(self) -> "PipelineVideo":
        return PipelineVideo(self.frames.reopen(), self.hole.reopen(), self.first)

    def close(self) -> None:
        self.frames.close()
        self.hole.close()

    def __len__(self) -> int:
        return len(self.frames)

    def read(self, start: int, end: int) -> Tensor:
        out = mask_video(self.frames.read(start, end), self.hole.read(start, end))
        if start == 0 and self.first is not None:
            out[0] = self.first
        return out


def pipeline_masks(hole: FrameSource, dilate_size: int, first_frame_gt: bool) -> FrameSource:
    """The dilated masks of ``reference_inputs`` for the frames read (mask 0 cleared with ``first_frame_gt``)."""

    def fn(x: Tensor, start: int) -> Tensor:
        out = dilate_holes(x, dilate_size)
        if start == 0 and first_frame_gt:
            out[0] = 0
        return out

    return Mapped(hole, fn)


def prepare_stream(
    video: FrameSource, hole: FrameSource, first_frame: Tensor | None, *, width: int, height: int, fps: float,
    dilate_size: int = 32, first_frame_gt: bool = True, resize_mode: str = "stretch",
    audio: AudioRef | None = None, crop: CropPlan | None = None, source=None,
) -> InpaintInput:
    """``prepare_inpaint`` for frames read window by window: ``video`` (uint8 RGB) and ``hole`` (binary uint8, 255 =
    hole) are sampled sources of the same length; nothing but the first frame is read here.

    Each consumer gets its own reader (``reopen``): the sampler reads the masks for the masked video and for the
    dilated masks at different times, and the composite reads the originals again while it writes.
    """
    if len(video) == 0:
        raise ValueError("video: the clip has 0 frames (after skip_first_frames and frame-rate sampling); "
                         "load a longer video or skip fewer frames")
    if len(hole) != len(video):
        raise ValueError(
            f"mask has {len(hole)} frames but video has {len(video)} (after frame-rate sampling): give one mask per "
            "frame or a single mask, at the same frame rate"
        )
    if (hole.height, hole.width) != (video.height, video.width):
        raise ValueError(
            f"mask is {hole.width}x{hole.height} (WxH) but video is {video.width}x{video.height}: give a mask video "
            "of the video's size"
        )
    check_size(width, height)
    if first_frame is not None:
        check_finite("first_frame", first_frame)
    source_video, source_hole = video, hole
    if crop is not None:  # crop to the mask: the model's frames are the boxes; the composite keeps the source's
        if len(crop) != len(video) or crop.source != (video.height, video.width):
            raise ValueError(f"crop: planned for {len(crop)} frames of {crop.source} but the clip has {len(video)} of "
                             f"{(video.height, video.width)}")
        top, left, bh, bw = crop.box(0)
        geometry = FrameGeometry((video.height, video.width), (height, width), (top, left, bh, bw))
        if first_frame is not None:
            got = tuple((first_frame[0] if first_frame.ndim == 4 else first_frame).shape[:2])
            if got not in (geometry.source, geometry.size, geometry.working):
                raise ValueError(
                    f"first_frame is {got[1]}x{got[0]} (WxH); in crop mode it must be the clip's frame 0 at the video's "
                    f"size {video.width}x{video.height}, the crop box {bw}x{bh} (the first-frame node's crop output) or "
                    f"the working size {width}x{height}")
        video, hole = (Mapped(src, crop.cut, bh, bw) for src in (video, hole))
    else:
        geometry = frame_geometry(video.height, video.width, width=width, height=height, resize_mode=resize_mode)
        if geometry.crops:
            video, hole = (Mapped(src, lambda x, _s: geometry.apply(x).contiguous(), *geometry.size) for src in (video, hole))
            if source is not None:  # the source-rate frames get the same crop
                source = replace(source, frames=Mapped(source.frames, lambda x, _s: geometry.apply(x).contiguous(),
                                                       *geometry.size),
                                 hole=Mapped(source.hole, lambda x, _s: geometry.apply(x).contiguous(), *geometry.size))
        source_video, source_hole = video, hole
    ff = geometry.first_frame(first_frame)
    if ff is None:  # as first_frame_inputs: frame 0 is a hole like the others, no I2V image, first_frame_gt void
        _log_no_first_frame(first_frame_gt)
    pipe = PipelineInputs(
        PipelineVideo(video.reopen(), hole.reopen(), ff),
        pipeline_masks(hole.reopen(), dilate_size, first_frame_gt and ff is not None),
        ff,
    )
    return InpaintInput(pipe, source_video.reopen(), source_hole.reopen(), height, width, fps, audio, crop=crop,
                        source=source)
