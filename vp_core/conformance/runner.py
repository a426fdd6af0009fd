"""Run the conformance cases of a fixture directory through the same loaders and code paths the nodes use."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from ..checkpoints import loaders
from ..pipeline import preprocess, sampling
from ..model.id_resample import IDResample
from ..model.rope import video_rope
from ..model.transformer import Capture, Injection, token_mask
from ..checkpoints.vae import load_vae
from ..pipeline.windows import plan_windows
from . import training_cases

log = logging.getLogger(__name__)
CASES = ("forward_branch", "forward_id_resample", "pipeline_window_ddim", "pipeline_window_dpm", "any_length",
         "train_branch_step", "train_id_lora_step")


@dataclass
class Fixture:
    root: Path
    _cache: dict = field(default_factory=dict)

    def backbone(self, id_lora: bool):
        key = ("backbone", id_lora)
        if key not in self._cache:
            patcher = loaders.load_backbone(self.root / "cogvideox", torch.float32)
            if id_lora:
                patcher = patcher.clone()
                lora = loaders.load_lora(self.root / "id_lora" / "pytorch_lora_weights.safetensors", patcher)
                patcher.add_patches(lora.patches, 1.0)
            self._cache[key] = patcher
        return self._cache[key]

    def branch(self):
        if "branch" not in self._cache:
            self._cache["branch"] = loaders.load_branch(self.root / "branch", torch.float32)
        return self._cache["branch"]

    def vae(self):
        if "vae" not in self._cache:
            self._cache["vae"] = load_vae(self.root / "cogvideox", torch.float32)
        return self._cache["vae"]

    def models(self, id_lora: bool) -> sampling.Models:
        return sampling.Models(
            self.backbone(id_lora), self.branch(), self.vae(),
            loaders.load_scheduler_config(self.root / "cogvideox"), id_resample=id_lora,
        )


def rng_draws(case_dir: Path) -> dict[str, Tensor]:
    """Only the recorded random draws may be read from the expected file before a result is computed."""
    with safe_open(str(case_dir / "expected.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys() if k.startswith("rng_draw_")}


def _loaded(*patchers):
    import comfy.model_management as mm

    mm.load_models_gpu(list(patchers))


@torch.no_grad()
def forward_branch(fx: Fixture, inp: dict, params: dict) -> dict[str, Tensor]:
    bb, br = fx.backbone(False), fx.branch()
    _loaded(bb, br)
    t, b = bb.model.diffusion_model, br.model.branch
    lat = inp["latents"]
    rope = video_rope(t.cfg, lat.shape[1], lat.shape[3], lat.shape[4])
    scale = params.get("conditioning_scale", 1.0)
    samples = b(lat, torch.cat([inp["masked_video_latents"], inp["mask"]], 2), inp["prompt_embeds"], inp["timestep"], rope, scale)
    hole = token_mask(inp["mask"], t.cfg.patch_size)
    x = torch.cat([lat, inp["image_latents"]], 2)
    out = {f"branch_block_sample_{i}": s for i, s in enumerate(samples)}
    out["noise_pred"] = t(x, inp["prompt_embeds"], inp["timestep"], rope, Injection(samples, hole, False))
    out["noise_pred_mask_add"] = t(x, inp["prompt_embeds"], inp["timestep"], rope, Injection(samples, hole, True))
    out["resample_mask_mask_add"] = _with_text(hole, inp["prompt_embeds"].shape[1])
    return out


def _with_text(hole: Tensor, text_len: int) -> Tensor:
    return torch.cat([torch.zeros(hole.shape[0], text_len, dtype=torch.bool), hole.cpu()], 1)


@torch.no_grad()
def forward_id_resample(fx: Fixture, inp: dict, params: dict) -> dict[str, Tensor]:
    bb, br = fx.backbone(True), fx.branch()
    _loaded(bb, br)
    t, b = bb.model.diffusion_model, br.model.branch
    context = inp["prompt_embeds_a"]
    text_len = context.shape[1]
    weight = params["prev_clip_weight"]

    def call(sfx: str, prev: Capture | None, prev_mask: Tensor | None):
        lat = inp[f"latents_{sfx}"]
        rope = video_rope(t.cfg, lat.shape[1], lat.shape[3], lat.shape[4])
        timestep = inp[f"timestep_{sfx}"]
        samples = b(lat, torch.cat([inp[f"masked_video_latents_{sfx}"], inp[f"mask_{sfx}"]], 2), context, timestep, rope)
        hole = token_mask(inp[f"mask_{sfx}"], t.cfg.patch_size)
        cap = Capture(torch.arange(hole.shape[1]), text=[])
        idr = IDResample(hole) if prev is None else IDResample(prev_mask, weight, prev.hidden, prev.token_index)
        x = torch.cat([lat, inp[f"image_latents_{sfx}"]], 2)
        return t(x, context, timestep, rope, Injection(samples, hole, params.get("mask_add", True)), idr, cap), hole, cap

    out = {}
    out["noise_pred_a"], hole_a, cap = call("a", None, None)
    for i, (txt, vid) in enumerate(zip(cap.text, cap.hidden)):
        out[f"hidden_states_a_{i}"] = torch.cat([txt, vid], 1)
    out["noise_pred_b"], hole_b, _ = call("b", cap, hole_a)
    out["resample_mask_a"] = _with_text(hole_a, text_len)
    out["resample_mask_b"] = _with_text(hole_b, text_len)
    return out


def _settings(params: dict) -> sampling.SamplerSettings:
    sched = "dpm" if "DPM" in params["scheduler_class"] else "ddim"
    return sampling.SamplerSettings(
        steps=params["num_inference_steps"], guidance=params["guidance_scale"], dynamic_cfg=params["use_dynamic_cfg"],
        scheduler=sched, eta=params.get("eta", 0.0), replace_gt=params.get("replace_gt", True),
        mask_add=params.get("mask_add", True), prev_clip_weight=params.get("prev_clip_weight", 0.0),
        conditioning_scale=params.get("conditioning_scale", 1.0), vae_tiling=params.get("vae_tiling", False),
        seed=params["gen_seed"],
    )


def _run_pipeline(fx: Fixture, params: dict, pipe: preprocess.PipelineInputs, out: dict, initial_noise=None, step_name=None):
    settings = _settings(params)
    n_frames = params["num_frames"]
    plan = plan_windows(pipe.video.shape[0], n_frames, params.get("overlap_frames", 0), "reference")
    cond = sampling.InpaintConditioning(
        pipe.video, pipe.masks, pipe.image, params["_positive"], params["_negative"], params["height"], params["width"],
    )
    models = fx.models(bool(params.get("id_lora", False)))

    def on_step(info: sampling.StepInfo) -> None:
        out[step_name(info)] = info.latents.detach().cpu().clone()

    result = sampling.Sampler(models, cond, plan, settings, on_step=on_step, initial_noise=initial_noise).run()
    out["final_latents"] = result.latents
    out["frames"] = sampling.decode(models.vae, result.latents, settings.vae_tiling)
    return out


def pipeline_window_ddim(fx: Fixture, inp: dict, params: dict) -> dict[str, Tensor]:
    pipe = preprocess.PipelineInputs(inp["video_u8"], inp["masks_u8"], inp["image_u8"])
    params = dict(params, _positive=inp["prompt_embeds"], _negative=inp["negative_prompt_embeds"])
    out = _run_pipeline(fx, params, pipe, {}, inp["latents"], lambda i: f"latents_step_{i.step}")
    del out["final_latents"]  # the single-window pipeline records no merged latents
    return out


def any_length(fx: Fixture, inp: dict, params: dict) -> dict[str, Tensor]:
    pipe = preprocess.reference_inputs(
        inp["video_u8"], inp["masks_u8"], inp["first_frame_inpainted_u8"], params["dilate_size"],
        params.get("first_frame_gt", True),
    )
    if not params.get("long_video", False):
        pipe = preprocess.PipelineInputs(pipe.video[: params["num_frames"]], pipe.masks[: params["num_frames"]], pipe.image)
    out = {"pipeline_video_u8": pipe.video, "pipeline_masks_u8": pipe.masks}
    params = dict(params, _positive=inp["prompt_embeds"], _negative=inp["negative_prompt_embeds"])
    return _run_pipeline(fx, params, pipe, out, None, lambda i: f"latents_w{i.window}_step_{i.step}")


RUNNERS: dict[str, Callable] = {
    "forward_branch": forward_branch,
    "forward_id_resample": forward_id_resample,
    "pipeline_window_ddim": pipeline_window_ddim,
    "pipeline_window_dpm": any_length,
    "any_length": any_length,
    "train_branch_step": training_cases.train_branch_step,
    "train_id_lora_step": training_cases.train_id_lora_step,
}


def run_case(fx: Fixture, name: str) -> dict[str, dict[str, float]]:
    """Compute a case, then (only then) read its expected tensors and compare every one of them."""
    case_dir = fx.root / "cases" / name
    params = json.loads((case_dir / "params.json").read_text())
    inp = load_file(str(case_dir / "inputs.safetensors"))
    _ = rng_draws(case_dir)  # available for injection; the generator reproduces them (checked in tests)
    got = RUNNERS[name](fx, inp, params)
    expected = load_file(str(case_dir / "expected.safetensors"))
    report = {}
    for key, ref in sorted(expected.items()):
        if key.startswith("rng_draw_"):
            continue
        if key not in got:
            report[key] = {"max_abs_err": float("inf"), "max_abs_ref": float(ref.float().abs().max()), "missing": True}
            continue
        ours = got[key]
        if ours.shape != ref.shape:
            report[key] = {"max_abs_err": float("inf"), "max_abs_ref": float(ref.float().abs().max()),
                           "shape": [list(ours.shape), list(ref.shape)]}
            continue
        err = (ours.float().cpu() - ref.float()).abs().max() if ref.numel() else torch.tensor(0.0)
        report[key] = {"max_abs_err": float(err), "max_abs_ref": float(ref.float().abs().max()) if ref.numel() else 0.0}
        if name in RELATIVE_CASES:
            report[key]["relative"] = True
    return report


# Cases whose tensors are judged against their own scale (``atol`` x the tensor's largest magnitude): gradients are
# ~1e-3, so an absolute 1e-4 would pass zeros.
RELATIVE_CASES = ("train_branch_step", "train_id_lora_step")


def tolerance(entry: dict, atol: float) -> float:
    """The limit a report entry's ``max_abs_err`` is held to (an all-zero reference must be matched exactly)."""
    return atol * entry["max_abs_ref"] if entry.get("relative") else atol
