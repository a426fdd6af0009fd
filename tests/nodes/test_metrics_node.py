"""VideoPainter Metrics (``execute`` called directly) with tiny random metric networks in a registered
``videopainter/metrics`` folder: the node returns exactly what ``vp_core.evaluation.metrics`` computes, shows it on the node,
and names a missing network."""
from __future__ import annotations

import json
import math

import pytest
import torch

import folder_paths
from videopainter.nodes import paths
from videopainter.nodes.metrics import VideoPainterMetrics
from videopainter.vp_core.evaluation import metrics
from videopainter.vp_core.evaluation.metrics import models, tiny

from vp_node_helpers import run

T, H, W = 4, 40, 56


@pytest.fixture(scope="module")
def metrics_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("metric_models") / "videopainter"
    tiny.write_tiny_metric_models(root / "metrics")
    folder_paths.add_model_folder_path("videopainter", str(root), is_default=True)
    models.clear_cache()
    yield root
    folder_paths.folder_names_and_paths["videopainter"][0].remove(str(root))
    models.clear_cache()


def clip_pair():
    g = torch.Generator().manual_seed(0)
    original = torch.rand(T, H, W, 3, generator=g)
    result = (original + 0.05 * torch.randn(T, H, W, 3, generator=g)).clamp(0, 1)
    mask = torch.zeros(T, H, W)
    mask[:, 10:25, 15:40] = 1
    return original, result, mask


def test_node_returns_the_core_numbers_and_shows_them(metrics_root):
    original, result, mask = clip_pair()
    assert paths.metrics_dir() == metrics_root / "metrics"
    out = VideoPainterMetrics.execute(original=original, result=result, mask=mask, caption="a red car.",
                                      region_caption="a car.", mode="reference", dilate=4, replace_gt=True)
    report, as_json, psnr, ssim, lpips, masked_psnr, clip_score, region, tc = out.result
    want = metrics.compare(metrics.load_metric_models(metrics_root / "metrics"), original, result, mask,
                           "a red car.", "a car.", "reference", True, 4)
    values = json.loads(as_json)
    assert values["frames"] == T and values["mode"] == "reference"
    for key in metrics.WHOLE + metrics.MASKED:
        assert values[key] == pytest.approx(want.values[key], abs=1e-6), key
    assert (psnr, ssim, lpips, masked_psnr, tc) == pytest.approx(
        [want.values[k] for k in ("psnr", "ssim", "lpips", "masked_psnr", "temporal_consistency")])
    assert all(math.isfinite(v) for v in (psnr, ssim, lpips, masked_psnr, clip_score, region, tc))
    assert 15 < psnr < 40
    assert out.ui.as_dict() == {"text": (report,)}
    assert f"{psnr:.4f}" in report and "VFID" in report
    # replace_gt pastes the original outside the hole: the masked error vanishes in background mode
    bg = run(VideoPainterMetrics, original=original, result=result, mask=mask, mode="background", replace_gt=True)
    assert json.loads(bg[1])["masked_mse"] == 0.0 and math.isnan(bg[6])  # no caption: no CLIP score


def test_result_at_model_size_is_compared_with_the_resized_original(metrics_root):
    original, _, mask = clip_pair()
    small = torch.nn.functional.interpolate(original.permute(0, 3, 1, 2), size=(32, 48), mode="bilinear",
                                            antialias=True).permute(0, 2, 3, 1)
    psnr_close = run(VideoPainterMetrics, original=original, result=small, mask=mask)[2]
    psnr_far = run(VideoPainterMetrics, original=original, result=small.flip(1), mask=mask)[2]
    assert psnr_close > psnr_far + 3


def test_bad_inputs_are_explained(metrics_root, tmp_path):
    original, result, mask = clip_pair()
    with pytest.raises(ValueError, match="mask is 28x20"):
        run(VideoPainterMetrics, original=original, result=result, mask=mask[:, ::2, ::2])
    with pytest.raises(ValueError, match="at least 2 frames"):
        run(VideoPainterMetrics, original=original[:1], result=result[:1], mask=mask[:1])
    with pytest.raises(metrics.MissingMetricModelError, match="clip-vit-large-patch14"):
        metrics.load_metric_models(tmp_path / "none")
