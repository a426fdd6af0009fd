"""scripts/convert_metric_models.py: torchvision's SqueezeNet 1.1 + torchmetrics' LPIPS heads, and the I3D
checkpoint layout, into the safetensors files vp_core.evaluation.metrics loads (random weights of the real layouts)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]

import convert_metric_models as conv  # noqa: E402

from videopainter.vp_core.evaluation.metrics import i3d, models, tiny  # noqa: E402


def test_lpips_conversion_keeps_every_backbone_tensor(tmp_path):
    torch.manual_seed(0)
    sq = torchvision.models.squeezenet1_1(weights=None)
    torch.save(sq.state_dict(), tmp_path / "squeezenet1_1.pth")
    path = conv.convert_lpips(tmp_path / "squeezenet1_1.pth", None, tmp_path)
    net = models.lpips_network(load_file(path))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():  # the converted backbone computes what torchvision's features compute
        want = sq.features[:13](net.scaling_layer(x))
        got = net.net(net.scaling_layer(x))[-1]
    assert torch.allclose(got, want, atol=1e-6)
    heads = torch.load(Path(conv.importlib.util.find_spec("torchmetrics").origin).parent / "functional" / "image"
                       / "lpips_models" / "squeeze.pth", map_location="cpu", weights_only=True)
    assert torch.equal(load_file(path)["lin0.model.1.weight"], heads["lin0.model.1.weight"])


def test_i3d_conversion_checks_the_layout(tmp_path):
    sd = tiny.tiny_i3d_state()
    torch.save({**sd, "logits.conv3d.weight": torch.zeros(2, 64, 1, 1, 1)}, tmp_path / "rgb_imagenet.pt")
    path = conv.convert_i3d(tmp_path / "rgb_imagenet.pt", tmp_path)
    net = i3d.load_i3d(load_file(path), tiny.TINY_I3D_DIVISOR)
    assert torch.equal(net.Mixed_5c.b0.conv3d.weight, sd["Mixed_5c.b0.conv3d.weight"])
    torch.save({k: v for k, v in sd.items() if "Mixed_4b" not in k}, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="missing"):
        conv.convert_i3d(tmp_path / "broken.pt", tmp_path / "x")
