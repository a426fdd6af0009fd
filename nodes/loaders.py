"""Loader nodes: backbone (+ VAE), branch, ID-resample LoRA, style LoRAs."""
from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..vp_core.checkpoints import attach, loaders
from ..vp_core.checkpoints.vae import load_vae
from . import paths
from .types import BRANCH, VAE

DTYPES = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
if hasattr(torch, "float8_e4m3fn"):
    DTYPES["fp8_e4m3fn (storage)"] = torch.float8_e4m3fn


class VideoPainterBackboneLoader(io.ComfyNode):
    """Loads CogVideoX-5b-I2V from its diffusers folder under models/videopainter (transformer/, vae/, scheduler/),
    or one already under models/CogVideo (kijai's wrapper) or models/diffusers, or a single transformer file in
    models/diffusion_models (core ComfyUI's key layout or diffusers'), all read in place.

    Outputs a MODEL (a ModelPatcher built from comfy.ops layers, so --lowvram/partial loading work) and the VAE (none
    for a single transformer file: use Load VAE on the CogVideoX VAE)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterBackboneLoader",
            display_name="VideoPainter Backbone Loader",
            category="videopainter/loaders",
            description=cls.__doc__,
            inputs=[
                io.Combo.Input("model_folder", options=paths.backbone_folders(),
                               tooltip="A CogVideoX-5b-I2V diffusers folder in models/videopainter (e.g. CogVideoX-5b-I2V), "
                                       "models/CogVideo or models/diffusers, or a single transformer file in "
                                       "models/diffusion_models."),
                io.Combo.Input("weight_dtype", options=list(DTYPES), default="auto",
                               tooltip="Storage dtype of the transformer weights. auto: ComfyUI picks (bf16 on most GPUs). "
                                       "fp8 stores weights in 8 bits and computes in bf16."),
            ],
            outputs=[io.Model.Output("backbone_model", display_name="MODEL"), VAE.Output("vae", display_name="VAE")],
        )

    @classmethod
    def execute(cls, model_folder: str, weight_dtype: str) -> io.NodeOutput:
        path = paths.resolve_backbone(model_folder)
        model = loaders.load_backbone(path, DTYPES[weight_dtype])
        folder = path if path.is_dir() else path.parent
        model.set_attachments(attach.SCHEDULER_KEY, loaders.load_scheduler_config(folder))
        return io.NodeOutput(model, load_vae(folder) if path.is_dir() else None)


class VideoPainterBranchLoader(io.ComfyNode):
    """Loads the VideoPainter context encoder ("branch") from its official folder (config.json + diffusion_pytorch_model.safetensors)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterBranchLoader",
            display_name="VideoPainter Branch Loader",
            category="videopainter/loaders",
            description=cls.__doc__,
            inputs=[
                io.Combo.Input("branch_folder", options=paths.branch_folders(),
                               tooltip="e.g. VideoPainter/checkpoints/branch in models/videopainter."),
                io.Combo.Input("weight_dtype", options=[k for k in DTYPES if not k.startswith("fp8")], default="auto",
                               tooltip="Storage dtype of the branch weights. auto: ComfyUI picks (bf16 on most GPUs)."),
            ],
            outputs=[BRANCH.Output("branch")],
        )

    @classmethod
    def execute(cls, branch_folder: str, weight_dtype: str) -> io.NodeOutput:
        return io.NodeOutput(loaders.load_branch(paths.resolve("videopainter", branch_folder), DTYPES[weight_dtype]))


class VideoPainterApplyIDLora(io.ComfyNode):
    """Applies the ID-resample LoRA (VideoPainterID/checkpoints/pytorch_lora_weights.safetensors) and switches the
    backbone to ID-resample attention, which carries the filled region's identity from window to window.

    The file stores no alpha, so the reference applies it at scale 1.0 (trained at 0.5); strength multiplies that."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterApplyIDLora",
            display_name="VideoPainter Apply ID LoRA",
            category="videopainter/loaders",
            description=cls.__doc__,
            inputs=[
                io.Model.Input("model"),
                io.Combo.Input("lora_name", options=paths.lora_files(), tooltip="The official ID-resample LoRA."),
                io.Float.Input("strength", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="1.0 = the reference (effective scale 1.0); 0.5 = the scale it was trained at."),
            ],
            outputs=[io.Model.Output("model_out", display_name="MODEL")],
        )

    @classmethod
    def execute(cls, model, lora_name: str, strength: float) -> io.NodeOutput:
        out, _ = attach.attach_lora(model, str(paths.resolve("loras", lora_name)), strength, "id")
        return io.NodeOutput(out)


class VideoPainterStyleLora(io.ComfyNode):
    """Applies a CogVideoX-5B-I2V LoRA (diffusers/PEFT or kohya keys) as ComfyUI weight patches. Stack several;
    changing the strength does not reload the base weights. Unmatched tensors are listed in a warning."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterStyleLora",
            display_name="VideoPainter Style LoRA",
            category="videopainter/loaders",
            description=cls.__doc__,
            inputs=[
                io.Model.Input("model"),
                io.Combo.Input("lora_name", options=paths.lora_files(),
                               tooltip="A CogVideoX-5b-I2V LoRA (.safetensors) from models/loras (diffusers/PEFT or kohya keys)."),
                io.Float.Input("strength", default=1.0, min=-4.0, max=4.0, step=0.05,
                               tooltip="Scale of the LoRA; changing it does not reload the backbone. Negative values invert it."),
            ],
            outputs=[io.Model.Output("model_out", display_name="MODEL")],
        )

    @classmethod
    def execute(cls, model, lora_name: str, strength: float) -> io.NodeOutput:
        out, _ = attach.attach_lora(model, str(paths.resolve("loras", lora_name)), strength, "style")
        return io.NodeOutput(out)


class VideoPainterApplyBranch(io.ComfyNode):
    """Attaches the branch to a copy of the MODEL (applying again replaces it). Its features are added to the
    backbone's background tokens; strength scales them and start/end limit them to part of the schedule."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterApplyBranch",
            display_name="VideoPainter Apply Branch",
            category="videopainter/loaders",
            description=cls.__doc__,
            inputs=[
                io.Model.Input("model"),
                BRANCH.Input("branch"),
                io.Float.Input("strength", default=1.0, min=0.0, max=2.0, step=0.05, tooltip="1.0 = the reference."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Fraction of the denoising steps before the branch starts (0 = from the first step)."),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Fraction of the steps after which the branch stops (1 = until the last step)."),
            ],
            outputs=[io.Model.Output("model_out", display_name="MODEL")],
        )

    @classmethod
    def validate_inputs(cls, start_percent: float | None = None, end_percent: float | None = None) -> bool | str:
        # No **kwargs: with it ComfyUI skips the min/max checks of every input (strength too). The two inputs named
        # here lose theirs, so their range is checked below. Linked values are None here.
        if start_percent is None or end_percent is None:
            return True
        if not 0.0 <= start_percent <= end_percent <= 1.0:
            return (
                f"start_percent, end_percent: expected 0 <= start_percent <= end_percent <= 1; got {start_percent} "
                f"and {end_percent}"
            )
        return True

    @classmethod
    def execute(cls, model, branch, strength: float, start_percent: float, end_percent: float) -> io.NodeOutput:
        options = attach.BranchOptions(strength, start_percent, end_percent)
        return io.NodeOutput(attach.attach_branch(model, branch, options))


NODES = [VideoPainterBackboneLoader, VideoPainterBranchLoader, VideoPainterApplyBranch, VideoPainterApplyIDLora, VideoPainterStyleLora]
