"""Utility nodes: window-plan preview."""
from __future__ import annotations

from comfy_api.latest import io, ui

from ..vp_core import windows

WINDOW_FRAMES_TOOLTIP = "Frames per window (4k+1). 49 for CogVideoX-5B-I2V."
OVERLAP_TOOLTIP = (
    "Frames shared by consecutive windows. 'fixed' mode needs 4k+1 (default 1: exact alignment); "
    "'reference' mode uses VideoPainter's default 0."
)
MODE_TOOLTIP = (
    "fixed: every input frame is covered and the output has as many frames as the input. "
    "reference: VideoPainter's own plan (trailing frames dropped, one frame lost per window boundary with overlap 0)."
)


def window_inputs() -> list[io.Input]:
    """The window-plan widgets, shared by the sampler and the preview so both plan the same way."""
    return [
        io.Int.Input("window_frames", default=49, min=5, max=1025, step=4, tooltip=WINDOW_FRAMES_TOOLTIP),
        io.Int.Input("overlap_frames", default=1, min=0, max=1024, tooltip=OVERLAP_TOOLTIP),
        io.Combo.Input("window_mode", options=list(windows.MODES), default="fixed", tooltip=MODE_TOOLTIP),
    ]


class VideoPainterWindowPlan(io.ComfyNode):
    """Shows how a clip of `total_frames` frames is cut into windows, using the same planner as the sampler."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterWindowPlan",
            display_name="VideoPainter Window Plan",
            category="videopainter/utils",
            description=cls.__doc__,
            inputs=[
                io.Int.Input("total_frames", default=49, min=0, max=100000, tooltip="Frames in the (down-sampled) clip."),
                *window_inputs(),
            ],
            outputs=[io.String.Output("plan_text", display_name="plan")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, total_frames: int, window_frames: int, overlap_frames: int, window_mode: str) -> io.NodeOutput:
        plan = windows.plan_windows(total_frames, window_frames, overlap_frames, window_mode)
        text = plan.summary()
        return io.NodeOutput(text, ui=ui.PreviewText(text))


NODES = [VideoPainterWindowPlan]
