"""Text nodes: load CogVideoX's T5 text encoder, and encode the prompt and negative prompt as the reference does."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from comfy_api.v0_0_2 import io

from ..vp_core.checkpoints import text
from . import paths

if TYPE_CHECKING:
    from comfy.sd import CLIP

WEIGHT_DTYPES = {"default": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def text_encoder_folders() -> list[str]:
    """Folders under ``models/videopainter`` that hold a ``text_encoder/`` (CogVideoX diffusers folders)."""
    # paths' walker, so text encoders are found where (and named as) the backbone folders are.
    return sorted({str(rel) for _, rel, _, dirs in paths._walk_dirs() if "text_encoder" in dirs})


def text_encoder_folder_path(name: str) -> Path:
    """Full path of a folder listed by :func:`text_encoder_folders`."""
    try:
        path = paths.resolve(paths.FOLDER, name)
    except ValueError as e:
        raise ValueError(f"folder: {e}; put the CogVideoX-5b-I2V diffusers folder there and refresh") from None
    if not (path / "text_encoder").is_dir():
        raise ValueError(
            f"folder: {name!r} has no text_encoder/; pick the CogVideoX-5b-I2V diffusers folder in models/videopainter"
        )
    return path


class VideoPainterTextEncoderLoader(io.ComfyNode):
    """Loads the T5 v1.1 XXL text encoder of a CogVideoX diffusers folder (its text_encoder/) as a standard CLIP.

    The same kind of CLIP that Load CLIP makes from a t5xxl file, tokenised with ComfyUI's bundled T5 v1.1
    tokenizer (CogVideoX's tokenizer/ is that vocabulary; a folder whose tokenizer differs gets a warning).
    """

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterTextEncoderLoader",
            display_name="VideoPainter Text Encoder Loader",
            category="videopainter/loaders",
            description=cls.__doc__,
            inputs=[
                io.Combo.Input(
                    "folder",
                    options=text_encoder_folders(),
                    tooltip="A CogVideoX diffusers folder under models/videopainter/ that contains text_encoder/.",
                ),
                io.Combo.Input(
                    "weight_dtype",
                    options=list(WEIGHT_DTYPES),
                    default="default",
                    tooltip="Weight precision. default: ComfyUI's text-encoder setting (--fp32-text-enc etc.).",
                ),
            ],
            outputs=[io.Clip.Output("clip")],
        )

    @classmethod
    def execute(cls, folder: str, weight_dtype: str = "default") -> io.NodeOutput:
        if weight_dtype not in WEIGHT_DTYPES:
            raise ValueError(f"weight_dtype: expected one of {list(WEIGHT_DTYPES)}, got {weight_dtype!r}")
        return io.NodeOutput(text.load_text_encoder(text_encoder_folder_path(folder), WEIGHT_DTYPES[weight_dtype]))


class VideoPainterTextEncode(io.ComfyNode):
    """Encodes the prompt and the negative prompt exactly as CogVideoX does.

    T5 token ids with the end token, padded with the pad token to max_text_tokens (longer prompts are cut, with a
    warning naming the cut text), encoded without an attention mask; the conditioning is the last hidden state.
    An empty negative prompt is encoded like any other (it is not zeros). Prompt weights such as (word:1.2) are
    not interpreted: the text goes to the tokenizer as written.
    """

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterTextEncode",
            display_name="VideoPainter Text Encode",
            category="videopainter/conditioning",
            description=cls.__doc__,
            inputs=[
                io.Clip.Input(
                    "clip",
                    tooltip="A T5 v1.1 XXL text encoder: Load CLIP with t5xxl (type pixart, sd3, mochi or ltxv) "
                    "or VideoPainter Text Encoder Loader.",
                ),
                io.String.Input("prompt", multiline=True, default=""),
                io.String.Input(
                    "negative_prompt",
                    multiline=True,
                    default="",
                    tooltip="Used for classifier-free guidance. Empty is the reference default and is encoded too.",
                ),
                io.Int.Input(
                    "max_text_tokens",
                    default=text.MAX_TEXT_TOKENS,
                    min=1,
                    max=4096,
                    tooltip="the transformer's max_text_seq_length (226 for CogVideoX-5b-I2V).",
                ),
            ],
            outputs=[io.Conditioning.Output("positive"), io.Conditioning.Output("negative")],
        )

    @classmethod
    def execute(
        cls, clip: CLIP, prompt: str, negative_prompt: str = "", max_text_tokens: int = text.MAX_TEXT_TOKENS
    ) -> io.NodeOutput:
        positive = text.encode_prompt(clip, prompt, max_text_tokens)
        negative = text.encode_prompt(clip, negative_prompt, max_text_tokens)
        return io.NodeOutput([[positive, {}]], [[negative, {}]])


NODES = [VideoPainterTextEncoderLoader, VideoPainterTextEncode]
