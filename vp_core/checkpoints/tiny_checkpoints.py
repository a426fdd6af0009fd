"""Tiny random checkpoints in the official layouts, for the demo run and the tests (real weights cannot be
downloaded here). Same sizes as the conformance set A: 4 layers, 2 heads x 16, 16 text tokens, 96x80 px, 17-frame
windows. Random draws follow the fixture README's scheme so activations stay in a sane range."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..base import atomic

TRANSFORMER = dict(
    num_attention_heads=2, attention_head_dim=16, in_channels=32, out_channels=16, flip_sin_to_cos=True, freq_shift=0,
    time_embed_dim=32, text_embed_dim=32, num_layers=4, attention_bias=True, sample_width=10, sample_height=12,
    sample_frames=17, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=16, activation_fn="gelu-approximate",
    timestep_activation_fn="silu", norm_elementwise_affine=True, norm_eps=1e-5, spatial_interpolation_scale=1.875,
    temporal_interpolation_scale=1.0, use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
)
VAE = dict(
    act_fn="silu", block_out_channels=[8, 16, 16, 32], down_block_types=["CogVideoXDownBlock3D"] * 4,
    up_block_types=["CogVideoXUpBlock3D"] * 4, force_upcast=True, in_channels=3, latent_channels=16, layers_per_block=1,
    norm_eps=1e-6, norm_num_groups=4, out_channels=3, sample_height=96, sample_width=80, scaling_factor=0.7,
    temporal_compression_ratio=4, use_post_quant_conv=False, use_quant_conv=False,
)
WIDTH, HEIGHT, WINDOW, TEXT_TOKENS = 80, 96, 17, 16


def _random_like(sd: dict[str, torch.Tensor], g: torch.Generator) -> dict[str, torch.Tensor]:
    out = {}
    for k in sorted(sd):
        shape = sd[k].shape
        if k.endswith("pos_embedding"):
            out[k] = 0.3 * torch.randn(shape, generator=g)
        elif len(shape) >= 2:
            fan_in = int(torch.tensor(shape[1:]).prod())
            out[k] = torch.randn(shape, generator=g) / fan_in ** 0.5
        elif "norm" in k and k.endswith("weight"):
            out[k] = 1 + 0.2 * torch.randn(shape, generator=g)
        else:
            out[k] = 0.1 * torch.randn(shape, generator=g)
    return out


def _write_model(folder: Path, config: dict, class_name: str, sd: dict[str, torch.Tensor]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / "config.json", json.dumps({"_class_name": class_name, "_diffusers_version": "0.31.0.dev0", **config}, indent=2))
    _save({k: v.contiguous() for k, v in sd.items()}, folder / "diffusion_pytorch_model.safetensors")


def write_tiny_checkpoints(root: str | Path, seed: int = 0, tokenizer_dir: str | Path | None = None) -> Path:
    """Write ``root/CogVideoX-5b-I2V``, ``root/VideoPainter/checkpoints/branch`` and
    ``root/VideoPainterID/checkpoints/pytorch_lora_weights.safetensors``; returns ``root``."""
    import comfy.ops
    from diffusers import AutoencoderKLCogVideoX

    from ..model.branch import VideoPainterBranch
    from ..model.config import CogVideoXConfig
    from ..model.transformer import CogVideoXTransformer
    from .loaders import DEFAULT_SCHEDULER

    root = Path(root)
    g = torch.Generator("cpu").manual_seed(seed)
    cfg = CogVideoXConfig.from_dict(TRANSFORMER)
    ops = comfy.ops.disable_weight_init
    with torch.device("meta"):
        backbone = CogVideoXTransformer(cfg, operations=ops).state_dict()
        branch = VideoPainterBranch(CogVideoXConfig.from_dict({**TRANSFORMER, "num_layers": 2}), operations=ops).state_dict()
    base = root / "CogVideoX-5b-I2V"
    _write_model(base / "transformer", TRANSFORMER, "CogVideoXTransformer3DModel", _random_like(backbone, g))
    torch.manual_seed(seed)
    vae = AutoencoderKLCogVideoX(**VAE)
    _write_model(base / "vae", VAE, "AutoencoderKLCogVideoX", vae.state_dict())
    (base / "scheduler").mkdir(parents=True, exist_ok=True)
    atomic.write_text(base / "scheduler" / "scheduler_config.json", json.dumps({"_class_name": "CogVideoXDDIMScheduler", **DEFAULT_SCHEDULER}, indent=2))
    atomic.write_text(base / "model_index.json", json.dumps({
        "_class_name": "CogVideoXImageToVideoPipeline", "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
        "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
        "transformer": ["diffusers", "CogVideoXTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLCogVideoX"],
    }, indent=2))
    _write_text_encoder(base, seed, tokenizer_dir)
    branch_sd = _random_like(branch, g)
    branch_cfg = {**TRANSFORMER, "num_layers": 2, "wo_text": False, "id_pool_resample_learnable": False}
    _write_model(root / "VideoPainter" / "checkpoints" / "branch", branch_cfg, "CogvideoXBranchModel", branch_sd)
    lora, rank, inner = {}, 8, cfg.inner_dim
    for i in range(cfg.num_layers):
        for t in ("to_q", "to_k", "to_v", "to_out.0"):
            p = f"transformer.transformer_blocks.{i}.attn1.{t}"
            lora[f"{p}.lora_A.weight"] = torch.randn(rank, inner, generator=g) / inner ** 0.5
            lora[f"{p}.lora_B.weight"] = 0.5 * torch.randn(inner, rank, generator=g) / rank ** 0.5
    (root / "VideoPainterID" / "checkpoints").mkdir(parents=True, exist_ok=True)
    _save(lora, root / "VideoPainterID" / "checkpoints" / "pytorch_lora_weights.safetensors")
    return root


def _save(sd: dict[str, torch.Tensor], path: Path) -> None:
    with atomic.atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata={"format": "pt"})


def _write_text_encoder(base: Path, seed: int, tokenizer_dir: str | Path | None) -> None:
    """A tiny T5 v1.1-style encoder (``text_encoder/``) and the real T5 tokenizer files (``tokenizer/``)."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    config = T5Config(vocab_size=32128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, is_encoder_decoder=False)
    T5EncoderModel(config).save_pretrained(str(base / "text_encoder"), safe_serialization=True)
    if tokenizer_dir is None:
        import comfy.sd

        tokenizer_dir = Path(comfy.sd.__file__).parent / "text_encoders" / "t5_tokenizer"
    shutil.copytree(tokenizer_dir, base / "tokenizer", dirs_exist_ok=True)


STYLE_LORA_NAME = "videopainter_demo_style.safetensors"


def write_tiny_style_lora(models_dir: str | Path, name: str = STYLE_LORA_NAME, seed: int = 1, rank: int = 4) -> Path:
    """A tiny style LoRA for the demo backbone in the diffusers/PEFT layout published for CogVideoX-5b-I2V
    (``transformer.transformer_blocks.N.attn1.to_q.lora_A.weight``, ..., ``ff.net.0.proj``, ``ff.net.2``; no alpha),
    written to ``models_dir/loras/name``; returns its path."""
    g = torch.Generator("cpu").manual_seed(seed)
    inner = TRANSFORMER["num_attention_heads"] * TRANSFORMER["attention_head_dim"]
    ff = 4 * inner  # CogVideoX's feed-forward width
    shapes = {"attn1.to_q": (inner, inner), "attn1.to_k": (inner, inner), "attn1.to_v": (inner, inner),
              "attn1.to_out.0": (inner, inner), "ff.net.0.proj": (ff, inner), "ff.net.2": (inner, ff)}  # (out, in)
    sd = {}
    for i in range(TRANSFORMER["num_layers"]):
        for module, (out_f, in_f) in shapes.items():
            p = f"transformer.transformer_blocks.{i}.{module}"
            sd[f"{p}.lora_A.weight"] = torch.randn(rank, in_f, generator=g) / in_f ** 0.5
            sd[f"{p}.lora_B.weight"] = 0.5 * torch.randn(out_f, rank, generator=g) / rank ** 0.5
    path = Path(models_dir) / "loras" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(sd, path)
    return path
