"""Attaching VideoPainter's parts to a ComfyUI ``MODEL`` (a ``ModelPatcher`` around the backbone).

Everything is attached to a *clone* under fixed keys, so nothing mutates a node's input and applying the same part
twice replaces it instead of stacking:

* the branch: ``additional_models["videopainter"]`` (loaded together with the MODEL) and its options in
  ``attachments["videopainter"]``;
* LoRAs (the ID-resample LoRA and style LoRAs): ComfyUI weight patches, recorded per source file in
  ``attachments["videopainter_loras"]`` so re-applying a file swaps its patches and a strength change never
  reloads base weights; the ID LoRA also switches the backbone to ID-resample attention;
* the scheduler config read with the backbone: ``attachments["videopainter_scheduler"]``.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from .loaders import CheckpointError, LoraPatches, ManagedModule, load_lora
from ..model.transformer import CogVideoXTransformer

log = logging.getLogger(__name__)
BRANCH_KEY = "videopainter"
LORAS_KEY = "videopainter_loras"
SCHEDULER_KEY = "videopainter_scheduler"


@dataclass(frozen=True)
class BranchOptions:
    """Branch strength on top of the reference's conditioning scale, and the part of the schedule it is active in."""

    strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0


@dataclass(frozen=True)
class LoraRecord:
    kind: str  # "id" or "style"
    strength: float
    patches: dict = field(repr=False, hash=False, compare=False)


def is_videopainter_model(model) -> bool:
    """A MODEL made by VideoPainter Backbone Loader (not an SD/Flux/... model)."""
    return isinstance(getattr(getattr(model, "model", None), "diffusion_model", None), CogVideoXTransformer)


def _model_kind(model) -> str:
    """What a MODEL input holds, in the words a user knows: ComfyUI's model class (SD3, Flux, WAN21...)."""
    inner = getattr(model, "model", None)
    if inner is None:
        return f"{type(model).__name__} (not a MODEL)"
    if isinstance(inner, ManagedModule):  # one of this pack's patchers (e.g. the branch): name what it holds
        return type(next(inner.children(), inner)).__name__
    return type(inner).__name__


def require_videopainter_model(model, input_name: str = "model") -> None:
    if not is_videopainter_model(model):
        raise ValueError(
            f"{input_name}: expected the MODEL output of 'VideoPainter Backbone Loader' (CogVideoX-5B-I2V); "
            f"got a {_model_kind(model)} model. Connect the VideoPainter backbone here."
        )


# Fields the branch must share with the backbone: its features are added to the backbone's tokens (inner dim),
# and it reads the same latents, patches and text embeddings.
BRANCH_FIT_FIELDS = ("num_attention_heads", "attention_head_dim", "patch_size", "in_channels", "text_embed_dim",
                     "max_text_seq_length")


def check_branch_fits(model, branch) -> None:
    """A branch made for another backbone would fail deep inside the first step with a shape error; say so here."""
    mine = model.model.diffusion_model.cfg
    theirs = getattr(getattr(getattr(branch, "model", None), "branch", None), "cfg", None)
    if theirs is None:
        raise ValueError(f"branch: expected the output of 'VideoPainter Branch Loader'; got {type(branch).__name__}")
    diff = [f for f in BRANCH_FIT_FIELDS if getattr(mine, f) != getattr(theirs, f)]
    if diff:
        got = ", ".join(f"{f}={getattr(theirs, f)}" for f in diff)
        want = ", ".join(f"{f}={getattr(mine, f)}" for f in diff)
        raise ValueError(
            f"branch: made for another backbone ({got}; this model has {want}). Load the VideoPainter branch that "
            "belongs to this backbone (VideoPainter/checkpoints/branch for CogVideoX-5B-I2V)."
        )


def attach_branch(model, branch, options: BranchOptions):
    require_videopainter_model(model)
    check_branch_fits(model, branch)
    out = model.clone()
    out.set_additional_models(BRANCH_KEY, [branch])
    out.set_attachments(BRANCH_KEY, options)
    return out


def branch_of(model):
    """(branch ModelPatcher, options) or (None, None)."""
    models = model.get_additional_models_with_key(BRANCH_KEY)
    return (models[0], model.get_attachment(BRANCH_KEY)) if models else (None, None)


def loras_of(model) -> dict[str, LoraRecord]:
    return dict(model.get_attachment(LORAS_KEY) or {})


def has_id_lora(model) -> bool:
    return any(r.kind == "id" for r in loras_of(model).values())


def _without(model, source: str) -> None:
    """Drop the patches a LoRA file added earlier to this clone (so re-applying replaces, never stacks)."""
    old = loras_of(model).get(source)
    if old is None:
        return
    mine = {id(p) for p in old.patches.values()}
    for key in list(model.patches):
        kept = [entry for entry in model.patches[key] if id(entry[1]) not in mine]
        if kept:
            model.patches[key] = kept
        else:
            del model.patches[key]
    model.patches_uuid = uuid.uuid4()


LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight", ".lora_down.weight", ".lora_up.weight", ".lora_mid.weight",
                 ".alpha", ".dora_scale")


def _listing(keys: list[str], shown: int = 5) -> str:
    """LoRA tensor names grouped by the layer they patch: ``a.to_q, b.to_k and 3 more layers``."""
    layers = sorted({next((k[: -len(s)] for s in LORA_SUFFIXES if k.endswith(s)), k) for k in keys})
    text = ", ".join(layers[:shown])
    return text + (f" and {len(layers) - shown} more layers" if len(layers) > shown else "")


def attach_lora(model, path: str, strength: float, kind: str) -> tuple[object, LoraPatches]:
    """A clone of ``model`` with the LoRA at ``path`` applied at ``strength`` (replacing an earlier copy of it)."""
    require_videopainter_model(model)
    out = model.clone()
    _without(out, path)
    lora = load_lora(path, out)
    if not lora.patches:
        raise CheckpointError(
            f"{path}: none of its layers match a CogVideoX-5B-I2V layer (unmatched: {_listing(lora.unmatched)}); "
            "it is a LoRA for another model (SD, SDXL, Flux...): use a LoRA trained on CogVideoX-5B-I2V"
        )
    if lora.unmatched:
        log.warning(
            "LoRA %s: %d of its tensors match no backbone layer and are ignored (unmatched: %s)",
            path, len(lora.unmatched), _listing(lora.unmatched),
        )
    out.add_patches(lora.patches, strength)
    records = loras_of(out)
    records[path] = LoraRecord(kind, strength, lora.patches)
    out.set_attachments(LORAS_KEY, records)
    return out, lora
