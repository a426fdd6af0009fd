"""Encode node: video + mask (+ optional first frame) -> the sampler's inpainting input."""
from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..vp_core import preprocess
from .types import INPAINT


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
                io.Image.Input("video", tooltip="Frames of the clip (e.g. from Load Video)."),
                io.Mask.Input("mask", tooltip="Region to fill (1 = fill): one mask per frame, or one mask for all frames."),
                io.Image.Input("first_frame", optional=True,
                               tooltip="Inpainted first frame (e.g. FLUX Fill on frame 0, as the reference). Without it (fallback, "
                                       "warned in the log): frame 0 is inpainted like the others and window 0 gets a zero image "
                                       "latent, as in 5% of the model's training (noised_image_dropout); first_frame_gt is ignored."),
                io.Int.Input("width", default=720, min=16, max=4096, step=16, tooltip="Model width (720 for CogVideoX-5B-I2V)."),
                io.Int.Input("height", default=480, min=16, max=4096, step=16, tooltip="Model height (480 for CogVideoX-5B-I2V)."),
                io.Combo.Input("resize_mode", options=list(preprocess.RESIZE_MODES), default="stretch",
                               tooltip="stretch: resize to width x height like the reference; center_crop: crop to the aspect first."),
                io.Float.Input("source_fps", default=0.0, min=0.0, max=240.0, step=0.001,
                               tooltip="Frame rate of the input. With target_fps, every step-th frame is kept (see fps_rule). 0 = keep all frames."),
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
            ],
            outputs=[
                INPAINT.Output("inpaint"),
                io.Image.Output("frames", tooltip="The frame-rate sampled original frames (for compositing/saving)."),
                io.Mask.Output("hole_mask", tooltip="The binarised, undilated masks of those frames."),
                io.Float.Output("fps", tooltip="Frame rate of the sampled frames (0 if source_fps was 0)."),
            ],
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
                dilate: int, threshold: float, first_frame_gt: bool, first_frame=None,
                fps_rule: str = "reference") -> io.NodeOutput:
        job = preprocess.prepare_inpaint(
            video, mask, first_frame, width=width, height=height, source_fps=source_fps, target_fps=target_fps,
            dilate_size=dilate, threshold=threshold, first_frame_gt=first_frame_gt, resize_mode=resize_mode,
            fps_rule=fps_rule,
        )
        return io.NodeOutput(job, job.frames.float() / 255.0, job.hole.float() / 255.0, job.fps)


NODES = [VideoPainterEncode]
