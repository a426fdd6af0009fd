"""Checkpoint loading: the one module that knows files, key names and shapes (safetensors only, never pickle).

Official layouts, loaded unchanged:
* backbone: a diffusers ``transformer/`` folder (``config.json`` + one ``diffusion_pytorch_model.safetensors`` or
  shards listed in ``diffusion_pytorch_model.safetensors.index.json``), the whole CogVideoX-5b-I2V diffusers folder,
  or a single ``.safetensors`` file with diffusers key names or core ComfyUI's (``blocks.N.q`` ...,
  ``core_interop``), optionally prefixed;
* branch: ``config.json`` + ``diffusion_pytorch_model.safetensors`` (VideoPainter ``CogvideoXBranchModel``);
* ID LoRA: ``pytorch_lora_weights.safetensors`` (PEFT keys ``transformer.transformer_blocks.N.attn1.to_q.lora_A.weight``).
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor, nn

import comfy.lora
import comfy.model_management
import comfy.ops

from . import core_interop
from ..model.branch import UNUSED_PREFIXES, VideoPainterBranch
from ..model.config import CogVideoXConfig
from ..model.transformer import CogVideoXTransformer
from .patcher import VideoPainterPatcher

log = logging.getLogger(__name__)

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl")
KEY_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "model.")
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or of the wrong kind; the message names the file."""


# ---------------------------------------------------------------------------------------------------------- files
def read_safetensors(path: str | os.PathLike) -> dict[str, Tensor]:
    """All tensors of one safetensors file. Pickle formats are refused without being opened."""
    path = _checked_safetensors_path(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise _unreadable(path, e) from e


def _checked_safetensors_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: {path.suffix} files are pickles, which can run code when loaded; this pack loads "
            "safetensors only. Download the .safetensors version of the weights."
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    return path


def _unreadable(path: Path, e: Exception) -> CheckpointError:
    return CheckpointError(
        f"{path}: not a readable safetensors file ({e}); the download may be truncated or of another format: "
        "download it again"
    )


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read JSON ({e})") from e


def model_folder_files(folder: Path, base: str = "diffusion_pytorch_model") -> list[Path]:
    """The safetensors files of a diffusers/transformers model folder: ``{base}.safetensors`` or the shards named in
    ``{base}.safetensors.index.json`` (``base`` is ``model`` for transformers' text encoders)."""
    index, single = folder / f"{base}.safetensors.index.json", folder / f"{base}.safetensors"
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        if not shards:
            raise CheckpointError(f"{index}: weight_map is empty")
        for shard in shards:
            if not (folder / shard).is_file():
                raise CheckpointError(f"{folder / shard}: listed in {index.name} but missing; the download is incomplete")
        return [folder / shard for shard in shards]
    if single.is_file():
        return [single]
    found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    pickles = [f for f in found if f.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise CheckpointError(
            f"{folder}: only {', '.join(pickles)} (pickles, which can run code when loaded) found; this pack loads "
            f"safetensors only: download the {single.name} files"
        )
    raise CheckpointError(
        f"{folder}: expected {single.name} or {index.name}; found {found[:8] or 'nothing'}: the download is "
        "incomplete or this is not a model folder"
    )


def read_model_folder(folder: Path, base: str = "diffusion_pytorch_model") -> dict[str, Tensor]:
    """All tensors of a model folder (:func:`model_folder_files`), memory-mapped: nothing is read until used.

    The tensors of one file share its mapping: the pages read stay resident until every tensor of that file is
    freed, so assign them (``load_state_dict(assign=True)``) rather than copying them into other storage; a copying
    consumer should use :func:`iter_model_folder`."""
    sd: dict[str, Tensor] = {}
    for path in model_folder_files(folder, base):
        sd.update(read_safetensors(path))
    return sd


def model_folder_header(folder: Path, base: str = "diffusion_pytorch_model") -> dict[str, Tensor]:
    """Names, shapes and dtypes of a model folder's tensors as meta tensors (no weight is read)."""
    return {k: v.to("meta") for k, v in read_model_folder(folder, base).items()}


def iter_model_folder(folder: Path, base: str = "diffusion_pytorch_model", skip: frozenset = frozenset()):
    """``(name, tensor)`` for each tensor of a model folder, each read into its own memory (safetensors' ``pread``
    backend) and handed out one at a time: a consumer that copies it into a built module and drops it holds the
    module plus one tensor, never the file as well (which a memory-mapped state dict costs: see
    :func:`read_model_folder`). ``skip``: names not read at all."""
    for path in model_folder_files(folder, base):
        path = _checked_safetensors_path(path)
        try:
            handle = safe_open(str(path), framework="pt", backend="pread")
        except TypeError:  # safetensors before 0.8 has no backend choice: its default one
            handle = safe_open(str(path), framework="pt")
        except (SafetensorError, OSError, ValueError) as e:
            raise _unreadable(path, e) from e
        with handle as f:
            for key in f.keys():
                if key not in skip:
                    yield key, f.get_tensor(key)


def strip_prefix(sd: dict[str, Tensor], marker: str) -> dict[str, Tensor]:
    """Remove a wrapper prefix (``model.diffusion_model.`` etc.) found in front of ``marker`` keys."""
    for prefix in KEY_PREFIXES:
        if any(k.startswith(prefix + marker) for k in sd):
            return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    return sd


# ----------------------------------------------------------------------------------------------- detection
def detect_kind(sd: dict[str, Tensor]) -> str:
    """What a state dict holds, by key names and shapes: backbone, branch, lora, vae or unknown."""
    keys = sd.keys()
    if any(".lora_A." in k or ".lora_down." in k or ".lora_B." in k for k in keys):
        return "lora"
    if any(k.startswith("encoder.down_blocks.") for k in keys) and any(k.startswith("decoder.") for k in keys):
        return "vae"
    if any(k.startswith("branch_blocks.") for k in keys):
        return "branch"
    if "patch_embed.proj.weight" in keys and any(k.startswith("transformer_blocks.") for k in keys):
        return "backbone"
    return "unknown"


def config_from_shapes(sd: dict[str, Tensor], base: CogVideoXConfig | None = None) -> CogVideoXConfig:
    """Backbone config fields readable from tensor shapes, over ``base`` (default: CogVideoX-5B-I2V's); used for
    single-file checkpoints without a config.json (the branch always ships one)."""
    base = base or CogVideoXConfig()
    proj = sd["patch_embed.proj.weight"]
    inner, in_ch, p = proj.shape[0], proj.shape[1], proj.shape[2]
    head_dim = sd["transformer_blocks.0.attn1.norm_q.weight"].shape[0]
    layers = len({k.split(".")[1] for k in sd if k.startswith("transformer_blocks.")})
    fields = dict(
        base.to_dict(), num_layers=layers, attention_head_dim=head_dim, num_attention_heads=inner // head_dim,
        patch_size=p, text_embed_dim=sd["patch_embed.text_proj.weight"].shape[1],
        time_embed_dim=sd["time_embedding.linear_1.weight"].shape[0],
        use_learned_positional_embeddings="patch_embed.pos_embedding" in sd,
    )
    fields.update(in_channels=in_ch, out_channels=sd["proj_out.weight"].shape[0] // (p * p))
    return CogVideoXConfig(**fields)


def check_shapes(module: nn.Module, sd: dict[str, Tensor], source: str, what: str) -> None:
    """Every tensor present with the shape the config implies; a clear error otherwise."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in sd]
    if missing:
        raise CheckpointError(
            f"{source}: not a complete {what} checkpoint: {len(missing)} tensor(s) missing (e.g. "
            f"{', '.join(missing[:3])}); the file is incomplete or belongs to another model: download it again"
        )
    wrong = [(k, tuple(sd[k].shape), tuple(v.shape)) for k, v in expected.items() if sd[k].shape != v.shape]
    if wrong:
        k, got, want = wrong[0]
        raise CheckpointError(
            f"{source}: {len(wrong)} tensors have the wrong shape for a {what} (e.g. {k}: file has {got}, "
            f"config needs {want}); this checkpoint was made for another model size"
        )


# ------------------------------------------------------------------------------------------------ modules
@dataclass(frozen=True)
class Precision:
    """Storage dtype of the weights and the dtype the layers compute in (they differ for fp8 storage)."""

    weight: torch.dtype
    compute: torch.dtype


def pick_precision(weight_dtype: torch.dtype | None, load_device: torch.device) -> Precision:
    """ComfyUI's choice of storage/compute dtype for ``load_device`` unless the user fixed one."""
    supported = [torch.bfloat16, torch.float16, torch.float32]
    if weight_dtype is None:
        weight_dtype = comfy.model_management.unet_dtype(device=load_device, supported_dtypes=supported)
    compute = comfy.model_management.unet_manual_cast(weight_dtype, load_device, supported) or weight_dtype
    return Precision(weight_dtype, compute)


class ManagedModule(nn.Module):
    """Plain ``nn.Module`` root for a ``ModelPatcher`` (diffusers' ``ModelMixin.device`` is read-only)."""

    def __init__(self, name: str, inner: nn.Module, precision: Precision):
        super().__init__()
        self.add_module(name, inner)
        self.precision = precision

    def get_dtype(self) -> torch.dtype:
        return self.precision.weight

    def memory_required(self, input_shape) -> int:
        return 0


def build_module(cls, cfg: CogVideoXConfig, sd: dict[str, Tensor], precision: Precision, source: str, what: str) -> nn.Module:
    """Instantiate ``cls`` on the meta device with ``comfy.ops`` layers and assign the checkpoint tensors.

    ``sd`` is consumed: each tensor leaves it once cast, so a cast load (fp8 storage) peaks near the file's size
    plus one tensor instead of file + result."""
    ops = comfy.ops.pick_operations(precision.weight, precision.compute if precision.compute != precision.weight else None)
    with torch.device("meta"):
        module = cls(cfg, dtype=precision.weight, operations=ops)
    check_shapes(module, sd, source, what)
    cast = {}
    for k in module.state_dict():
        dtype = precision.compute if k.endswith("pos_embedding") else precision.weight
        cast[k] = sd.pop(k).to(dtype)
    module.load_state_dict(cast, strict=True, assign=True)
    return module.eval().requires_grad_(False)


def patcher_for(name: str, module: nn.Module, precision: Precision, load_device=None, offload_device=None):
    load_device = load_device or comfy.model_management.get_torch_device()
    offload_device = offload_device or comfy.model_management.unet_offload_device()
    root = ManagedModule(name, module, precision)
    return VideoPainterPatcher(root, load_device=load_device, offload_device=offload_device)


def resolve_transformer_path(path: Path) -> tuple[dict[str, Tensor], dict | None, str]:
    """(state dict, config dict or None, description) for any supported backbone location."""
    if path.is_dir():
        folder = path / "transformer" if (path / "transformer").is_dir() else path
        cfg_path = folder / "config.json"
        return read_model_folder(folder), read_json(cfg_path) if cfg_path.is_file() else None, str(folder)
    sd = read_safetensors(path)
    core = strip_prefix(sd, core_interop.CORE_MARKER)
    sd = core_interop.to_diffusers_keys(core) if core_interop.is_core_layout(core) else strip_prefix(sd, "transformer_blocks.")
    cfg_path = path.with_name("config.json")
    return sd, read_json(cfg_path) if cfg_path.is_file() else None, path.name


def _i2v_shapes(proj: tuple | list, out: tuple | list) -> bool:
    """patch_embed.proj and proj_out shapes of an image-to-video CogVideoX (2 x 16 latent channels in, 16 out)."""
    return len(proj) == 4 and out[0] % (proj[2] * proj[3]) == 0 and proj[1] == 2 * (out[0] // (proj[2] * proj[3]))


def is_i2v_transformer_folder(folder: Path) -> bool:
    """A diffusers ``transformer/`` folder of an image-to-video CogVideoX (by its config.json; no weights read)."""
    try:
        cfg = read_json(folder / "config.json")
    except CheckpointError:
        return False
    return cfg.get("in_channels") is not None and cfg.get("in_channels") == 2 * cfg.get("out_channels", -1)


@functools.lru_cache(maxsize=256)
def _i2v_file(path: str, mtime: float, size: int) -> bool:
    try:
        with safe_open(path, "pt") as f:
            stored = {k: k for k in f.keys()}  # key name as the loader will see it -> name in the file
            core = strip_prefix(stored, core_interop.CORE_MARKER)
            names = core_interop.to_diffusers_keys(core) if core_interop.is_core_layout(core) else \
                strip_prefix(stored, "transformer_blocks.")
            if detect_kind(names) != "backbone":
                return False
            return _i2v_shapes(f.get_slice(names["patch_embed.proj.weight"]).get_shape(),
                               f.get_slice(names["proj_out.weight"]).get_shape())
    except (SafetensorError, OSError, ValueError, KeyError):
        return False


def is_i2v_transformer_file(path: str | os.PathLike | None) -> bool:
    """A single safetensors file holding an image-to-video CogVideoX transformer, in core's key layout or
    diffusers' (read from the file's header only; cached per path, size and modification time)."""
    if path is None or not os.path.isfile(path):
        return False
    st = os.stat(path)
    return _i2v_file(str(path), st.st_mtime, st.st_size)


def load_backbone(path: str | os.PathLike, weight_dtype: torch.dtype | None = None, load_device=None, offload_device=None):
    """The CogVideoX-I2V backbone as a ``ModelPatcher`` (root attribute ``diffusion_model``)."""
    sd, cfg_dict, source = resolve_transformer_path(Path(path))
    kind = detect_kind(sd)
    if kind != "backbone":
        raise CheckpointError(f"{source}: expected a CogVideoX-5B-I2V transformer, but this looks like a {kind} checkpoint")
    cfg = CogVideoXConfig.from_dict(cfg_dict, source) if cfg_dict else config_from_shapes(sd)
    if cfg.in_channels != 2 * cfg.out_channels:
        raise CheckpointError(
            f"{source}: in_channels={cfg.in_channels}, out_channels={cfg.out_channels}: this is not an image-to-video "
            "CogVideoX (I2V takes 2x16 channels); VideoPainter needs CogVideoX-5b-I2V"
        )
    precision = pick_precision(weight_dtype, load_device or comfy.model_management.get_torch_device())
    module = build_module(CogVideoXTransformer, cfg, sd, precision, source, "CogVideoX-I2V transformer")
    return patcher_for("diffusion_model", module, precision, load_device, offload_device)


def load_branch(folder: str | os.PathLike, weight_dtype: torch.dtype | None = None, load_device=None, offload_device=None):
    """The VideoPainter branch as a ``ModelPatcher`` (root attribute ``branch``); unused tensors are skipped."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder}: the branch folder needs config.json next to {WEIGHTS_NAME}")
    sd = read_model_folder(folder)
    kind = detect_kind(sd)
    if kind != "branch":
        raise CheckpointError(f"{folder}: expected the VideoPainter branch (branch_blocks.*), found a {kind} checkpoint")
    cfg = CogVideoXConfig.from_dict(read_json(cfg_path), str(cfg_path))
    sd = {k: v for k, v in sd.items() if not k.startswith(UNUSED_PREFIXES)}
    precision = pick_precision(weight_dtype, load_device or comfy.model_management.get_torch_device())
    module = build_module(VideoPainterBranch, cfg, sd, precision, str(folder), "VideoPainter branch")
    return patcher_for("branch", module, precision, load_device, offload_device)


# ---------------------------------------------------------------------------------------------------- LoRA
@dataclass
class LoraPatches:
    """Weight patches for ``ModelPatcher.add_patches`` plus what could not be matched."""

    patches: dict
    unmatched: list[str]
    rank: int | None


def lora_key_map(patcher) -> dict[str, str]:
    """LoRA module names (diffusers/PEFT ``transformer.X``, bare ``X``, ComfyUI ``diffusion_model.X``, kohya
    ``lora_unet_X_with_underscores``) -> weight keys of the backbone ``ModelPatcher``."""
    out: dict[str, str] = {}
    for key in patcher.model.state_dict():
        if not (key.startswith("diffusion_model.") and key.endswith(".weight")):
            continue
        name = key[len("diffusion_model."):-len(".weight")]
        for alias in (f"transformer.{name}", name, f"diffusion_model.{name}", "lora_unet_" + name.replace(".", "_")):
            out[alias] = key
    return out


_LORA_UP = (".lora_B.weight", ".lora_up.weight", "_lora.up.weight")
_LORA_DOWN = (".lora_A.weight", ".lora_down.weight", "_lora.down.weight")


def _check_lora_shapes(path, sd: dict, used: list[str], key_map: dict[str, str], patcher) -> None:
    """Refuse a LoRA whose updates do not fit the layers their names match (a LoRA for another model size), before
    any patch reaches the host: ComfyUI's patcher would log one unnamed error per layer at sampling time and run
    without it. An update up @ down fits a weight [out, in, ...] when up has ``out`` rows and the product has the
    weight's size (ComfyUI reshapes it, e.g. a conv's flattened down projection); a full ``.diff`` must equal it."""
    shapes = {k: tuple(v.shape) for k, v in patcher.model.state_dict().items()}
    bad = []
    for m in used:
        want = shapes[key_map[m]]
        up = next((m + s for s in _LORA_UP if m + s in sd), None)
        down = next((m + s for s in _LORA_DOWN if m + s in sd), None)
        if up is not None and down is not None:
            key, got = up, (sd[up].shape[0], *sd[down].shape[1:])
            fits = got[0] == want[0] and math.prod(got) == math.prod(want)
        elif m + ".diff" in sd:
            key, got = m + ".diff", tuple(sd[m + ".diff"].shape)
            fits = got == want
        else:
            continue
        if not fits:
            bad.append((key, got, want, key_map[m]))
    if bad:
        key, got, want, layer = bad[0]
        fmt = lambda t: "x".join(str(int(d)) for d in t)  # noqa: E731
        raise CheckpointError(
            f"{path}: {len(bad)} of its {len(used)} matched layers do not fit this model (first: {key} gives a "
            f"{fmt(got)} update, the model's {layer} is {fmt(want)}); "
            "it is a LoRA for another model size: use a LoRA trained on CogVideoX-5B-I2V"
        )


def load_lora(path: str | os.PathLike, patcher) -> LoraPatches:
    """Read a LoRA for the backbone; ComfyUI's own parser builds the patches (alpha absent -> scale 1.0)."""
    sd = read_safetensors(path)
    if detect_kind(sd) != "lora":
        raise CheckpointError(f"{Path(path).name}: not a LoRA file (no lora_A/lora_B or lora_down/lora_up tensors)")
    key_map = lora_key_map(patcher)
    used = [m for m in key_map if any(k.startswith(m + ".") or k.startswith(m + "_lora") for k in sd)]
    _check_lora_shapes(path, sd, used, key_map, patcher)
    patches = comfy.lora.load_lora(sd, {m: key_map[m] for m in used}, log_missing=False)
    covered = tuple(m + "." for m in used) + tuple(m + "_lora" for m in used)
    unmatched = sorted(k for k in sd if not k.startswith(covered))
    ranks = {v.shape[0] for k, v in sd.items() if k.endswith(("lora_A.weight", "lora_down.weight"))}
    return LoraPatches(patches, unmatched, min(ranks) if ranks else None)


def load_scheduler_config(folder: str | os.PathLike) -> dict:
    """``scheduler/scheduler_config.json`` of the diffusers folder (CogVideoX-5b-I2V's values if absent)."""
    folder = Path(folder)
    for path in (folder / "scheduler" / "scheduler_config.json", folder / "scheduler_config.json"):
        if path.is_file():
            return read_json(path)
    log.warning("%s has no scheduler/scheduler_config.json; using CogVideoX-5b-I2V's scheduler settings", folder)
    return dict(DEFAULT_SCHEDULER)


# CogVideoX-5b-I2V's scheduler/scheduler_config.json (spec §1.2)
DEFAULT_SCHEDULER = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "snr_shift_scale": 1.0,
    "set_alpha_to_one": True, "timestep_spacing": "trailing", "steps_offset": 0, "clip_sample": False,
    "clip_sample_range": 1.0, "sample_max_value": 1.0, "trained_betas": None,
}
