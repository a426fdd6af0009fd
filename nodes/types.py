"""Custom ComfyUI types of the pack, declared once. Core types (MODEL, IMAGE, MASK, LATENT, CONDITIONING) are used
wherever they fit; these carry VideoPainter-specific payloads that no core type describes."""
from __future__ import annotations

from comfy_api.v0_0_2 import io

VAE = io.Custom("VIDEOPAINTER_VAE")  # vp_core.checkpoints.vae.VideoVAE: the CogVideoX VAE (core VAE has no CogVideoX model)
BRANCH = io.Custom("VIDEOPAINTER_BRANCH")  # ModelPatcher of the VideoPainter context encoder
INPAINT = io.Custom("VIDEOPAINTER_INPAINT")  # vp_core.pipeline.preprocess.InpaintInput
ID_STATE = io.Custom("VP_ID_STATE")  # vp_core.pipeline.id_state.IDState


def vae_input(tooltip: str | None = None) -> io.Input:
    """The ``vae`` input of every node that encodes or decodes: this pack's VAE, or core's VAE holding the CogVideoX
    VAE (Load VAE on hosts with native CogVideoX); the node turns either into one with ``vp_core.checkpoints.vae.video_vae``."""
    return io.MultiType.Input("vae", types=[VAE, io.Vae], tooltip=tooltip or (
        "The CogVideoX VAE: VideoPainter Backbone Loader's vae, or Load VAE on a CogVideoX VAE file."))
