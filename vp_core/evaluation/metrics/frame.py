"""Per-frame fidelity metrics: PSNR, SSIM, LPIPS, MSE, MAE, over the whole frame and over the background.

Frames are ``uint8 [H, W, 3]`` tensors (the reference quantises the result to 8 bits before measuring) and masks
``[H, W]`` with 1 = hole. Two modes for the masked ("background") variants:

- ``reference``: ``evaluate/eval_inpainting.py`` exactly. The hole is zeroed in the GENERATED frame only and the
  ground truth stays whole, then the unmasked metric is taken over the whole frame. The hole's ground-truth pixels
  therefore count as errors (the score mixes background fidelity with the size and content of the hole).
- ``background``: both frames masked and the error averaged over background pixels only (PSNR from that MSE;
  SSIM and LPIPS maps averaged over background pixels). This measures what the name says: background fidelity.

PSNR, SSIM, MSE and MAE are torchmetrics' functionals with the reference's settings (data range 1, Gaussian
11x11 window with sigma 1.5); LPIPS is torchmetrics' SqueezeNet LPIPS network (see ``models.py``).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchmetrics.functional.regression import mean_absolute_error, mean_squared_error

MODES = ("reference", "background")
FRAME_METRICS = ("psnr", "ssim", "lpips", "mse", "mae")
SSIM_KERNEL, SSIM_SIGMA = 11, 1.5


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}; got {mode!r}")


def _chw(frame: Tensor) -> Tensor:
    """uint8 ``[H, W, 3]`` -> float32 ``[1, 3, H, W]`` in [0, 1] (``np.float32(x) / 255`` like the reference)."""
    return (frame.to(torch.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def _psnr(a: Tensor, b: Tensor) -> float:
    return float(peak_signal_noise_ratio(a, b, data_range=1.0))


def _ssim(a: Tensor, b: Tensor) -> float:
    return float(structural_similarity_index_measure(a, b, data_range=1.0, kernel_size=SSIM_KERNEL, sigma=SSIM_SIGMA))


def _ssim_map(a: Tensor, b: Tensor) -> Tensor:
    """SSIM map ``[H, W]`` (channel mean). torchmetrics >= 1.5 averages this whole map (reflection-padded at the
    borders); before it cropped 5 px per side."""
    _, full = structural_similarity_index_measure(
        a, b, data_range=1.0, kernel_size=SSIM_KERNEL, sigma=SSIM_SIGMA, return_full_image=True
    )
    return full[0].mean(0)


def whole_frame(gt: Tensor, result: Tensor, lpips: Callable[[Tensor, Tensor], Tensor]) -> dict[str, float]:
    """The five metrics of ``result`` against ``gt`` over the whole frame (uint8 ``[H, W, 3]`` each)."""
    return _five(_chw(gt), _chw(result), lpips)


def masked(gt: Tensor, result: Tensor, hole: Tensor, lpips: Callable[[Tensor, Tensor], Tensor], mode: str,
           lpips_map: Callable[[Tensor, Tensor], Tensor] | None = None) -> dict[str, float]:
    """The five metrics outside the hole (``hole`` ``[H, W]``, 1 = hole), in ``mode`` (see the module docstring).

    ``lpips_map`` (background mode) returns the spatial LPIPS map ``[1, 1, H, W]``.
    """
    check_mode(mode)
    keep = (1 - hole.to(torch.float32))[None, None]  # [1, 1, H, W], 1 = background
    a, b = _chw(gt), _chw(result)
    if mode == "reference":
        return _five(a, b * keep, lpips)
    a, b = a * keep, b * keep
    n = keep.sum()
    if n == 0:
        raise ValueError("mask: the hole covers the whole frame, so there is no background to measure")
    diff = a - b
    mse = float((diff**2).sum() / (3 * n))
    if lpips_map is None:
        raise ValueError("background mode needs the spatial LPIPS map (lpips_map)")
    lp = lpips_map(a * 2 - 1, b * 2 - 1)[0, 0]
    return {
        "psnr": float(10 * torch.log10(torch.tensor(1.0) / torch.tensor(mse))) if mse > 0 else float("inf"),
        "ssim": float((_ssim_map(a, b) * keep[0, 0]).sum() / n),
        "lpips": float((lp * keep[0, 0]).sum() / n),
        "mse": mse,
        "mae": float(diff.abs().sum() / (3 * n)),
    }


def _five(a: Tensor, b: Tensor, lpips: Callable[[Tensor, Tensor], Tensor]) -> dict[str, float]:
    """The five metrics on float ``[1, 3, H, W]`` frames in [0, 1] (LPIPS gets them in [-1, 1], as the reference)."""
    return {
        "psnr": _psnr(a, b),
        "ssim": _ssim(a, b),
        "lpips": float(lpips(a * 2 - 1, b * 2 - 1).mean()),
        "mse": float(mean_squared_error(a, b)),
        "mae": float(mean_absolute_error(a, b)),
    }
