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

from .loaders import CheckpointError, LoraPatches, load_lora

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
    inner = getattr(getattr(model, "model", None), "diffusion_model", None)
    return inner is not None and type(inner).__name__ == "CogVideoXTransformer"


def require_videopainter_model(model, input_name: str = "model") -> None:
    if not is_videopainter_model(model):
        got = type(getattr(getattr(model, "model", None), "diffusion_model", getattr(model, "model", model))).__name__
        raise ValueError(
            f"{input_name}: expected the MODEL output of 'VideoPainter Backbone Loader' (CogVideoX-5B-I2V); "
            f"got a {got} model. Connect the VideoPainter backbone here."
        )


def attach_branch(model, branch, options: BranchOptions):
    require_videopainter_model(model)
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


def attach_lora(model, path: str, strength: float, kind: str) -> tuple[object, LoraPatches]:
    """A clone of ``model`` with the LoRA at ``path`` applied at ``strength`` (replacing an earlier copy of it)."""
    require_videopainter_model(model)
    out = model.clone()
    _without(out, path)
    lora = load_lora(path, out)
    if not lora.patches:
        raise CheckpointError(
            f"{path}: none of its {len(lora.unmatched)} tensors match a CogVideoX-5B-I2V layer "
            f"(e.g. {', '.join(lora.unmatched[:3])}); it is a LoRA for another model"
        )
    if lora.unmatched:
        log.warning(
            "LoRA %s: %d of its tensors match no backbone layer and are ignored, e.g. %s",
            path, len(lora.unmatched), ", ".join(lora.unmatched[:5]),
        )
    out.add_patches(lora.patches, strength)
    records = loras_of(out)
    records[path] = LoraRecord(kind, strength, lora.patches)
    out.set_attachments(LORAS_KEY, records)
    return out, lora
