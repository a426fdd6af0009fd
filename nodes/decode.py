"""Decode and composite nodes."""
from __future__ import annotations

import comfy.model_management
from comfy_api.v0_0_2 import io

from ..vp_core.pipeline import composite, sampling

from ..vp_core.checkpoints.vae import video_vae
from .memory import DECODE_REMEDY, call_releasing_memory
from .types import INPAINT, vae_input


class VideoPainterDecode(io.ComfyNode):
    """Decodes VideoPainter latents to frames, streamed batch by batch so memory does not grow with video length."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterDecode",
            display_name="VideoPainter Decode",
            category="videopainter/decode",
            description=cls.__doc__,
            inputs=[
                vae_input(),
                io.Latent.Input("latent"),
                io.Boolean.Input("tiling", default=False, tooltip="Tiled decoding (less memory; the reference's long-video mode)."),
            ],
            outputs=[io.Image.Output("images")],
        )

    @classmethod
    def execute(cls, vae, latent, tiling: bool) -> io.NodeOutput:
        vae = video_vae(vae)
        info = latent.get("videopainter", {})
        samples = latent["samples"].permute(0, 2, 1, 3, 4)
        frames = call_releasing_memory(
            lambda: sampling.decode(vae, samples, tiling, info.get("output_frames"),
                                    comfy.model_management.throw_exception_if_processing_interrupted),
            "decoding", DECODE_REMEDY if not tiling else "start ComfyUI with --lowvram",
        )
        return io.NodeOutput(frames)


class VideoPainterComposite(io.ComfyNode):
    """Pastes the original pixels back outside the (dilated, feathered) mask, so untouched background is pixel-exact
    (the reference only restores it through the VAE). Generated frames are resized to the original size."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterComposite",
            display_name="VideoPainter Composite",
            category="videopainter/decode",
            description=cls.__doc__,
            inputs=[
                io.Image.Input("original", tooltip="The sampled original frames (Encode node's 'frames' output)."),
                io.Image.Input("generated", tooltip="Decoded frames."),
                io.Mask.Input("mask", tooltip="Hole masks of the original frames (Encode node's 'hole_mask')."),
                io.Int.Input("dilate", default=16, min=0, max=256, tooltip="Grow the pasted region by this many pixels."),
                io.Int.Input("feather", default=8, min=0, max=256, tooltip="Blur radius of the seam in pixels."),
                INPAINT.Input("inpaint", optional=True,
                              tooltip="The encoder's inpaint output. Needed in crop mode (the generated frames are the "
                                      "crop box, placed back where the encoder cut it); without it the generated frames "
                                      "are taken as the whole frame."),
            ],
            outputs=[io.Image.Output("images")],
        )

    @classmethod
    def execute(cls, original, generated, mask, dilate: int, feather: int, inpaint=None) -> io.NodeOutput:
        crop = getattr(inpaint, "crop", None)
        if crop is not None and len(crop) != original.shape[0]:
            raise ValueError(f"inpaint: its crop box is planned for {len(crop)} frames but original has "
                             f"{original.shape[0]}: give the encoder's 'frames' output of the same encode as original")
        placed = composite.place(generated, original, crop) if crop is not None else generated
        return io.NodeOutput(composite.paste(original, placed, mask, dilate, feather))


NODES = [VideoPainterDecode, VideoPainterComposite]
