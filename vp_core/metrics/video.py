"""All metrics of one clip: the reference's per-video row (frame metrics averaged over frames, temporal consistency,
CLIP scores) plus the clip's I3D features for the dataset-level VFID."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from . import clip, frame
from .i3d import video_features
from .models import MetricModels

# Names of the per-video values, in the reference CSV's order (``evaluate/eval_inpainting.py``).
WHOLE = ("psnr", "ssim", "lpips", "mse", "mae", "clip_score", "temporal_consistency")
MASKED = ("masked_psnr", "masked_ssim", "masked_lpips", "masked_mse", "masked_mae", "masked_clip_score",
          "masked_region_clip_score", "masked_temporal_consistency")
FRAME_AVERAGED = tuple(n for n in WHOLE + MASKED if "temporal" not in n)  # pooled over frames in the Average row


@dataclass
class ClipMetrics:
    values: dict[str, float]
    frames: int
    i3d_real: np.ndarray = field(repr=False)
    i3d_fake: np.ndarray = field(repr=False)


def _check(gt: Tensor, result: Tensor, hole: Tensor) -> None:
    if gt.dtype != torch.uint8 or result.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3]; got {gt.dtype} and {result.dtype}")
    if gt.shape != result.shape or gt.ndim != 4 or gt.shape[-1] != 3:
        raise ValueError(f"ground truth {tuple(gt.shape)} and result {tuple(result.shape)} must both be [T, H, W, 3]")
    if hole.shape != gt.shape[:3]:
        raise ValueError(f"mask is {tuple(hole.shape)}; expected [T, H, W] = {tuple(gt.shape[:3])}")


def replace_background(gt: Tensor, result: Tensor, hole: Tensor) -> Tensor:
    """The reference's ``replace_gt`` post-processing: ground-truth pixels outside the hole, uint8 in and out."""
    h = hole[..., None].to(torch.uint8)
    return result * h + gt * (1 - h)


def clip_metrics(models: MetricModels, gt: Tensor, result: Tensor, hole: Tensor, caption: str, region_caption: str,
                 mode: str = "reference") -> ClipMetrics:
    """Every per-video metric of ``result`` against ``gt`` (uint8 ``[T, H, W, 3]``) with ``hole`` (``[T, H, W]``,
    1 = hole, the dilated mask the model was given), in ``mode`` (``frame.MODES``)."""
    frame.check_mode(mode)
    _check(gt, result, hole)
    hole = (hole > 0).to(torch.uint8)
    dev = next(models.lpips_net.parameters()).device
    per_frame: dict[str, list[float]] = {n: [] for n in FRAME_AVERAGED}
    for g, r, h in zip(gt, result, hole):
        g, r, h = g.to(dev), r.to(dev), h.to(dev)
        for k, v in frame.whole_frame(g, r, models.lpips).items():
            per_frame[k].append(v)
        for k, v in frame.masked(g, r, h, models.lpips, mode, models.lpips_map).items():
            per_frame[f"masked_{k}"].append(v)
    per_frame["clip_score"] = clip.clip_scores(models.clip_score, models.clip_processor, result, caption, None, mode)
    per_frame["masked_clip_score"] = clip.clip_scores(models.clip_score, models.clip_processor, result, caption, hole, mode)
    per_frame["masked_region_clip_score"] = clip.clip_scores(
        models.clip_score, models.clip_processor, result, region_caption, hole, mode)
    values = {k: float(np.mean(v)) for k, v in per_frame.items()}
    tc = dict(mode=mode, mean=models.temporal_mean, std=models.temporal_std)
    values["temporal_consistency"] = clip.temporal_consistency(models.clip_temporal, result, None, **tc)
    values["masked_temporal_consistency"] = clip.temporal_consistency(models.clip_temporal, result, hole, **tc)
    batch_stats = mode == "reference"
    real = video_features(models.i3d, gt, batch_stats).numpy()
    fake = video_features(models.i3d, result, batch_stats).numpy()
    return ClipMetrics({k: values[k] for k in WHOLE + MASKED}, int(gt.shape[0]), real, fake)
