"""Tiny random metric networks in the real folder layout (``models/videopainter/metrics/...``), for tests and demos.

Same architectures as the real ones (transformers CLIP with a small config, torchmetrics' SqueezeNet LPIPS, I3D with
every layer's width divided by 16); the scores they give mean nothing.
"""
from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from safetensors.torch import save_file

from . import models
from .i3d import InceptionI3d

TINY_I3D_DIVISOR = 16


def _tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """A character-level CLIP BPE vocabulary (no merges): enough for CLIPTokenizer to tokenise any caption."""
    chars = list(string.ascii_lowercase + string.digits + ".,;:!?'-()")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder / "vocab.json", folder / "merges.txt"


def write_tiny_clip(folder: Path, seed: int = 0) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab_file, merges_file = _tokenizer_files(folder / "_tok")
    tok = CLIPTokenizer(str(vocab_file), str(merges_file))
    eos, bos = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|startoftext|>")
    cfg = CLIPConfig(
        # 224 px / 32 px patches: the processor's crop size, like ViT-B/32 (ViT-L/14 uses 14 px patches)
        text_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, eos_token_id=eos, bos_token_id=bos,
                         pad_token_id=eos),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=224, patch_size=32),
        projection_dim=8,
    )
    torch.manual_seed(seed)
    model = CLIPModel(cfg).eval()
    processor = CLIPProcessor(CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}), tok)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    for f in (vocab_file, merges_file):
        f.unlink()
    (folder / "_tok").rmdir()
    return folder


def tiny_i3d_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = InceptionI3d(width_divisor=TINY_I3D_DIVISOR)
    for m in net.modules():  # non-trivial batch-norm statistics, so batch_stats on/off differ
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def write_tiny_metric_models(metrics_dir: str | Path, seed: int = 0) -> Path:
    """Writes the four networks into ``metrics_dir`` (= ``models/videopainter/metrics``); returns it."""
    root = Path(metrics_dir)
    root.mkdir(parents=True, exist_ok=True)
    write_tiny_clip(root / models.CLIP_SCORE.name, seed)
    write_tiny_clip(root / models.CLIP_TEMPORAL.name, seed + 1)
    torch.manual_seed(seed)
    lp = models.lpips_network()
    for name, p in lp.named_parameters():
        if name.startswith("lin"):  # LPIPS heads are non-negative 1x1 convolutions
            p.data.uniform_(0.0, 0.1)
    save_file(models.lpips_state(lp), str(root / models.LPIPS.name))
    save_file(tiny_i3d_state(seed), str(root / models.I3D.name))
    return root
