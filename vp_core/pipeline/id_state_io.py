"""Saving and loading the ID state as safetensors (no pickle), so long jobs can be split across queue runs.

Files are written atomically (:mod:`.atomic`): a kill during an autosave leaves the previous checkpoint. Files are
validated before use (format, metadata, every tensor's presence, shape and dtype) and every failure is an
:class:`IDStateFileError` naming the file, what was expected and what was found, and what to do.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..base.atomic import atomic_path
from .id_state import IDState

log = logging.getLogger(__name__)
FORMAT = "videopainter-id-state/1"
REMEDY = ("use a file written by 'VideoPainter Save ID State' or a sampler's autosave (output/videopainter/), copied "
          "unchanged into the input folder, or save the state again")
RNG_STATE_BYTES = torch.Generator().get_state().numel()
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


class IDStateFileError(ValueError):
    """A file that is not a usable VideoPainter ID state; the message names the file and says what to do."""


def save_state(state: IDState, path: str | Path) -> Path:
    path = Path(path)
    tensors = {f"hidden.{i}": h.contiguous().cpu() for i, h in enumerate(state.hidden)}
    tensors.update(token_index=state.token_index.cpu(), token_mask=state.token_mask.cpu(),
                   prev_latents=state.prev_latents.contiguous().cpu())
    if state.rng_state is not None:
        tensors["rng_state"] = state.rng_state.cpu()
    if state.resume_window is not None:
        tensors.update(merged=state.merged.contiguous().cpu(), counts=state.counts.cpu())
    meta = {"format": FORMAT, "window_index": str(state.window_index), "layers": str(len(state.hidden))}
    if state.resume_window is not None:
        meta["resume_window"] = str(state.resume_window)
    if state.made_with is not None:
        meta["made_with"] = json.dumps(state.made_with, sort_keys=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def _fail(path: Path, problem: str) -> IDStateFileError:
    return IDStateFileError(f"{path}: {problem}; {REMEDY}")


def _int_meta(path: Path, meta: dict, key: str, required: bool = True) -> int | None:
    if key not in meta:
        if required:
            raise _fail(path, f"metadata '{key}' is missing (expected a whole number)")
        return None
    try:
        value = int(meta[key])
    except ValueError:
        raise _fail(path, f"metadata '{key}' is {meta[key]!r} (expected a whole number >= 0)") from None
    if value < 0:
        raise _fail(path, f"metadata '{key}' is {value} (expected a whole number >= 0)")
    return value


def _check_tensors(path: Path, layout: dict[str, tuple[list[int], str]], meta: dict) -> None:
    """Shapes and dtypes (read from the header, before any tensor is loaded) against the format."""
    layers = int(meta["layers"])
    resume = "resume_window" in meta
    required = [f"hidden.{i}" for i in range(layers)] + ["token_index", "token_mask", "prev_latents"]
    required += ["merged", "counts"] if resume else []
    missing = [k for k in required if k not in layout]
    if missing:
        raise _fail(path, f"{len(missing)} tensor(s) missing (e.g. {missing[0]}; metadata says {layers} layers"
                          f"{' and a resume checkpoint' if resume else ''})")

    def expect(name: str, ndim: int, dtypes: tuple[str, ...], what: str) -> list[int]:
        shape, dtype = layout[name]
        if len(shape) != ndim or dtype not in dtypes:
            raise _fail(path, f"tensor '{name}' is {dtype} {tuple(shape)} (expected {what})")
        return shape

    hidden = [expect(f"hidden.{i}", 3, FLOAT_DTYPES, "float [batch, tokens, width]") for i in range(layers)]
    if any(h != hidden[0] for h in hidden):
        raise _fail(path, f"the hidden tensors differ in shape ({tuple(hidden[0])} and "
                          f"{next(tuple(h) for h in hidden if h != hidden[0])}; expected one shape for all layers)")
    (n,) = expect("token_index", 1, ("I64",), "int64 [tokens]")
    if hidden and hidden[0][1] != n:
        raise _fail(path, f"'token_index' has {n} positions but the hidden tensors hold {hidden[0][1]} tokens")
    mask = layout["token_mask"]
    if mask[1] != "BOOL" or len(mask[0]) not in (1, 2) or (len(mask[0]) == 1 and mask[0][0] != 0):
        raise _fail(path, f"tensor 'token_mask' is {mask[1]} {tuple(mask[0])} (expected bool [batch, tokens])")
    latents = expect("prev_latents", 5, FLOAT_DTYPES, "float [B, latents, channels, h, w]")
    if "rng_state" in layout:
        expect("rng_state", 1, ("U8",), f"uint8 [{RNG_STATE_BYTES}]")
        if layout["rng_state"][0] != [RNG_STATE_BYTES]:
            raise _fail(path, f"tensor 'rng_state' has {layout['rng_state'][0][0]} bytes (expected {RNG_STATE_BYTES}, "
                              "a CPU torch.Generator state)")
    if resume:
        merged = expect("merged", 5, FLOAT_DTYPES, "float [B, latents, channels, h, w]")
        expect("counts", 1, FLOAT_DTYPES + ("I64",), "[latents]")
        if merged[2:] != latents[2:] or layout["counts"][0] != [merged[1]]:
            raise _fail(path, f"'merged' {tuple(merged)}, 'counts' {tuple(layout['counts'][0])} and 'prev_latents' "
                              f"{tuple(latents)} do not belong together")


def _made_with(path: Path, meta: dict) -> dict | None:
    if "made_with" not in meta:
        # Accepted (the tensors' shapes are still checked against the run): refusing would throw away the only
        # resume point of a long job saved before this was recorded, and a state whose shapes fit is exact.
        log.warning("%s: saved by an older version without the model and window settings it was made with; only "
                    "its tensor shapes can be checked against this run. Save it again to have it checked fully.", path)
        return None
    try:
        made = json.loads(meta["made_with"])
    except json.JSONDecodeError:
        made = None
    if not isinstance(made, dict) or not isinstance(made.get("model"), dict) or "model_fingerprint" not in made:
        raise _fail(path, f"metadata 'made_with' is not readable ({meta['made_with'][:80]!r})")
    return made


def load_state(path: str | Path) -> IDState:
    """Read and validate an ID state file (everything checked before a tensor is loaded)."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "file not found")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            layout = {k: (f.get_slice(k).get_shape(), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise _fail(path, f"not a readable safetensors file ({e})") from e
    if meta.get("format") != FORMAT:
        raise _fail(path, f"not a VideoPainter ID state (format {meta.get('format')!r}, expected {FORMAT!r})")
    window_index = _int_meta(path, meta, "window_index")
    _int_meta(path, meta, "layers")
    resume_window = _int_meta(path, meta, "resume_window", required=False)
    _check_tensors(path, layout, meta)
    made_with = _made_with(path, meta)
    try:
        with safe_open(str(path), "pt") as f:
            t = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:  # e.g. a file cut short after a valid header
        raise _fail(path, f"its tensors cannot be read ({e})") from e
    return IDState(
        hidden=[t[f"hidden.{i}"] for i in range(int(meta["layers"]))], token_index=t["token_index"],
        token_mask=t["token_mask"], prev_latents=t["prev_latents"], window_index=window_index,
        rng_state=t.get("rng_state"), resume_window=resume_window, merged=t.get("merged"), counts=t.get("counts"),
        made_with=made_with,
    )


def describe(state: IDState) -> str:
    return json.dumps({
        "window_index": state.window_index, "layers": len(state.hidden), "tokens": int(state.token_index.numel()),
        "megabytes": round(state.nbytes() / 2**20, 2),
    })
