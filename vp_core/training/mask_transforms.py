"""The reference's random mask augmentation (``train/mask_process.py``), re-expressed on a ``numpy.random.Generator``
(so a checkpoint can store its state and a resumed run draws the same masks).

One transform per clip, chosen with probabilities ``p_brush, p_rect, p_ellipse, p_circle, p_random_brush`` (the .sh
flags), applied to every frame with the same parameters:

* ``brush``: a 32x32 morphological close / open / dilate / open-then-close of each frame's mask (OpenCV), with a
  10 % chance of a 3x3 Gaussian blur re-binarised;
* ``rect`` / ``ellipse`` / ``circle``: a shape around frame 0's mask bounding box (grown by a random margin of up to
  ``margin_ratio`` x the short side), scaled by ``shape_scale_min..max`` (ellipse and circle: half of that), the
  rectangle and ellipse rotated by a random angle; the same shape on every frame; an empty frame-0 mask is returned
  unchanged;
* ``random_brush``: 0-4 random strokes (1-7 vertices, width 128-256 px, random flips), the same on every frame.

The whole call happens with probability ``mask_transform_prob`` (``maybe_transform``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw

CHOICES = ("brush", "rect", "ellipse", "circle", "random_brush")
MORPH = ("dilate_erode", "erode_dilate", "dilate_only", "combined")


@dataclass(frozen=True)
class MaskAugment:
    """The .sh defaults (VideoPainter.sh / VideoPainterID.sh)."""

    mask_transform_prob: float = 0.3
    p_brush: float = 0.4
    p_rect: float = 0.1
    p_ellipse: float = 0.1
    p_circle: float = 0.1
    p_random_brush: float = 0.3
    margin_ratio: float = 0.1
    shape_scale_min: float = 1.1
    shape_scale_max: float = 1.5

    def probabilities(self) -> list[float]:
        p = [self.p_brush, self.p_rect, self.p_ellipse, self.p_circle, self.p_random_brush]
        if any(x < 0 for x in p) or not math.isclose(sum(p), 1.0, abs_tol=1e-6):
            raise ValueError(f"--p_brush/--p_rect/--p_ellipse/--p_circle/--p_random_brush must be >= 0 and sum to 1; "
                             f"got {p} (sum {sum(p):.4g})")
        return p


def random_brush(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Random strokes ``uint8 [h, w]`` in {0, 1} (the reference's ``generate_random_brush``)."""
    mask = Image.new("L", (w, h), 0)
    radius = math.sqrt(h * h + w * w) / 8
    mean_angle, angle_range = 2 * math.pi / 5, 2 * math.pi / 15
    tries = rng.choice(5, p=[0.05, 0.3, 0.3, 0.3, 0.05])
    draw = ImageDraw.Draw(mask)
    for _ in range(tries):
        n = int(rng.integers(1, 8))
        lo, hi = mean_angle - rng.uniform(0, angle_range), mean_angle + rng.uniform(0, angle_range)
        angles = [2 * math.pi - rng.uniform(lo, hi) if i % 2 == 0 else rng.uniform(lo, hi) for i in range(n)]
        pts = [(int(rng.integers(0, w)), int(rng.integers(0, h)))]
        for a in angles:
            r = float(np.clip(rng.normal(radius, radius // 2), 0, 2 * radius))
            pts.append((int(np.clip(pts[-1][0] + r * math.cos(a), 0, w)), int(np.clip(pts[-1][1] + r * math.sin(a), 0, h))))
        width = int(rng.uniform(128, 256))
        draw.line(pts, fill=1, width=width)
        for x, y in pts:
            draw.ellipse((x - width // 2, y - width // 2, x + width // 2, y + width // 2), fill=1)
    out = np.asarray(mask, np.uint8)
    if rng.random() > 0.5:
        out = np.flip(out, 0)
    if rng.random() > 0.5:
        out = np.flip(out, 1)
    return np.ascontiguousarray(out)


def _brush(frame: np.ndarray, morph: str, blur: bool) -> np.ndarray:
    k = np.ones((32, 32), np.uint8)
    if morph == "dilate_erode":
        out = cv2.erode(cv2.dilate(frame, k), k)
    elif morph == "erode_dilate":
        out = cv2.dilate(cv2.erode(frame, k), k)
    elif morph == "dilate_only":
        out = cv2.dilate(frame, k)
    else:
        out = cv2.erode(cv2.dilate(cv2.dilate(cv2.erode(frame, k), k), k), k)
    if blur:
        out = (cv2.GaussianBlur(out, (3, 3), 0) > 0.5).astype(np.uint8)
    return out


def _shape(first: np.ndarray, choice: str, aug: MaskAugment, rng: np.random.Generator) -> np.ndarray | None:
    h, w = first.shape
    ys, xs = np.nonzero(first)
    if len(ys) == 0:
        return None
    margin = max(1, int(min(h, w) * aug.margin_ratio))  # the reference's randint(0, 0) would raise for tiny frames
    x0, x1 = max(0, xs.min() - rng.integers(0, margin)), min(w, xs.max() + rng.integers(0, margin))
    y0, y1 = max(0, ys.min() - rng.integers(0, margin)), min(h, ys.max() + rng.integers(0, margin))
    cx, cy, bw, bh = int((x0 + x1) // 2), int((y0 + y1) // 2), int(x1 - x0), int(y1 - y0)
    out = np.zeros((h, w), np.uint8)
    if choice == "rect":
        angle = rng.uniform(0, 360)
        sw, sh = rng.uniform(aug.shape_scale_min, aug.shape_scale_max), rng.uniform(aug.shape_scale_min, aug.shape_scale_max)
        box = cv2.boxPoints(((float(cx), float(cy)), (float(bw * sw), float(bh * sh)), float(angle))).astype(np.int32)
        cv2.fillPoly(out, [box], 1)
    elif choice == "ellipse":
        sw = rng.uniform(aug.shape_scale_min / 2, aug.shape_scale_max / 2)
        sh = rng.uniform(aug.shape_scale_min / 2, aug.shape_scale_max / 2)
        cv2.ellipse(out, (cx, cy), (int(bw * sw), int(bh * sh)), rng.uniform(0, 360), 0, 360, 1, -1)
    else:
        radius = int(max(bw, bh) * rng.uniform(aug.shape_scale_min / 2, aug.shape_scale_max / 2))
        cv2.circle(out, (cx, cy), radius, 1, -1)
    return out


def transform_masks(masks: np.ndarray, aug: MaskAugment, rng: np.random.Generator) -> np.ndarray:
    """``masks`` ``uint8 [T, H, W]`` in {0, 1} -> the transformed masks (same shape and dtype)."""
    choice = CHOICES[rng.choice(len(CHOICES), p=aug.probabilities())]
    if choice == "brush":
        morph, blur = MORPH[rng.choice(len(MORPH))], rng.random() < 0.1
        return np.stack([_brush(m.astype(np.uint8), morph, blur) for m in masks])
    if choice == "random_brush":
        stroke = random_brush(masks.shape[1], masks.shape[2], rng)
        return np.broadcast_to(stroke, masks.shape).copy()
    shape = _shape(masks[0], choice, aug, rng)
    if shape is None:
        return masks
    return np.broadcast_to(shape, masks.shape).copy()


def maybe_transform(masks: np.ndarray, aug: MaskAugment, rng: np.random.Generator) -> np.ndarray:
    """``transform_masks`` with probability ``mask_transform_prob`` (one draw per clip, as the collate function)."""
    if rng.random() < aug.mask_transform_prob:
        return transform_masks(masks, aug, rng)
    return masks
