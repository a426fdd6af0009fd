"""Encode node: video + mask (+ optional first frame) -> the sampler's inpainting input."""
from __future__ import annotations

import logging

import torch
from comfy_api.v0_0_2 import io

from ..vp_core.pipeline import clip_inputs, crop, preprocess, source_rate

from ..vp_core.video import video_io
from . import first_frame_source
from .types import INPAINT

log = logging.getLogger(__name__)


def _linked_outputs(prompt: dict | None, node_id: str | None) -> set[int] | None:
    """Output slots of this node that another node reads (None when the prompt is not known)."""
    if not prompt or node_id is None:
        return None
    return {v[1] for n in prompt.values() for v in n.get("inputs", {}).values()
            if isinstance(v, list) and len(v) == 2 and str(v[0]) == str(node_id)}


def _batch(src, scale: float, name: str, linked: set[int] | None, slot: int, shape: tuple[int, ...]) -> torch.Tensor:
    """A streamed source as a float batch for the IMAGE/MASK outputs, only if a node reads that output."""
    if linked is not None and slot not in linked:
        return torch.zeros(0, *shape)
    n = len(src)
    log.warning(
        "encode: the '%s' output is connected, so the whole sampled clip (%d frames of %dx%d) is held in memory as "
        "float32 (%.0f MB); for long clips use 'VideoPainter Composite Video', which reads the frames window by window",
        name, n, src.width, src.height, n * src.width * src.height * 4 * (3 if len(shape) == 3 else 1) / 2**20,
    )
    return torch.cat([video_io.read_frames(src, a, min(a + 64, n)).float() / scale for a in range(0, n, 64)])


class VideoPainterEncode(io.ComfyNode):
    """Prepares a clip for inpainting the way VideoPainter's infer/inpaint.py does: frame-rate sampling, masked video
    (holes blacked out), mask dilation at source resolution, the first frame from an image inpainter (e.g. FLUX Fill).
    Without a first frame, frame 0 is inpainted like the others and window 0 gets a zero image latent (a fallback,
    logged as a warning); the original pixels inside the hole are never used. Resizing to the model's size happens
    per window in the sampler (PIL Lanczos)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterEncode",
            display_name="VideoPainter Encode Video + Mask",
            category="videopainter/encode",
            description=cls.__doc__,
            inputs=[
                io.MultiType.Input(
                    io.Image.Input("video", tooltip="The clip: a VIDEO (Load Video; read window by window, any length) or "
                                                    "an IMAGE batch (short clips: ~25 MB per 1080p frame in memory)."),
                    types=[io.Video]),
                io.MultiType.Input(
                    io.Mask.Input("mask", tooltip="Region to fill (1 = fill): a mask VIDEO (mask_channel > threshold, read "
                                                  "window by window) or a MASK batch (one per frame, or one for all)."),
                    types=[io.Video]),
                io.Image.Input("first_frame", optional=True,
                               tooltip="Inpainted first frame (e.g. FLUX Fill on frame 0, as the reference). Without it (fallback, "
                                       "warned in the log): frame 0 is inpainted like the others and window 0 gets a zero image "
                                       "latent, as in 5% of the model's training (noised_image_dropout); first_frame_gt is ignored."),
                io.Int.Input("width", default=720, min=16, max=4096, step=16, tooltip="Model width (720 for CogVideoX-5B-I2V)."),
                io.Int.Input("height", default=480, min=16, max=4096, step=16, tooltip="Model height (480 for CogVideoX-5B-I2V)."),
                io.Combo.Input("resize_mode", options=list(preprocess.RESIZE_MODES), default="stretch",
                               tooltip="stretch: resize to width x height like the reference; center_crop: crop to the aspect first."),
                io.Float.Input("source_fps", default=0.0, min=0.0, max=240.0, step=0.001,
                               tooltip="Frame rate of the input. With target_fps, every step-th frame is kept (see fps_rule). "
                                       "0 = a VIDEO's own rate (an IMAGE batch then keeps every frame)."),
                io.Float.Input("target_fps", default=8.0, min=0.0, max=240.0, step=0.5, tooltip="VideoPainter runs at about 8 fps."),
                io.Int.Input("dilate", default=32, min=0, max=256,
                             tooltip="Mask dilation in source pixels (square kernel, like cv2.dilate): 32 inpaint, 48 edit, 16 app."),
                io.Float.Input("threshold", default=0.5, min=0.0, max=1.0, step=0.01, tooltip="Mask values above this are holes."),
                io.Boolean.Input("first_frame_gt", default=True,
                                 tooltip="Treat frame 0 as known (its mask is cleared), as the reference does with an inpainted first "
                                         "frame. Applies only when a first_frame is connected."),
                io.Combo.Input("fps_rule", options=list(preprocess.FPS_RULES), default="reference", optional=True,
                               tooltip="Frame step. reference: int(fps // target) on integer rates, as VideoPainter (its fps is an "
                                       "integer per clip): 23.976 fps counts as 24 -> step 3 at 8 fps. float: the exact rates: "
                                       "23.976 // 8 -> step 2. The rule and step are logged."),
                io.Int.Input("skip_first_frames", default=0, min=0, max=10_000_000, optional=True,
                             tooltip="Source frames dropped before frame-rate sampling starts (like VideoHelperSuite's "
                                     "skip_first_frames). Give the first-frame node the same value."),
                io.Int.Input("frame_load_cap", default=0, min=0, max=10_000_000, optional=True,
                             tooltip="At most this many frames after sampling (0 = all), like VideoHelperSuite's "
                                     "frame_load_cap (output_rate source: cap x step source frames are written)."),
                io.Combo.Input("mask_channel", options=list(video_io.MASK_CHANNELS), default="red", optional=True,
                               tooltip="Channel of a mask VIDEO that holds the mask (as core's Image To Mask)."),
                io.Combo.Input("crop_mode", options=list(crop.CROP_MODES), default=crop.FULL_FRAME, optional=True,
                               tooltip="full frame: the whole frame is resized to width x height (the reference). crop fixed: "
                                       "the model sees one box of the working aspect around the hole over the whole clip, "
                                       "resized to width x height (more model pixels for the hole on HD footage); crop follow: "
                                       "the same size box follows the hole smoothly. The composite pastes it back at source "
                                       "resolution. Falls back to full frame (logged) when hole + margin needs the whole frame."),
                io.Float.Input("context_factor", default=1.5, min=1.0, max=100.0, step=0.05, optional=True,
                               tooltip="Crop mode: the box is at least the hole's size (grown by dilate) times this."),
                io.Int.Input("context_pixels", default=32, min=0, max=4096, optional=True,
                             tooltip="Crop mode: source pixels of context added on each side of the hole."),
                io.Int.Input("follow_smoothing", default=9, min=1, max=1001, optional=True,
                             tooltip="crop follow: frames of the moving average that smooths the box's track."),
                io.Combo.Input("output_rate", options=list(source_rate.OUTPUT_RATES), default="source", optional=True,
                               tooltip="What 'VideoPainter Composite Video' writes. source: every source frame (after "
                                       "skip / cap) at the source's rate, timing and audio; the model still makes the "
                                       "sampled frames and the hole of the frames in between is filled by optical-flow "
                                       "interpolation of the generated frames (the background stays the source's bytes). "
                                       "sampled: only the sampled frames, at the sampled rate (the reference's output)."),
            ],
            outputs=[
                INPAINT.Output("inpaint"),
                io.Image.Output("frames", tooltip="The frame-rate sampled original frames (for compositing/saving)."),
                io.Mask.Output("hole_mask", tooltip="The binarised, undilated masks of those frames."),
                io.Float.Output("fps", tooltip="Frame rate of the sampled frames (0 if source_fps was 0)."),
                io.String.Output("info", tooltip="The geometry: full frame or the crop box, and the hole's model pixels per "
                                                 "source pixel (linear)."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, width: int | None = None, height: int | None = None) -> bool | str:
        # Explicit arguments, no **kwargs: ComfyUI then still checks the other inputs' min/max (but not these two,
        # which size_error checks). Values that come from a link are None here and are checked when the node runs.
        if width is None or height is None:
            return True
        return preprocess.size_error(width, height) or True

    @classmethod
    def execute(cls, video, mask, width: int, height: int, resize_mode: str, source_fps: float, target_fps: float,
                dilate: int, threshold: float, first_frame_gt: bool, first_frame=None, fps_rule: str = "reference",
                skip_first_frames: int = 0, frame_load_cap: int = 0, mask_channel: str = "red",
                crop_mode: str = crop.FULL_FRAME, context_factor: float = 1.5, context_pixels: int = 32,
                follow_smoothing: int = 9, output_rate: str = "source") -> io.NodeOutput:
        first_frame_source.check(cls)
        settings = clip_inputs.ClipSettings(source_fps, target_fps, skip_first_frames, frame_load_cap, mask_channel,
                                            threshold, fps_rule, output_rate)
        job = clip_inputs.prepare(video, mask, first_frame, settings, width=width, height=height, dilate_size=dilate,
                                  first_frame_gt=first_frame_gt, resize_mode=resize_mode,
                                  crop=clip_inputs.CropSettings(crop_mode, context_factor, context_pixels, follow_smoothing))
        if not job.streamed:
            return io.NodeOutput(job, job.frames.float() / 255.0, job.hole.float() / 255.0, job.fps, job.info)
        hidden = getattr(cls, "hidden", None)
        linked = _linked_outputs(getattr(hidden, "prompt", None), getattr(hidden, "unique_id", None))
        h, w = job.frames.height, job.frames.width
        return io.NodeOutput(job, _batch(job.frames, 255.0, "frames", linked, 1, (h, w, 3)),
                             _batch(job.hole, 255.0, "hole_mask", linked, 2, (h, w)), job.fps, job.info)


NODES = [VideoPainterEncode]
