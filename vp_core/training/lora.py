"""The trainable ID-resample LoRA: ComfyUI's own LoRA maths (``comfy.weight_adapter.lora.LoraDiff``, the trainable
form of the ``LoRAAdapter`` the sampler's patches use: ``W + alpha / rank * B @ A``) hung on the backbone's
``comfy.ops`` layers as a ``weight_function``, so the forward pass is the sampler's and gradients reach A and B.

Keys are the official file's (``pytorch_lora_weights.safetensors``, what ``checkpoints.loaders.load_lora`` reads):
``transformer.transformer_blocks.<i>.attn1.<to_q|to_k|to_v|to_out.0>.lora_<A|B>.weight``. Like the reference's, the file
stores no alpha, so the pack's loader applies it at scale 1.0 although it was trained at ``alpha / rank`` (the
reference's own behaviour, kept: the official ID LoRA is used that way).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from comfy.weight_adapter.lora import LoraDiff

from ..checkpoints.loaders import LORA_TARGETS
from ..model.transformer import CogVideoXTransformer


def _layer(block: nn.Module, target: str) -> nn.Module:
    mod = block.attn1
    for part in target.split("."):
        mod = mod[int(part)] if part.isdigit() else getattr(mod, part)
    return mod


def lora_key(block: int, target: str, which: str) -> str:
    return f"transformer.transformer_blocks.{block}.attn1.{target}.lora_{which}.weight"


class TrainableLora(nn.Module):
    """One ``LoraDiff`` per target layer of every backbone block, attached as that layer's ``weight_function``.

    Parameters:
        rank, alpha: the reference's ``--rank`` / ``--lora_alpha`` (scale alpha / rank while training).
        init: tensors of an existing ``pytorch_lora_weights.safetensors`` to start from (the reference's resume
            hook); None: PEFT's default init (A kaiming-uniform, B zero), so training starts at the backbone.
    """

    def __init__(self, transformer: CogVideoXTransformer, rank: int, alpha: float, targets=LORA_TARGETS,
                 init: dict[str, Tensor] | None = None):
        super().__init__()
        self.rank, self.alpha, self.targets = rank, float(alpha), tuple(targets)
        self.adapters = nn.ModuleDict()
        self._layers: list[nn.Module] = []
        for i, block in enumerate(transformer.transformer_blocks):
            for t in self.targets:
                layer = _layer(block, t)
                out_dim, in_dim = layer.weight.shape
                if init is not None:
                    a, b = (init.get(lora_key(i, t, w)) for w in "AB")
                    if a is None or b is None:
                        raise ValueError(f"LoRA to resume from lacks {lora_key(i, t, 'A' if a is None else 'B')}; "
                                         f"it was not trained on these target modules {self.targets}")
                    if a.shape != (rank, in_dim) or b.shape != (out_dim, rank):
                        raise ValueError(f"LoRA to resume from: {lora_key(i, t, 'A')} has rank {a.shape[0]}, "
                                         f"--rank is {rank}; pass --rank {a.shape[0]}")
                else:
                    a = torch.empty(rank, in_dim)
                    nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # PEFT's init_lora_weights=True
                    b = torch.zeros(out_dim, rank)
                # LoraDiff takes (up = B, down = A, alpha, mid, dora_scale, reshape)
                adapter = LoraDiff((b.float(), a.float(), self.alpha, None, None, None))
                # LoraDiff keeps alpha as a frozen 0-dim Parameter; DeepSpeed broadcasts every parameter as bytes
                # (``p.data.view(torch.uint8)``), which a 0-dim bf16 tensor cannot be: hold it as a buffer instead
                alpha = adapter.alpha.detach().clone()
                del adapter.alpha
                adapter.register_buffer("alpha", alpha)
                self.adapters[f"{i}__{t.replace('.', '_')}"] = adapter
                layer.weight_function = [adapter]  # the instance's own list (the class attribute is shared)
                self._layers.append(layer)

    def attach(self) -> None:
        """(Re)hang every adapter on its layer. ComfyUI's ModelPatcher empties ``weight_function`` when it unloads or
        re-patches the backbone (e.g. to make room for the VAE on a small card); the model calls this before each
        forward so the LoRA can never silently drop out of training."""
        for layer, adapter in zip(self._layers, self.adapters.values()):
            if len(layer.weight_function) != 1 or layer.weight_function[0] is not adapter:
                layer.weight_function = [adapter]

    def trainable(self) -> dict[str, nn.Parameter]:
        """Official key -> parameter (A and B of every adapter), in a fixed order."""
        out = {}
        n = len(self.targets)
        for idx, adapter in enumerate(self.adapters.values()):
            i, t = divmod(idx, n)
            out[lora_key(i, self.targets[t], "A")] = adapter.lora_down.weight
            out[lora_key(i, self.targets[t], "B")] = adapter.lora_up.weight
        return out

    def state_dict_official(self, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        return {k: v.detach().cpu().to(dtype).contiguous() for k, v in self.trainable().items()}

    def detach_from_backbone(self) -> None:
        """Remove the adapters from the backbone's layers (the backbone is plain again)."""
        for layer in self._layers:
            layer.weight_function = []
