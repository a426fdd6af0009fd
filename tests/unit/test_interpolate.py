"""Interpolation of generated frames (vp_core.pipeline.interpolate) on a case with known motion: a textured patch
moving at constant velocity over a textured background; the "generated" frames handed in are the true frames at
the sampled times. The in-between frames' hole pixels must beat repeating the nearest sampled frame and a linear
cross-fade by at least 6 dB (issue 25's bar)."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from videopainter.vp_core.pipeline import interpolate

H, W, STEP = 240, 320, 3  # sampled every 3rd source frame (30 fps -> 10 fps)
PATCH_H, PATCH_W, VELOCITY = 96, 128, (2.0, 6.0)  # px per source frame (y, x): 18 px between sampled frames


def texture(h: int, w: int, seed: int, sigma: float = 4.0) -> np.ndarray:
    """Smooth random texture (blurred noise), tinted: [h, w, 3] float32 in [0, 1]."""
    r = cv2.GaussianBlur(np.random.default_rng(seed).random((h, w)).astype(np.float32), (0, 0), sigma)
    r = (r - r.min()) / (r.max() - r.min())
    return r[..., None] * (np.random.default_rng(seed + 9).random(3).astype(np.float32) * 0.5 + 0.5)


def scene(t: float, bg: np.ndarray, patch: np.ndarray, origin=(40.0, 40.0)) -> tuple[np.ndarray, np.ndarray]:
    """Source frame ``t``: the patch at ``origin + t * VELOCITY`` (sub-pixel) over ``bg``; and where the patch is."""
    m = np.float32([[1, 0, origin[1] + VELOCITY[1] * t], [0, 1, origin[0] + VELOCITY[0] * t]])
    p = cv2.warpAffine(patch, m, (W, H), flags=cv2.INTER_LINEAR)
    a = cv2.warpAffine(np.ones(patch.shape[:2], np.float32), m, (W, H), flags=cv2.INTER_LINEAR)
    return bg * (1 - a[..., None]) + p * a[..., None], a > 0.5


def box_around(*holes: np.ndarray, margin: int = 48) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(np.logical_or.reduce(holes))
    return max(ys.min() - margin, 0), min(ys.max() + margin + 1, H), max(xs.min() - margin, 0), min(xs.max() + margin + 1, W)


def psnr(mse: float) -> float:
    return float(-10 * np.log10(mse))


def test_flow_interpolation_beats_repetition_and_cross_fade_by_6_db():
    bg, patch = texture(H, W, 1), texture(PATCH_H, PATCH_W, 2)
    f0, h0 = scene(0, bg, patch)
    f1, h1 = scene(STEP, bg, patch)
    a, b = torch.from_numpy(f0), torch.from_numpy(f1)
    box = box_around(h0, h1)
    flows = interpolate.PairFlow(a, b, box)
    err = {"flow": [], "nearest": [], "fade": []}
    for j in range(1, STEP):
        t = j / STEP
        truth, hole = scene(j, bg, patch)
        hole = cv2.dilate(hole.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # the hole as the composite grows it
        got = interpolate.frame_at(a, b, t, box, flows).numpy()
        assert np.array_equal(got[: box[0]], f0[: box[0]]) or box[0] == 0  # outside the box: frame a, untouched
        guesses = {"flow": got, "nearest": f0 if t < 0.5 else f1, "fade": (1 - t) * f0 + t * f1}
        for name, g in guesses.items():
            err[name].append(((g[hole] - truth[hole]) ** 2).mean())
    db = {k: psnr(float(np.mean(v))) for k, v in err.items()}
    report = ", ".join(f"{k} {v:.2f} dB" for k, v in db.items())
    print(report)
    assert db["flow"] >= db["nearest"] + 6 and db["flow"] >= db["fade"] + 6, report


def test_past_the_last_sampled_frame_the_motion_goes_on():
    """Source frames after the last sampled frame (no next generated frame): the last pair's motion carried on beats
    holding the last frame."""
    bg, patch = texture(H, W, 3), texture(PATCH_H, PATCH_W, 4)
    f0, h0 = scene(0, bg, patch)
    f1, h1 = scene(STEP, bg, patch)
    truth, hole = scene(STEP + 1, bg, patch)
    got = interpolate.PairFlow(torch.from_numpy(f0), torch.from_numpy(f1), box_around(h0, h1, hole)).at(1 + 1 / STEP)
    y0, y1, x0, x1 = box_around(h0, h1, hole)
    hole = hole[y0:y1, x0:x1]
    truth, held = truth[y0:y1, x0:x1], f1[y0:y1, x0:x1]
    moved, still = psnr(((got.numpy()[hole] - truth[hole]) ** 2).mean()), psnr(((held[hole] - truth[hole]) ** 2).mean())
    assert moved >= still + 3, (moved, still)


def test_time_zero_and_no_next_frame_give_the_frame_itself():
    a, b = torch.rand(16, 16, 3), torch.rand(16, 16, 3)
    assert interpolate.frame_at(a, b, 0.0, (0, 16, 0, 16)) is a
    assert interpolate.frame_at(a, None, 0.5, (0, 16, 0, 16)) is a
