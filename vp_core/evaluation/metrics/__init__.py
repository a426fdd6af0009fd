"""The paper's evaluation metrics (VideoPainter ``evaluate/``): PSNR, SSIM, LPIPS, MSE, MAE (whole frame and
background), CLIP score (full, masked, masked region), temporal consistency (whole and masked) and VFID.

``mode`` is ``reference`` (the reference's definitions, quirks included, to compare with the paper's numbers) or
``background`` (corrected definitions: background metrics over background pixels of both frames, CLIP sees the
whole frame, temporal consistency with CLIP's normalisation, I3D with its stored batch-norm statistics).
See README "Evaluation" for what each measures.
"""
from __future__ import annotations

from .fid import frechet_distance, vfid
from .frame import MODES
from .models import ALL as MODEL_FILES
from .models import SUBDIR, MetricModels, MissingMetricModelError, load_metric_models, locate
from .video import (
    FRAME_AVERAGED, GEOMETRIES, MASKED, WHOLE, ClipMetrics, clip_metrics, compare, ground_truth, ground_truth_at,
    progress_steps, quantize, replace_background, report,
)

__all__ = [
    "MODES", "MODEL_FILES", "SUBDIR", "WHOLE", "MASKED", "FRAME_AVERAGED", "ClipMetrics", "MetricModels",
    "MissingMetricModelError", "GEOMETRIES", "clip_metrics", "compare", "frechet_distance", "ground_truth",
    "ground_truth_at", "progress_steps", "quantize",
    "report", "load_metric_models", "locate", "replace_background", "vfid",
]
