"""Preview of what the sampler will fill, before any model runs."""
from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..vp_core.pipeline import preview
from .types import INPAINT


class VideoPainterMaskPreview(io.ComfyNode):
    """A few evenly spaced frames of the encoded clip with the (dilated) region the sampler fills tinted magenta:
    check the mask covers what should change before sampling. Connect a Preview Image to see it."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterMaskPreview",
            display_name="VideoPainter Mask Preview",
            category="videopainter/utils",
            description=cls.__doc__,
            inputs=[
                INPAINT.Input("inpaint", tooltip="The Encode node's inpaint output."),
                io.Int.Input("frames", default=4, min=1, max=64, tooltip="How many evenly spaced frames to show."),
                io.Float.Input("opacity", default=0.5, min=0.0, max=1.0, step=0.05, tooltip="Strength of the tint."),
            ],
            outputs=[io.Image.Output("preview", tooltip="The frames with the hole tinted.")],
        )

    @classmethod
    def execute(cls, inpaint, frames: int = 4, opacity: float = 0.5) -> io.NodeOutput:
        return io.NodeOutput(preview.mask_overlay(inpaint, frames, opacity))


NODES = [VideoPainterMaskPreview]
