"""Streamed output nodes: decode and composite to a core VIDEO that is produced while it is saved, and a single
frame of a VIDEO as an IMAGE (first frame for an image inpainter) without decoding the rest."""
from __future__ import annotations

import logging

import comfy.model_management
import comfy.utils
import torch
from comfy_api.v0_0_2 import io

from ..vp_core.pipeline import clip_inputs, source_rate, video_out, windows

from ..vp_core.video import video_io
from . import first_frame_source
from .memory import DECODE_REMEDY, call_releasing_memory
from .types import INPAINT, VAE

log = logging.getLogger(__name__)


def _progress(total: int):
    """One progress bar over all frames of a save (reported on the node that saves, e.g. Save Video)."""
    bar = comfy.utils.ProgressBar(total)
    return lambda done: bar.update_absolute(done, total)


def _guard(what: str, remedy: str):
    return lambda fn: call_releasing_memory(fn, what, remedy)


CODEC = io.Combo.Input(
    "codec", options=list(video_out.CODECS), default="h264", optional=True,
    tooltip="How Save Video encodes it when its codec is 'auto': h264 (small, lossy) or ffv1 (lossless RGB: masks, "
            "intermediate results, exact comparisons; browsers do not play it).")


class VideoPainterDecodeVideo(io.ComfyNode):
    """Decodes VideoPainter latents to a VIDEO that is decoded while it is saved: frames go to the file as the VAE
    makes them, so memory does not grow with the clip. Output at the model's working size and the sampled frame rate."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterDecodeVideo",
            display_name="VideoPainter Decode to Video",
            category="videopainter/decode",
            description=cls.__doc__,
            inputs=[
                VAE.Input("vae"),
                io.Latent.Input("latent"),
                io.Boolean.Input("tiling", default=False, tooltip="Tiled decoding (less memory; the reference's long-video mode)."),
                CODEC,
            ],
            outputs=[io.Video.Output("video")],
        )

    @classmethod
    def execute(cls, vae, latent, tiling: bool, codec: str = "h264") -> io.NodeOutput:
        info = latent.get("videopainter", {})
        samples = latent["samples"].permute(0, 2, 1, 3, 4)
        frames = info.get("output_frames") or windows.decoded_frame_count(samples.shape[1])
        f = vae.spatial_factor
        chunks = video_out.decoded_chunks(
            lambda: vae.decode_iter(samples, tiling, comfy.model_management.throw_exception_if_processing_interrupted),
            frames)
        video = video_out.StreamedVideo(
            chunks, samples.shape[-1] * f, samples.shape[-2] * f, frames, info.get("fps") or 8.0, codec,
            progress=_progress, guard=_guard("decoding", DECODE_REMEDY if not tiling else "start ComfyUI with --lowvram"))
        return io.NodeOutput(video)


class VideoPainterCompositeVideo(io.ComfyNode):
    """Pastes the original pixels outside the (dilated, feathered) hole over the generated frames, frame by frame
    while it is saved: the originals are read again from the source at its resolution for just the frames being
    written. Keeps the source's audio. NaN in generated frames never reaches the background (an error when it is
    inside the hole). With the encoder's output_rate 'source' (default) it writes every source frame at the source's
    rate: the hole of the frames between two sampled ones is interpolated from the generated frames (optical flow),
    or taken from generated frames at the source rate (e.g. an IMAGE batch from a RIFE / FILM node)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterCompositeVideo",
            display_name="VideoPainter Composite Video",
            category="videopainter/decode",
            description=cls.__doc__,
            inputs=[
                INPAINT.Input("inpaint", tooltip="The encoder's output: where the original frames and holes are read from."),
                io.MultiType.Input(
                    io.Video.Input("generated", tooltip="Decoded frames: a VIDEO ('VideoPainter Decode to Video') or an "
                                                        "IMAGE batch, at the sampled rate (the hole of the source frames "
                                                        "in between is interpolated here by optical flow) or at the "
                                                        "source rate (e.g. a RIFE / FILM node's output with multiplier = "
                                                        "the encoder's frame step: used as it is)."),
                    types=[io.Image]),
                io.Int.Input("dilate", default=16, min=0, max=256, tooltip="Grow the pasted region by this many pixels."),
                io.Int.Input("feather", default=8, min=0, max=256, tooltip="Blur radius of the seam in pixels."),
                CODEC,
            ],
            outputs=[io.Video.Output("video")],
        )

    @classmethod
    def execute(cls, inpaint, generated, dilate: int, feather: int, codec: str = "h264") -> io.NodeOutput:
        chunks, frames = _generated_chunks(generated)
        timeline = inpaint.source
        if timeline is not None:
            space = source_rate.spacing(timeline, inpaint.frame_count, frames)
            h, w = video_io.frame_size(timeline.frames)
            log.info("composite: output at the source rate: %d frames at %.6g fps, %s", len(timeline),
                     float(timeline.fps), f"{frames} generated frames at the sampled rate (step {space}), the hole "
                     f"of the {len(timeline) - frames} frames in between interpolated by optical flow" if space > 1
                     else f"{frames} generated frames at the source rate, used as they are")
            video = video_out.StreamedVideo(
                source_rate.composited_chunks(timeline, chunks, space, dilate, feather, crop=inpaint.crop), w, h,
                len(timeline),
                timeline.fps, codec, inpaint.audio, progress=_progress,
                guard=_guard("decoding, interpolating and compositing", DECODE_REMEDY))
            return io.NodeOutput(video)
        if frames != inpaint.frame_count:
            raise ValueError(
                f"generated has {frames} frames but original has {inpaint.frame_count}: use the encoder of this clip "
                "for 'inpaint' and window_mode 'fixed' (same frame count in and out)"
            )
        h, w = video_io.frame_size(inpaint.frames)
        log.info("composite: output at the sampled rate: %d frames at %.6g fps (the encoder's output_rate is "
                 "'sampled', or its input had no frame rate)", frames, inpaint.fps)
        video = video_out.StreamedVideo(
            video_out.composited_chunks(inpaint, chunks, dilate, feather), w, h, frames, inpaint.fps, codec, inpaint.audio,
            progress=_progress, guard=_guard("decoding and compositing", DECODE_REMEDY))
        return io.NodeOutput(video)


def _generated_chunks(generated) -> tuple[video_out.Chunks, int]:
    """The generated frames as chunks, from a VIDEO (read as it is written) or an IMAGE batch."""
    if isinstance(generated, torch.Tensor):
        if generated.ndim != 4 or generated.shape[-1] != 3:
            raise ValueError(f"generated: expected a VIDEO or an IMAGE batch [frames, height, width, 3]; got shape "
                             f"{tuple(generated.shape)}")
        return (lambda: iter([generated])), generated.shape[0]
    chunks, frames, _, _ = video_out.video_chunks(generated)
    return chunks, frames


class VideoPainterVideoFrame(io.ComfyNode):
    """One frame of a VIDEO as an IMAGE (e.g. frame 0 for FLUX Fill), decoding only up to that frame. The clip's first
    frame for the encoder is index = its skip_first_frames (a different index on the same video is refused)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterVideoFrame",
            display_name="VideoPainter Frame From Video",
            category="videopainter/encode",
            description=cls.__doc__,
            inputs=[
                io.Video.Input("video"),
                io.Int.Input("index", default=0, min=0, max=10_000_000,
                             tooltip="Frame number in the file (0 = first). For the encoder's first_frame: its "
                                     "skip_first_frames (the clip's first kept frame)."),
            ],
            outputs=[io.Image.Output("image")],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, video, index: int) -> io.NodeOutput:
        first_frame_source.check(cls)
        return io.NodeOutput(clip_inputs.video_frame(video, index))


NODES = [VideoPainterDecodeVideo, VideoPainterCompositeVideo, VideoPainterVideoFrame]
