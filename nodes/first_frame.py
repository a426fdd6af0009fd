"""First-frame helper: frame 0 and its grown mask, for an image inpainter (FLUX Fill) before the video model."""
from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..vp_core.pipeline import first_frame
from . import first_frame_source
from .types import INPAINT


class VideoPainterFirstFrame(io.ComfyNode):
    """Frame 0 of the clip and its mask grown exactly like VideoPainter's cv2.dilate with a d x d square (32 for
    inpainting, 48 for editing; an even d grows (d-1)/2 px up/left and d/2 px down/right), ready for core's
    InpaintModelConditioning (FLUX Fill). Connect the inpainted result to VideoPainter Encode's first_frame: the
    reference always fills frame 0 this way first. A VIDEO input is read only up to its first frame. When the
    encoder skips source frames (skip_first_frames), set the same number here: frame 0 is then the clip's first
    kept frame (a different number on the same video is refused, naming both nodes)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterFirstFrame",
            display_name="VideoPainter First Frame for Inpainting",
            category="videopainter/encode",
            description=cls.__doc__,
            inputs=[
                io.MultiType.Input("video", types=[io.Image, io.Video],
                                   tooltip="The clip: an IMAGE batch or a VIDEO (e.g. Load Video); only frame 0 is read."),
                io.MultiType.Input("mask", types=[io.Mask, io.Image, io.Video],
                                   tooltip="Region to fill (1 = fill): a MASK batch, or the mask clip as IMAGE/VIDEO (red channel); frame 0 is used."),
                io.Int.Input("dilate", default=32, min=0, max=256,
                             tooltip="Square kernel in pixels, as cv2.dilate: 32 inpainting (inpaint.sh), 48 editing (edit.sh). "
                                     "Use the same value as the encoder's dilate."),
                io.Float.Input("threshold", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="Mask values above this are holes (as in the encoder)."),
                io.Int.Input("skip_first_frames", default=0, min=0, max=10_000_000, optional=True,
                             tooltip="Source frames before the clip's first frame: the encoder's skip_first_frames (same "
                                     "value), so FLUX Fill paints the frame the video starts from."),
                INPAINT.Input("crop_from", optional=True,
                              tooltip="Crop mode: an encoder of this clip with the same settings and NO first_frame. The "
                                      "image and mask are then its frame 0 as the video model sees it (the crop box of "
                                      "frame 0, at source resolution); video, mask, dilate and threshold come from it."),
            ],
            outputs=[
                io.Image.Output("image", tooltip="Frame 0 of the clip (for InpaintModelConditioning's pixels)."),
                io.Mask.Output("grown_mask", tooltip="Frame 0's hole grown by the dilation (for InpaintModelConditioning's mask)."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, video, mask, dilate: int, threshold: float, skip_first_frames: int = 0,
                crop_from=None) -> io.NodeOutput:
        first_frame_source.check(cls)
        if crop_from is not None:
            out = first_frame.first_frame_of_job(crop_from)
            return io.NodeOutput(out.image, out.mask)
        out = first_frame.first_frame_for_inpainting(video, mask, dilate, threshold, skip_first_frames)
        return io.NodeOutput(out.image, out.mask)


NODES = [VideoPainterFirstFrame]
