"""All metrics of one clip: the reference's per-video row (frame metrics averaged over frames, temporal consistency,
CLIP scores) plus the clip's I3D features for the dataset-level VFID."""
from __future__ import annotations

from collections.abc import Callable
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


def progress_steps(frames: int) -> int:
    """How many times ``clip_metrics`` calls ``on_step``: once per frame, then CLIP, temporal and I3D."""
    return frames + 3


def clip_metrics(models: MetricModels, gt: Tensor, result: Tensor, hole: Tensor, caption: str, region_caption: str,
                 mode: str = "reference", on_step: Callable[[], None] | None = None) -> ClipMetrics:
    """Every per-video metric of ``result`` against ``gt`` (uint8 ``[T, H, W, 3]``) with ``hole`` (``[T, H, W]``,
    1 = hole, the dilated mask the model was given), in ``mode`` (``frame.MODES``). ``on_step`` is called
    ``progress_steps(T)`` times (progress bar, interruption check)."""
    frame.check_mode(mode)
    _check(gt, result, hole)
    step = on_step or (lambda: None)
    hole = (hole > 0).to(torch.uint8)
    dev = next(models.lpips_net.parameters()).device
    per_frame: dict[str, list[float]] = {n: [] for n in FRAME_AVERAGED}
    for g, r, h in zip(gt, result, hole):
        g, r, h = g.to(dev), r.to(dev), h.to(dev)
        for k, v in frame.whole_frame(g, r, models.lpips).items():
            per_frame[k].append(v)
        for k, v in frame.masked(g, r, h, models.lpips, mode, models.lpips_map).items():
            per_frame[f"masked_{k}"].append(v)
        step()
    per_frame["clip_score"] = clip.clip_scores(models.clip_score, models.clip_processor, result, caption, None, mode)
    per_frame["masked_clip_score"] = clip.clip_scores(models.clip_score, models.clip_processor, result, caption, hole, mode)
    per_frame["masked_region_clip_score"] = clip.clip_scores(
        models.clip_score, models.clip_processor, result, region_caption, hole, mode)
    step()
    values = {k: float(np.mean(v)) for k, v in per_frame.items()}
    tc = dict(mode=mode, mean=models.temporal_mean, std=models.temporal_std)
    values["temporal_consistency"] = clip.temporal_consistency(models.clip_temporal, result, None, **tc)
    values["masked_temporal_consistency"] = clip.temporal_consistency(models.clip_temporal, result, hole, **tc)
    step()
    batch_stats = mode == "reference"
    real = video_features(models.i3d, gt, batch_stats).numpy()
    fake = video_features(models.i3d, result, batch_stats).numpy()
    step()
    return ClipMetrics({k: values[k] for k in WHOLE + MASKED}, int(gt.shape[0]), real, fake)


def ground_truth_at(frames: Tensor, holes: Tensor, height: int, width: int, dilate: int,
                    chunk: int = 8) -> tuple[Tensor, Tensor]:
    """The reference's measuring ground truth from source frames ``uint8 [T, H, W, 3]`` and undilated holes
    ``uint8 [T, H, W]`` (255 = hole): frames resized like the pipeline's input (``preprocess.window_video``, PIL
    Lanczos, through [-1, 1] and back, truncated to uint8 as ``(x * 255).astype(np.uint8)``), and the holes dilated at
    source resolution then resized and binarised like the model's masks (``preprocess.window_masks``) -> 0/1.
    Done ``chunk`` frames at a time so a long 1080p clip is never held as floats."""
    from ...pipeline import preprocess

    gts, masks = [], []
    for s in range(0, frames.shape[0], chunk):
        v = preprocess.window_video(frames[s:s + chunk], height, width)[0]  # [3, F, h, w] in [-1, 1]
        v = (v / 2 + 0.5).clamp(0, 1).permute(1, 2, 3, 0)  # the pipeline's postprocess_video, then * 255 -> uint8
        gts.append((v * 255).to(torch.uint8))
        m = preprocess.window_masks(preprocess.dilate(holes[s:s + chunk], dilate), height, width)[0, 0]
        masks.append(m.to(torch.uint8))
    return torch.cat(gts), torch.cat(masks)


GEOMETRIES = ("reference", "source")


def ground_truth(frames: Tensor, holes: Tensor, geometry: str, height: int, width: int, dilate: int,
                 chunk: int = 8) -> tuple[Tensor, Tensor]:
    """The measuring ground truth ``uint8 [T, h, w, 3]`` and hole ``uint8 [T, h, w]`` (1 = hole) of source frames
    and undilated holes (255 = hole) in one of ``GEOMETRIES``: the one place that decides where a result is measured.

    ``reference``: at the model's size (``height`` x ``width``), ``ground_truth_at`` (the paper's geometry: its
    model writes 720x480 frames, so the reference resizes the ground truth to them). ``source``: the source frames
    as they are, at their own resolution (the source-rate composite's geometry), and the holes dilated by the same
    kernel (``preprocess.dilate``, the encoder's ``dilate`` at source resolution) with no resize: the same
    masked / unmasked definitions on the pixels the user gets back."""
    if geometry == "reference":
        return ground_truth_at(frames, holes, height, width, dilate, chunk)
    if geometry != "source":
        raise ValueError(f"geometry: expected one of {', '.join(GEOMETRIES)}; got {geometry!r}")
    from ...pipeline import preprocess

    masks = [(preprocess.dilate(holes[s:s + chunk], dilate) > 127).to(torch.uint8)
             for s in range(0, holes.shape[0], chunk)]
    return frames, torch.cat(masks)


def quantize(images: Tensor) -> Tensor:
    """ComfyUI floats in [0, 1] -> uint8 by truncation, as the reference's ``(x * 255).astype(np.uint8)`` (and as
    ComfyUI's Save Image writes PNGs)."""
    return (images.clamp(0, 1) * 255).to(torch.uint8)


def compare(models: MetricModels, original: Tensor, result: Tensor, mask: Tensor, caption: str = "",
            region_caption: str = "", mode: str = "reference", replace_gt: bool = False,
            dilate: int = 0, on_step: Callable[[], None] | None = None) -> ClipMetrics:
    """Metrics of a result against the original clip, from ComfyUI tensors: ``original`` / ``result`` IMAGE
    ``[T, H, W, 3]`` and ``mask`` MASK ``[T or 1, H, W]`` at the original's size (1 = hole, threshold 0.5).

    The original and the mask are brought to the result's size the way the model's inputs are (``ground_truth_at``,
    with ``dilate`` px of dilation at the original's size first); frames beyond the shorter clip are ignored.
    Without a caption (empty string) the CLIP scores are NaN.
    """
    frame.check_mode(mode)
    if original.ndim != 4 or result.ndim != 4 or original.shape[-1] != 3 or result.shape[-1] != 3:
        raise ValueError(f"original and result must be IMAGE batches [T, H, W, 3]; got {tuple(original.shape)} and "
                         f"{tuple(result.shape)}")
    if mask.ndim == 2:
        mask = mask[None]
    if mask.shape[-2:] != original.shape[1:3]:
        raise ValueError(f"mask is {mask.shape[-1]}x{mask.shape[-2]} (WxH) but the original is "
                         f"{original.shape[2]}x{original.shape[1]}: give the mask of the original clip")
    if mask.shape[0] not in (1, original.shape[0]):
        raise ValueError(f"mask has {mask.shape[0]} frames but the original has {original.shape[0]}: "
                         "one mask per frame or a single mask")
    n = min(original.shape[0], result.shape[0])
    if n < 2:
        raise ValueError(f"need at least 2 frames in both clips (temporal consistency); got {n}")
    holes = ((mask > 0.5).to(torch.uint8) * 255).expand(original.shape[0], -1, -1)[:n].contiguous()
    gt, hole = ground_truth_at(quantize(original[:n]).cpu(), holes.cpu(), result.shape[1], result.shape[2], dilate)
    res = quantize(result[:n]).cpu()
    if replace_gt:
        res = replace_background(gt, res, hole)
    out = clip_metrics(models, gt, res, hole, caption or " ", region_caption or caption or " ", mode, on_step)
    for key in ("clip_score", "masked_clip_score"):
        if not caption.strip():
            out.values[key] = float("nan")
    if not (region_caption.strip() or caption.strip()):
        out.values["masked_region_clip_score"] = float("nan")
    return out


LABELS = {
    "psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "mse": "MSE", "mae": "MAE", "clip_score": "CLIP score",
    "temporal_consistency": "temporal consistency",
}


def report(m: ClipMetrics, mode: str) -> str:
    """The numbers as a small table (whole frame | background), for the node."""
    lines = [f"{m.frames} frames, mode {mode}", f"{'':22}{'whole':>10}{'masked':>10}"]
    for key, label in LABELS.items():
        lines.append(f"{label:22}{m.values[key]:>10.4f}{m.values['masked_' + key]:>10.4f}")
    lines.append(f"{'region CLIP score':22}{'':>10}{m.values['masked_region_clip_score']:>10.4f}")
    lines.append("VFID: a dataset-level score (scripts/vp_eval.py)")
    return "\n".join(lines)
