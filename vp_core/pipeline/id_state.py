"""The ID-resample state carried from one window to the next (spec §4.1), small and device-agnostic.

Only what the next window reads is kept: each block's output video tokens at the last denoising step, at the token
positions the next window can read (the previous window's holes, plus the next window's own holes when known), the
token mask the last transformer call returned, the previous window's final latents (the next window's first-frame
latent), and where the run stands (window index, generator state) so a long job can resume exactly.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass
class IDState:
    """Parameters:
        hidden: per backbone block, ``[2B, n, D]`` video tokens (CFG batch order [uncond, cond]).
        token_index: ``[n]`` video-token positions of ``hidden`` (sorted).
        token_mask: ``[2B, V]`` bool, the hole tokens of the last transformer call (``r_prev``).
        prev_latents: ``[B, L, 16, h, w]`` final latents of the window that produced the state.
        window_index: index of that window in its plan.
        rng_state: CPU generator state after that window (``torch.Generator.get_state()``), or None.
        resume_window: set in an autosave checkpoint: the next window of the same plan to run.
        merged: with ``resume_window``, the sum of the latents merged so far ``[B, L_total, 16, h, w]``.
        counts: with ``resume_window``, how many windows were added at each merged latent ``[L_total]``.
        made_with: what the state was made with (:func:`run_spec`): the sampler refuses it where it does not fit;
            None for files saved before it was recorded.
    """

    hidden: list[Tensor]
    token_index: Tensor
    token_mask: Tensor
    prev_latents: Tensor
    window_index: int
    rng_state: Tensor | None = None
    resume_window: int | None = None
    merged: Tensor | None = None
    counts: Tensor | None = None
    made_with: dict | None = None

    def to(self, device: torch.device | str) -> "IDState":
        return replace(
            self, hidden=[h.to(device) for h in self.hidden], token_index=self.token_index.to(device),
            token_mask=self.token_mask.to(device), prev_latents=self.prev_latents.to(device),
        )

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.hidden, self.token_index, self.token_mask, self.prev_latents))


# The transformer config fields that shape the state's tokens (a state fits only a backbone with the same values).
MODEL_FIELDS = ("num_layers", "num_attention_heads", "attention_head_dim", "patch_size", "in_channels",
                "max_text_seq_length", "text_embed_dim")
RUN_FIELDS = ("height", "width", "window_frames", "overlap_frames", "window_mode")


def model_fingerprint(fields: dict) -> str:
    """A stable short hash of :data:`MODEL_FIELDS` (the same on every machine and Python version)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def run_spec(cfg, height: int, width: int, plan, batch: int, latent_shape: tuple[int, int, int, int],
             crop: dict | None = None) -> dict:
    """What a state made by (or fed to) a run must match: the model fields and their fingerprint, the working size,
    the window settings, the CFG batch, the video tokens per window and one window's latents ``(L, C, h, w)``, and
    in crop mode the box (``crop``: ``CropPlan.spec``; absent for full frame).

    Parameters:
        cfg: the backbone's ``CogVideoXConfig``. plan: the run's ``WindowPlan``.
    """
    model = {name: getattr(cfg, name) for name in MODEL_FIELDS}
    L, _, h, w = latent_shape
    p = cfg.patch_size
    spec = {
        "model": model, "model_fingerprint": model_fingerprint(model), "height": height, "width": width,
        "window_frames": plan.window_frames, "overlap_frames": plan.overlap_frames, "window_mode": plan.mode,
        "batch": batch, "tokens": L * (h // p) * (w // p), "latents": list(latent_shape),
    }
    if crop is not None:
        spec["crop"] = crop
    return spec


def _shape_facts(state: IDState) -> dict:
    """What the tensors themselves say (also for files saved before ``made_with`` was recorded)."""
    facts: dict = {"latents": list(state.prev_latents.shape[1:])}
    if state.hidden:
        facts.update(num_layers=len(state.hidden), inner_dim=int(state.hidden[0].shape[-1]),
                     batch=int(state.hidden[0].shape[0]))
    if state.token_mask.ndim == 2:
        facts.update(tokens=int(state.token_mask.shape[1]), batch=int(state.token_mask.shape[0]))
    return facts


def fit_differences(state: IDState, spec: dict) -> list[str]:
    """Every way ``state`` does not fit a run of ``spec`` (:func:`run_spec`), in words; empty when it fits."""
    model = spec["model"]
    want = {"latents": spec["latents"], "num_layers": model["num_layers"], "batch": spec["batch"], "tokens": spec["tokens"],
            "inner_dim": model["num_attention_heads"] * model["attention_head_dim"]}
    out = []
    made = state.made_with or {}
    if made.get("model_fingerprint") not in (None, spec["model_fingerprint"]):
        fields = [f"{k} {made['model'].get(k)} (this model: {v})" for k, v in model.items()
                  if made.get("model", {}).get(k) != v]
        out.append(f"model fingerprint {made['model_fingerprint']} (this model: {spec['model_fingerprint']}): "
                   + ", ".join(fields))
    if made and (made.get("height"), made.get("width")) != (spec["height"], spec["width"]):
        out.append(f"working size {made.get('width')}x{made.get('height')} (WxH; this run: {spec['width']}x{spec['height']})")
    for key in ("window_frames", "overlap_frames", "window_mode"):
        if made and made.get(key) != spec[key]:
            out.append(f"{key} {made.get(key)!r} (this run: {spec[key]!r})")
    if made and made.get("crop") != spec.get("crop"):
        def where(c):
            return f"{c['mode']} box {c['box'][0]}x{c['box'][1]}" if c else "full frame"
        out.append(f"geometry {where(made.get('crop'))} (this run: {where(spec.get('crop'))}): cut the parts from one "
                   "encode (CutPart) so they share the crop box")
    if out:  # the recorded settings explain it; the shape facts below would only repeat them
        return out
    labels = {"latents": "window latents (L, C, h, w)", "num_layers": "blocks", "inner_dim": "token width",
              "batch": "CFG batch (2 with cfg > 1, 1 without)", "tokens": "video tokens per window"}
    for key, got in _shape_facts(state).items():
        if got != want[key]:
            out.append(f"{labels[key]} {tuple(got) if isinstance(got, list) else got} (this run: "
                       f"{tuple(want[key]) if isinstance(want[key], list) else want[key]})")
    return out


def check_fits(state: IDState, spec: dict) -> None:
    """Refuse (``ValueError``, every difference spelled out) a chained state or checkpoint that does not fit the run,
    before any step: otherwise it fails deep in the transformer with a size mismatch, or silently misaligns."""
    diffs = fit_differences(state, spec)
    if diffs:
        raise ValueError(
            "id_state: this state does not fit this run: " + "; ".join(diffs) + ". It was made with other weights or "
            "settings: run this part with the backbone, working size (Encode width x height), window settings and "
            "cfg of the part that made the state, or without id_state."
        )
