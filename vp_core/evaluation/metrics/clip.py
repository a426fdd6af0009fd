"""CLIP score (ViT-L/14) and temporal consistency (ViT-B/32), as the reference's ``evaluate/metrics.py``.

- CLIP score ``max(100 * cos(E_image, E_text), 0)`` per frame, through torchmetrics' ``_clip_score_update`` (its
  processor call, 77-token truncation and cosine). ``masked`` = the frame with everything outside the hole blacked
  out (not a crop). In ``reference`` mode the frame goes through CLIP's processor as the reference's does: shortest
  side to 224, then a centre crop, so of a 720x480 frame only the middle 480x480 is seen. ``background`` mode pads
  the frame to a black square first, so the whole frame (and the whole hole) is seen.
- Temporal consistency: mean cosine of the image embeddings of consecutive frames. ``reference`` mode as the
  reference: bilinear (antialiased) resize to 224x224 and NO mean/std normalisation (CLIP sees [0, 1] pixels);
  ``background`` mode normalises with the processor's mean/std after the same resize.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.functional.multimodal.clip_score import _clip_score_update
from torchvision.transforms.functional import resize

from .frame import check_mode


class FeatureTensors(nn.Module):
    """A CLIPModel whose ``get_image_features``/``get_text_features`` return tensors, which torchmetrics 1.9
    expects; transformers 5 returns model outputs (the projected embedding is their ``pooler_output``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.config = model.config

    def get_image_features(self, pixel_values: Tensor) -> Tensor:
        return _tensor(self.model.get_image_features(pixel_values=pixel_values))

    def get_text_features(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return _tensor(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


def _tensor(out) -> Tensor:
    return out if isinstance(out, Tensor) else out.pooler_output


def _square(img: Tensor) -> Tensor:
    """uint8 ``[3, H, W]`` padded with black to a centred square."""
    _, h, w = img.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return F.pad(img, (left, side - w - left, top, side - h - top))


def clip_images(frames: Tensor, hole: Tensor | None = None, mode: str = "reference") -> list[Tensor]:
    """The uint8 ``[3, H, W]`` images the CLIP processor gets: background blacked out when ``hole`` is given,
    padded to a square in ``background`` mode (``reference``: as they are, so the processor centre-crops)."""
    check_mode(mode)
    if hole is not None:
        frames = frames * hole[..., None].to(frames.dtype)
    images = [f.permute(2, 0, 1).contiguous() for f in frames]
    return [_square(i) for i in images] if mode == "background" else images


@torch.no_grad()
def clip_scores(model: FeatureTensors, processor, frames: Tensor, caption: str, hole: Tensor | None = None,
                mode: str = "reference") -> list[float]:
    """Per-frame CLIP scores of uint8 ``[T, H, W, 3]`` frames against ``caption``; with ``hole`` (``[T, H, W]``,
    1 = hole) the background is blacked out first (the reference's ``img * mask``)."""
    device = next(model.parameters()).device
    images = clip_images(frames, hole, mode)
    scores = []
    for img in images:  # one frame per call, clamped per frame, as the reference
        score, _ = _clip_score_update([img.to(device)], [caption], model, processor)
        scores.append(float(torch.clamp(score.mean(), min=0)))
    return scores


@torch.no_grad()
def temporal_consistency(model: FeatureTensors, frames: Tensor, hole: Tensor | None = None, mode: str = "reference",
                         mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> float:
    """Mean cosine similarity of consecutive frames' CLIP image embeddings (uint8 ``[T, H, W, 3]``, T >= 2).

    ``mean``/``std``: the processor's normalisation, used in ``background`` mode only.
    """
    check_mode(mode)
    if frames.shape[0] < 2:
        raise ValueError(f"temporal consistency needs at least 2 frames; got {frames.shape[0]}")
    p = next(model.parameters())
    x = frames.to(p.device, torch.float32).permute(0, 3, 1, 2)
    if mode == "background" or x.max() > 1.0:  # the reference divides only when max > 1
        x = x / 255.0
    if hole is not None:
        x = x * hole[:, None].to(x)
    x = resize(x, [224, 224], antialias=True)  # torchvision Resize((224, 224)): bilinear, antialiased
    if mode == "background":
        if mean is None or std is None:
            raise ValueError("background mode needs the CLIP processor's image_mean and image_std")
        x = (x - torch.tensor(mean, device=x.device)[:, None, None]) / torch.tensor(std, device=x.device)[:, None, None]
    feats = model.get_image_features(x.to(p.dtype)).to(torch.float32)
    feats = feats / feats.norm(dim=1, keepdim=True)
    return float((feats[:-1] * feats[1:]).sum(dim=1).mean())
