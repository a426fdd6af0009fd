"""Cut an encoded clip into parts in the sampled timeline (a long clip over several runs or samplers)."""
from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..vp_core.pipeline import parts
from .types import INPAINT
from .utils import window_inputs


class VideoPainterCutPart(io.ComfyNode):
    """One part of an encoded clip, cut at window boundaries of the sampled timeline (the frames the model sees,
    after frame-rate sampling), so parts chained through the ID state and joined with 'VideoPainter Join Latents'
    equal one run over the whole clip. A cut that could not join exactly is refused with the numbers. Give the
    samplers the same window settings as this node."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterCutPart",
            display_name="VideoPainter Cut Part",
            category="videopainter/id_state",
            description=cls.__doc__,
            inputs=[
                INPAINT.Input("inpaint", tooltip="The whole clip, from 'VideoPainter Encode Video + Mask'."),
                *window_inputs(),
                io.Int.Input("windows_per_part", default=10, min=1, max=100_000,
                             tooltip="Windows in each part (the last part takes what is left)."),
                io.Int.Input("part", default=0, min=0, max=100_000, tooltip="Which part, from 0."),
            ],
            outputs=[INPAINT.Output("part_inpaint", display_name="inpaint"), io.String.Output("info")],
        )

    @classmethod
    def execute(cls, inpaint, window_frames: int, overlap_frames: int, window_mode: str, windows_per_part: int,
                part: int) -> io.NodeOutput:
        out, text = parts.cut_part(inpaint, window_frames, overlap_frames, window_mode, windows_per_part, part)
        return io.NodeOutput(out, text)


NODES = [VideoPainterCutPart]
