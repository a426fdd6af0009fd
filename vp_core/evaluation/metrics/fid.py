"""Fréchet distance between two sets of feature vectors (VFID when the features are I3D's, one per video)."""
from __future__ import annotations

import logging
import warnings

import numpy as np
from scipy import linalg

log = logging.getLogger(__name__)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2))`` (the reference's ``calculate_frechet_distance``).

    ``scipy.linalg.sqrtm`` gives the matrix square root; a non-finite result is retried with ``eps`` on the
    diagonals, and an imaginary part above 1e-3 on the diagonal is an error (numerical noise below it is dropped).
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature sets differ in size: means {mu1.shape} vs {mu2.shape}, "
                         f"covariances {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # fewer videos than feature dimensions: a singular product is the normal case
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("Fréchet distance: singular product; adding %g to the covariance diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Fréchet distance: imaginary component {np.max(np.abs(covmean.imag)):.3g} in sqrtm")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def vfid(real: list[np.ndarray] | np.ndarray, fake: list[np.ndarray] | np.ndarray) -> float:
    """Fréchet distance between the ground-truth and generated feature sets (``[N, D]`` each, one row per video).

    Needs at least two videos (the covariance of one sample is undefined); NaN with a warning otherwise.
    """
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if real.shape != fake.shape or real.ndim != 2:
        raise ValueError(f"VFID: expected two [videos, features] arrays of one shape; got {real.shape} and {fake.shape}")
    if real.shape[0] < 2:
        log.warning("VFID needs at least 2 videos (got %d): reported as NaN", real.shape[0])
        return float("nan")
    return frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
