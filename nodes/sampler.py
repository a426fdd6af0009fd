"""The any-length sampler node: windows x steps with one progress bar."""
from __future__ import annotations

import os

import comfy.model_management
import comfy.utils
import folder_paths
import latent_preview
from comfy_api.v0_0_2 import io

from ..vp_core.checkpoints.vae import video_vae

from ..vp_core.pipeline import id_state_io, parts, preview, sampling, windows
from .memory import SAMPLER_REMEDY, call_releasing_memory
from .paths import file_name_error
from .types import ID_STATE, INPAINT, vae_input
from .utils import advanced_boolean, window_inputs


def _embedding(conditioning, name: str):
    if conditioning is None:
        return None
    try:
        return conditioning[0][0]
    except (IndexError, TypeError):
        raise ValueError(f"{name}: expected a CONDITIONING from 'VideoPainter Text Encode'") from None


def _previewer(vae):
    """ComfyUI's Latent2RGB previewer with factors measured from this VAE, unless previews are off (--preview-method)."""
    if latent_preview.args.preview_method == latent_preview.LatentPreviewMethod.NoPreviews:
        return None
    factors, bias = preview.rgb_factors(vae)
    return latent_preview.Latent2RGBPreviewer(factors.tolist(), bias.tolist())


def _autosave_error(name: str) -> str | None:
    problem = file_name_error(name) if name.strip() else None
    return None if problem is None else f"autosave_name: {name!r}: {problem}; e.g. 'my_clip'"


def _autosaver(name: str):
    """Writes each checkpoint over the previous one (atomically) in output/videopainter/autosave/ (None when
    ``name`` is empty)."""
    name = name.strip()
    if not name:
        return None
    if (error := _autosave_error(name)) is not None:
        raise ValueError(error)
    path = os.path.join(folder_paths.get_output_directory(), "videopainter", "autosave", f"{name}.safetensors")
    return lambda state: id_state_io.save_state(state, path)


def _windows_list(text: str, windows_total: int | None = None) -> tuple[int, ...]:
    """``id_reset_windows`` as window numbers; with ``windows_total`` (at run time) each must exist in the plan."""
    try:
        out = tuple(int(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise ValueError(f"id_reset_windows: expected comma-separated window numbers like '3, 7'; got {text!r}") from None
    if any(w < 0 for w in out):
        raise ValueError(f"id_reset_windows: window numbers start at 0; got {text!r}")
    if windows_total is not None and any(w >= windows_total for w in out):
        raise ValueError(f"id_reset_windows: this run has {windows_total} window(s), numbered 0 to {windows_total - 1}; "
                         f"got {text!r}. See 'VideoPainter Window Plan' for where the windows fall.")
    return out


class VideoPainterSampler(io.ComfyNode):
    """Inpaints a clip of any length window by window (VideoPainter's any-length procedure): the branch adds the
    masked video's context, the ID-resample LoRA (if applied) carries the filled object's identity between windows.
    One progress bar spans all windows x steps; Cancel stops within one step."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterSampler",
            display_name="VideoPainter Any-Length Sampler",
            category="videopainter/sampling",
            description=cls.__doc__,
            inputs=[
                io.Model.Input("model", tooltip="Backbone with the branch (and optionally the ID LoRA) applied."),
                vae_input(),
                INPAINT.Input("inpaint"),
                io.Conditioning.Input("positive"),
                io.Conditioning.Input("negative"),
                io.Int.Input("seed", default=42, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the one CPU generator all random draws come from (42 in the reference)."),
                io.Int.Input("steps", default=50, min=1, max=1000, tooltip="Denoising steps per window (50 in the reference)."),
                io.Float.Input("cfg", default=6.0, min=0.0, max=30.0, step=0.1,
                               tooltip="Classifier-free guidance scale (6 in the reference); 1 or less turns CFG off."),
                io.Boolean.Input("dynamic_cfg", default=True,
                                 tooltip="The reference's dynamic CFG (computed from the raw timestep; erratic but what the model was run with)."),
                io.Combo.Input("scheduler", options=list(sampling.SCHEDULERS), default="dpm",
                               tooltip="dpm: CogVideoXDPMScheduler (the reference's). ddim: CogVideoXDDIMScheduler."),
                *window_inputs(),
                io.Float.Input("prev_clip_weight", default=0.5, min=0.0, max=2.0, step=0.05,
                               tooltip="Weight of the previous window's hole tokens in ID resampling (0.5 in the reference's ID script). Needs the ID LoRA."),
                io.Boolean.Input("vae_tiling", default=False, tooltip="Tiled VAE (the reference's long-video mode); saves memory."),
                io.Boolean.Input("output_id_state", default=False, optional=True,
                                 tooltip="Return the state after the last window (to chain a next part or save it). With the ID LoRA "
                                         "it holds every block's video tokens: about 9 GB for CogVideoX-5B at 480x720 (bf16)."),
                io.String.Input("id_reset_windows", default="", optional=True,
                                tooltip="Comma-separated windows (0-based) where the identity pool is dropped, e.g. at a scene cut: "
                                        "that window uses its own holes like window 0; the first-frame latent still carries over."),
                io.String.Input("autosave_name", default="", optional=True,
                                tooltip="If set, a checkpoint is written to output/videopainter/autosave/<name>.safetensors after every "
                                        "window; load it with 'VideoPainter Load ID State' into id_state to resume an interrupted run exactly."),
                advanced_boolean("replace_gt", default=True,
                                 tooltip="After every step, paste the (noised) known latents outside the hole, as the reference "
                                         "(--replace_gt). Its evaluation reports both settings."),
                advanced_boolean("mask_add", default=True,
                                 tooltip="Add the branch's features on the hole's tokens only, as the reference (--mask_add; the "
                                         "branch was trained so). Off: on every token."),
                ID_STATE.Input("id_state", optional=True,
                               tooltip="Continue from an ID state (the previous part of the clip: encode this part with first_frame_gt "
                                       "off and no first frame), or resume from an autosave checkpoint (same clip and settings)."),
            ],
            outputs=[io.Latent.Output("latent"), ID_STATE.Output("id_state_out", display_name="id_state")],
        )

    @classmethod
    def validate_inputs(cls, id_reset_windows: str | None = None, autosave_name: str | None = None) -> bool | str:
        # Explicit arguments: ComfyUI still checks the other inputs. Linked values are None here (checked at run time).
        if autosave_name is not None and (error := _autosave_error(autosave_name)):
            return error
        if id_reset_windows is not None:
            try:
                _windows_list(id_reset_windows)
            except ValueError as e:
                return str(e)
        return True

    @classmethod
    def execute(cls, model, vae, inpaint, positive, negative, seed: int, steps: int, cfg: float, dynamic_cfg: bool,
                scheduler: str, window_frames: int, overlap_frames: int, window_mode: str, prev_clip_weight: float,
                vae_tiling: bool, output_id_state: bool = False, id_reset_windows: str = "", autosave_name: str = "",
                id_state=None, replace_gt: bool = True, mask_add: bool = True) -> io.NodeOutput:
        vae = video_vae(vae)
        parts.check_window_settings(inpaint, window_frames, overlap_frames, window_mode)
        parts.check_continuation(inpaint, id_state)
        plan = windows.plan_windows(inpaint.frame_count, window_frames, overlap_frames, window_mode)
        settings = sampling.SamplerSettings(
            steps=steps, guidance=cfg, dynamic_cfg=dynamic_cfg, scheduler=scheduler, prev_clip_weight=prev_clip_weight,
            vae_tiling=vae_tiling, seed=seed, replace_gt=replace_gt, mask_add=mask_add,
        )
        reset, autosave = _windows_list(id_reset_windows, len(plan.windows)), _autosaver(autosave_name)
        bar = comfy.utils.ProgressBar(len(plan.windows) * steps)
        previewer = _previewer(vae)

        def on_step(info: sampling.StepInfo) -> None:
            image = previewer.decode_latent_to_preview_image("JPEG", preview.preview_frame(info.latents)) if previewer else None
            bar.update_absolute(info.done, info.total, image)

        result = call_releasing_memory(
            lambda: sampling.run_inpaint(
                model, vae, inpaint, _embedding(positive, "positive"), _embedding(negative, "negative"), settings, plan,
                on_step=on_step,
                interrupt=comfy.model_management.throw_exception_if_processing_interrupted, id_state=id_state,
                capture_final=output_id_state, reset_windows=reset,
                on_checkpoint=autosave,
            ),
            lambda: f"sampling window {bar.current // steps + 1} of {len(plan.windows)}", SAMPLER_REMEDY,
        )
        latent = {
            "samples": result.latents.permute(0, 2, 1, 3, 4).contiguous(),  # ComfyUI video latent layout [B, C, T, H, W]
            "videopainter": {"output_frames": plan.output_frames, "fps": inpaint.fps, "vae_tiling": vae_tiling,
                             "shared_latents": plan.shared_latents if id_state is not None else 0,
                             "padded_frames": plan.padded_frames, **parts.part_info(inpaint)},
        }
        return io.NodeOutput(latent, result.id_state)


NODES = [VideoPainterSampler]
