"""Utility nodes: window-plan preview, mask check."""
from __future__ import annotations

import inspect
import logging

from comfy_api.v0_0_2 import io, ui

from ..vp_core.pipeline import clip_inputs, masks, windows

from ..vp_core.video import video_io

log = logging.getLogger(__name__)

WINDOW_FRAMES_TOOLTIP = "Frames per window (4k+1). 49 for CogVideoX-5B-I2V."
OVERLAP_TOOLTIP = (
    "Frames shared by consecutive windows. 'fixed' mode needs 4k+1 (default 1: exact alignment); "
    "'reference' mode uses VideoPainter's default 0."
)
MODE_TOOLTIP = (
    "fixed: every input frame is covered and the output has as many frames as the input. "
    "reference: VideoPainter's own plan (trailing frames dropped, one frame lost per window boundary with overlap 0)."
)


def advanced_boolean(name: str, **kwargs) -> io.Boolean.Input:
    """An optional Boolean that hosts with advanced inputs (ComfyUI 0.27: ``advanced=True``) fold away; older hosts
    (0.3.75) have no such flag and show it as a plain optional input."""
    if "advanced" in inspect.signature(io.Boolean.Input.__init__).parameters:
        kwargs["advanced"] = True
    return io.Boolean.Input(name, optional=True, **kwargs)


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


class VideoPainterMaskCheck(io.ComfyNode):
    """Checks a mask before inpainting and passes it through unchanged. Warns (log and on the node) when a frame's
    mask is empty (nothing to fill), full (no context kept) or tiny (a hole below min_fraction of the frame may be
    missed by the model's 8x latent / 2x2 token grid). The report lists the hole pixels of every frame."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterMaskCheck",
            display_name="VideoPainter Mask Check",
            category="videopainter/utils",
            description=cls.__doc__,
            inputs=[
                io.MultiType.Input(
                    io.Mask.Input("mask", tooltip="Region to fill (1 = fill): a MASK batch (one per frame or one for all) "
                                                  "or a mask VIDEO (read a few frames at a time)."),
                    types=[io.Video]),
                io.Float.Input("threshold", default=0.5, min=0.0, max=1.0, step=0.01, optional=True,
                               tooltip="Mask values above this count as hole (the Encode node's threshold)."),
                io.Float.Input("min_fraction", default=masks.DEFAULT_MIN_FRACTION, min=0.0, max=1.0, step=0.0001,
                               optional=True,
                               tooltip="Holes smaller than this share of the frame are reported as tiny (0.001 = 0.1%)."),
                io.Combo.Input("mask_channel", options=list(video_io.MASK_CHANNELS), default="red", optional=True,
                               tooltip="Channel of a mask VIDEO that holds the mask (the encoder's mask_channel)."),
            ],
            outputs=[
                io.Mask.Output("mask_out", display_name="mask",
                               tooltip="The input mask, unchanged (for a mask VIDEO, wire the encoder to the Load Video)."),
                io.String.Output("report", tooltip="Per-frame hole sizes and warnings."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, mask, threshold: float = 0.5, min_fraction: float = masks.DEFAULT_MIN_FRACTION,
                mask_channel: str = "red") -> io.NodeOutput:
        if clip_inputs.is_video(mask):
            report = masks.video_mask_report(mask.get_stream_source(), mask_channel, threshold, min_fraction)
        else:
            report = masks.mask_report(mask, threshold, min_fraction)
        for warning in report.warnings():
            log.warning("VideoPainter Mask Check: %s", warning)
        text = report.summary()
        return io.NodeOutput(mask, text, ui=ui.PreviewText(text))


NODES = [VideoPainterWindowPlan, VideoPainterMaskCheck]
