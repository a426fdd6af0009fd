"""The trainable parts as files: the branch (from the official ``branch/`` folder or ``from_transformer``) and the
ID LoRA, written in the OFFICIAL layouts the pack's loaders read unchanged (``checkpoints.loaders``), atomically."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from ..base import atomic
from ..checkpoints import loaders
from ..model.branch import VideoPainterBranch
from ..model.transformer import CogVideoXTransformer

log = logging.getLogger(__name__)
BRANCH_CLASS = "CogvideoXBranchModel"
LORA_FILE = "pytorch_lora_weights.safetensors"


@dataclass
class TrainableBranch:
    """The branch module (all its tensors trainable, as the script's ``branch.requires_grad_(True)``) plus the
    tensors the official file stores but no forward uses (``UNUSED_PREFIXES``, and e.g. a learned positional table the
    config switched off): kept unchanged and written back, so
    a saved branch is the complete official file. ``config``: the config.json to write."""

    module: VideoPainterBranch
    config: dict
    unused: dict[str, Tensor] = field(default_factory=dict)

    def state_dict_official(self, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        """Every tensor of the official file (``dtype``: cast to it; None: as held)."""
        sd = {k: v.detach().cpu().to(dtype).contiguous() for k, v in self.module.state_dict().items()}
        sd.update({k: v.detach().cpu().to(dtype).contiguous() for k, v in self.unused.items()})
        return dict(sorted(sd.items()))


def _trainable(module: nn.Module) -> nn.Module:
    """comfy.ops layers were built frozen (``build_module``) on the file's memory; make every tensor a trainable
    fp32-master parameter in memory of its own (the optimizer writes in place)."""
    module = module.float()
    for p in module.parameters():
        p.data = p.data.clone()
    return module.train().requires_grad_(True)


def load_trainable_branch(folder: str | Path) -> TrainableBranch:
    """The official ``branch/`` folder as a trainable module (fp32 master weights; mixed precision is accelerate's)."""
    folder = Path(folder)
    patcher = loaders.load_branch(folder, torch.float32, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    module = _trainable(patcher.model.branch)
    sd = loaders.read_model_folder(folder)
    mine = module.state_dict()
    unused = {k: v.float().clone() for k, v in sd.items() if k not in mine}  # UNUSED_PREFIXES and the like
    return TrainableBranch(module, loaders.read_json(folder / "config.json"), unused)


def branch_from_transformer(transformer: CogVideoXTransformer, num_layers: int = 2) -> TrainableBranch:
    """A new branch initialised as the reference's ``CogvideoXBranchModel.from_transformer``: the patch embedding's
    conv with the backbone's first 16 input channels copied to both the noisy-latent and the masked-video slots (the
    mask channel zero), its bias, the time embedding and the first ``num_layers`` blocks copied; ``branch_blocks``
    zero (so the branch starts as a no-op); the text projection newly initialised (the reference does not copy it)
    and the positional table the sin-cos one the reference's module starts with."""
    import dataclasses

    import comfy.ops

    cfg = dataclasses.replace(transformer.cfg, num_layers=num_layers)
    ops = comfy.ops.pick_operations(torch.float32, None)
    branch = VideoPainterBranch(cfg, dtype=torch.float32, operations=ops)
    with torch.no_grad():
        for p in branch.parameters():  # comfy.ops layers skip initialisation: give every tensor torch's default
            if p.ndim >= 2:
                nn.init.kaiming_uniform_(p, a=5 ** 0.5)
            else:
                p.zero_()
        for name, mod in branch.named_modules():
            if isinstance(mod, nn.LayerNorm) and mod.weight is not None:
                mod.weight.fill_(1.0)
        src = transformer.patch_embed.proj.weight.float()
        half = cfg.latent_channels
        w = torch.zeros_like(branch.patch_embed.proj.weight)
        w[:, :half] = src[:, :half]
        w[:, half:2 * half] = src[:, :half]
        branch.patch_embed.proj.weight.copy_(w)
        branch.patch_embed.proj.bias.copy_(transformer.patch_embed.proj.bias.float())
        branch.time_embedding.load_state_dict({k: v.float() for k, v in transformer.time_embedding.state_dict().items()})
        for i, block in enumerate(branch.transformer_blocks):
            block.load_state_dict({k: v.float() for k, v in transformer.transformer_blocks[i].state_dict().items()})
        for proj in branch.branch_blocks:
            proj.weight.zero_()
            proj.bias.zero_()
        if branch.patch_embed.pos_embedding is not None:
            f = cfg.sample_latent_frames
            branch.patch_embed.pos_embedding.copy_(branch.patch_embed._sincos(
                f, cfg.sample_height, cfg.sample_width, branch.patch_embed.pos_embedding))
    config = dict(cfg.to_dict(), _class_name=BRANCH_CLASS, wo_text=False, id_pool_resample_learnable=False)
    return TrainableBranch(_trainable(branch), config, {})


def save_branch(branch: TrainableBranch, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
    """``folder/config.json`` + ``folder/diffusion_pytorch_model.safetensors`` (official layout; ``dtype``: the
    tensors' dtype in the file, None: as held), each atomic."""
    folder = Path(folder)
    with atomic.atomic_path(folder / loaders.WEIGHTS_NAME) as tmp:
        save_file(branch.state_dict_official(dtype), str(tmp), metadata={"format": "pt"})
    atomic.write_text(folder / "config.json", json.dumps(branch.config, indent=2) + "\n")
    return folder


def save_lora(tensors: dict[str, Tensor], folder: str | Path) -> Path:
    """``folder/pytorch_lora_weights.safetensors`` with the official key names (no alphas, as the reference)."""
    path = Path(folder) / LORA_FILE
    with atomic.atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata={"format": "pt"})
    return path
