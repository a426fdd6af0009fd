"""Evaluation nodes: the paper's metrics of a result against the original clip, shown on the node."""
from __future__ import annotations

import json
import logging

import comfy.model_management as mm
import comfy.utils
from comfy_api.v0_0_2 import io, ui

from ..vp_core.evaluation import metrics
from . import paths

log = logging.getLogger(__name__)

MODE_TOOLTIP = (
    "reference: VideoPainter's evaluate/ definitions, to compare with the paper (masked metrics zero the hole in the "
    "result only; CLIP sees the centre square; temporal consistency without CLIP normalisation). "
    "background: corrected (both frames masked, mean over background pixels; CLIP sees the whole frame)."
)


class VideoPainterMetrics(io.ComfyNode):
    """Measures a result against the original clip with the paper's metrics: PSNR, SSIM, LPIPS, MSE, MAE over the
    whole frame and outside the hole, CLIP score (full frame and hole only vs the caption, hole only vs the region
    caption) and temporal consistency. The original and mask are brought to the result's size the way the model's
    inputs are. Networks from models/videopainter/metrics (see the help page); VFID needs a whole dataset
    (scripts/vp_eval.py)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterMetrics",
            display_name="VideoPainter Metrics",
            category="videopainter/metrics",
            description=cls.__doc__,
            inputs=[
                io.Image.Input("original", tooltip="The original clip (e.g. the Encode node's 'frames')."),
                io.Image.Input("result", tooltip="The result to measure (e.g. the Decode or Composite output)."),
                io.Mask.Input("mask", tooltip="The hole at the original's size, 1 = hole (e.g. the Encode node's "
                              "'hole_mask'); one per frame or one for all."),
                io.String.Input("caption", default="", multiline=True, optional=True,
                                tooltip="Caption of the whole clip (the prompt); empty: no CLIP score."),
                io.String.Input("region_caption", default="", multiline=True, optional=True,
                                tooltip="Caption of the filled region (first-frame prompt); empty: the caption."),
                io.Combo.Input("mode", options=list(metrics.MODES), default="reference", tooltip=MODE_TOOLTIP),
                io.Int.Input("dilate", default=0, min=0, max=256, tooltip="Dilate the mask by this many original "
                             "pixels before measuring, as the reference's --dilate_size (32 inpainting, 48 editing)."),
                io.Boolean.Input("replace_gt", default=False, tooltip="Paste the original outside the (dilated) hole "
                                 "before measuring, as the reference's --replace_gt."),
            ],
            outputs=[
                io.String.Output("report", tooltip="The numbers as text (also shown on the node)."),
                io.String.Output("metrics_json", tooltip="All values as a JSON object."),
                io.Float.Output("psnr"),
                io.Float.Output("ssim"),
                io.Float.Output("lpips"),
                io.Float.Output("masked_psnr"),
                io.Float.Output("clip_score"),
                io.Float.Output("masked_region_clip_score"),
                io.Float.Output("temporal_consistency"),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, original, result, mask, mode: str, dilate: int, replace_gt: bool, caption: str = "",
                region_caption: str = "") -> io.NodeOutput:
        models = metrics.load_metric_models(paths.metrics_dir(), mm.get_torch_device())
        bar = comfy.utils.ProgressBar(metrics.progress_steps(min(original.shape[0], result.shape[0])))

        def step() -> None:
            mm.throw_exception_if_processing_interrupted()
            bar.update(1)

        m = metrics.compare(models, original, result, mask, caption, region_caption, mode, replace_gt, dilate, step)
        text = metrics.report(m, mode)
        v = m.values
        return io.NodeOutput(
            text, json.dumps({"frames": m.frames, "mode": mode, **v}), v["psnr"], v["ssim"], v["lpips"],
            v["masked_psnr"], v["clip_score"], v["masked_region_clip_score"], v["temporal_consistency"],
            ui=ui.PreviewText(text),
        )


NODES = [VideoPainterMetrics]
