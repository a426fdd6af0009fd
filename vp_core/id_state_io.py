"""Saving and loading the ID state as safetensors (no pickle), so long jobs can be split across queue runs."""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from .id_state import IDState

FORMAT = "videopainter-id-state/1"


def save_state(state: IDState, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    save_file(tensors, str(path), metadata=meta)
    return path


def load_state(path: str | Path) -> IDState:
    path = Path(path)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path.name}: not a VideoPainter ID state (format {meta.get('format')!r}, expected {FORMAT!r})")
    t = load_file(str(path))
    layers = int(meta["layers"])
    return IDState(
        hidden=[t[f"hidden.{i}"] for i in range(layers)], token_index=t["token_index"], token_mask=t["token_mask"],
        prev_latents=t["prev_latents"], window_index=int(meta["window_index"]), rng_state=t.get("rng_state"),
        resume_window=int(meta["resume_window"]) if "resume_window" in meta else None,
        merged=t.get("merged"), counts=t.get("counts"),
    )


def describe(state: IDState) -> str:
    return json.dumps({
        "window_index": state.window_index, "layers": len(state.hidden), "tokens": int(state.token_index.numel()),
        "megabytes": round(state.nbytes() / 2**20, 2),
    })
