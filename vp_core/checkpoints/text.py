"""Text conditioning: the T5 v1.1 XXL prompt embedding that CogVideoX (and so VideoPainter) is conditioned on.

The reference (diffusers' CogVideoX pipelines, ``_get_t5_prompt_embeds``; spec §5 "Text") tokenises with
``tokenizer(prompt, padding="max_length", max_length=226, truncation=True, add_special_tokens=True)`` and takes
``text_encoder(input_ids)[0]``: the end token is kept, the pad tokens (id 0) fill the sequence to
``max_text_seq_length`` and are encoded with **no attention mask**, and the last hidden state ``[1, 226, 4096]`` is
the conditioning. An empty negative prompt is encoded the same way (it is not zeros).

One encode function serves every text encoder: a ``CLIP`` from ComfyUI's own loader (a T5-XXL file loaded by
``CLIPLoader``) and the ``text_encoder/`` of a CogVideoX diffusers folder, which :func:`load_text_encoder` turns into
the same kind of ``CLIP`` object.

Precision: the reference runs T5 in bf16 and returns bf16. ComfyUI's T5 keeps its weights in the text-encoder dtype
(fp16 by default) but computes in fp32 (``manual_cast``) and returns fp32; the consumer casts to its own dtype. In
fp32 both implementations agree to about 1e-6 at 16 tokens and 9e-6 at 226 (each ~7e-6 from an fp64 run).
"""
from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor

import comfy.sd
import comfy.text_encoders.pixart_t5
import comfy.text_encoders.sd3_clip
import comfy.utils

from .loaders import iter_model_folder, model_folder_header

log = logging.getLogger(__name__)

MAX_TEXT_TOKENS = 226  # CogVideoX-5b-I2V transformer config: max_text_seq_length
T5_TOKENS_KEY = "t5xxl"  # the key ComfyUI's T5-XXL tokenizers and encoders use in their token dicts
T5_TOKENIZER_DIR = Path(comfy.text_encoders.sd3_clip.__file__).resolve().parent / "t5_tokenizer"

# transformers' T5 activation names -> ComfyUI's (comfy/text_encoders/t5.py). "gelu_new" is the tanh approximation.
ACTIVATIONS = {"gelu_new": "gelu_pytorch_tanh", "gelu_pytorch_tanh": "gelu_pytorch_tanh", "relu": "relu"}
# Values ComfyUI's T5 hard-codes; a config.json that differs cannot be loaded into it.
FIXED_T5_FIELDS = {
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "layer_norm_epsilon": 1e-6,
}


@functools.lru_cache(maxsize=1)
def t5_tokenizer():
    """ComfyUI's bundled T5 v1.1 tokenizer (``comfy/text_encoders/t5_tokenizer``), the one all its T5-XXL CLIPs use.

    CogVideoX's ``tokenizer/`` is the stock google/t5-v1_1-xxl sentencepiece vocabulary, the same one; it is used
    in its ``tokenizer.json`` form because transformers 5 needs ``protobuf`` to read a bare ``spiece.model``.
    """
    from transformers import T5TokenizerFast

    return T5TokenizerFast.from_pretrained(str(T5_TOKENIZER_DIR))


def prompt_token_ids(prompt: str, max_len: int = MAX_TEXT_TOKENS) -> list[int]:
    """The reference's ``input_ids`` for one prompt: T5 ids + end token, cut or padded with id 0 to ``max_len``.

    Tokenises with the same call as the reference, and logs the same warning naming the text that was cut off.
    """
    if max_len < 1:
        raise ValueError(f"max_text_tokens must be at least 1 (room for the end token), got {max_len}")
    tokenizer = t5_tokenizer()
    encoded = tokenizer(prompt, padding="max_length", max_length=max_len, truncation=True, add_special_tokens=True)
    ids = encoded["input_ids"]
    untruncated = tokenizer(prompt)["input_ids"]
    if len(untruncated) >= len(ids) and untruncated != ids:
        removed = tokenizer.decode(untruncated[max_len - 1 : -1])
        log.warning(
            "The following part of your input was truncated because `max_sequence_length` is set to %d tokens: %s",
            max_len,
            removed,
        )
    return ids


def encode_prompt(clip: comfy.sd.CLIP, prompt: str, max_len: int = MAX_TEXT_TOKENS) -> Tensor:
    """Encode ``prompt`` as CogVideoX does: the T5 last hidden state of exactly ``max_len`` tokens, no attention mask.

    Parameters:
        clip: a ComfyUI ``CLIP`` holding a T5 v1.1 XXL encoder (``CLIPLoader`` with any T5-XXL type, e.g.
            ``pixart``, ``sd3``, ``mochi``, ``ltxv``; or :func:`load_text_encoder`). Not modified.
        prompt: the text; ``""`` is encoded like any other prompt (end token + padding).
        max_len: the transformer's ``max_text_seq_length`` (226 for CogVideoX-5b-I2V).

    Returns:
        ``[1, max_len, dim]`` float tensor on ComfyUI's intermediate device.

    The token list is built here rather than by ``clip.tokenize``: that one parses ``(word:1.2)`` weights and
    ``embedding:`` names, drops backslashes before brackets, and pads to a per-type minimum (77, 128, 256 ...), none of
    which the reference does. ``mochi``/``ltxv`` CLIPs mask the pad tokens; the reference does not, so the encoder
    runs on a clone whose mask switches are turned off by object patches (ComfyUI restores them when the original is
    loaded again). ``CLIPSetLastLayer`` is ignored: the reference uses the last hidden state.
    """
    if clip is None:
        raise ValueError("clip: no text encoder connected; connect a T5-XXL CLIP or VideoPainter Text Encoder Loader")
    keys = set(clip.tokenize("", disable_weights=True))
    if T5_TOKENS_KEY not in keys or not hasattr(clip.cond_stage_model, T5_TOKENS_KEY):
        raise ValueError(
            f"clip: expected a T5 v1.1 XXL text encoder, got one with the parts {sorted(keys)}; load t5xxl "
            "(fp16, bf16 or fp8) with Load CLIP, type 'pixart' (any T5-XXL type works), or use VideoPainter Text "
            "Encoder Loader on the CogVideoX folder"
        )
    encoder = clip.clone()
    if encoder.layer_idx is not None:
        log.warning("clip: ignoring CLIP Set Last Layer (%s); CogVideoX uses T5's last hidden state", encoder.layer_idx)
        encoder.clip_layer(None)
    encoder.patcher.add_object_patch(f"{T5_TOKENS_KEY}.enable_attention_masks", False)
    encoder.patcher.add_object_patch(f"{T5_TOKENS_KEY}.zero_out_masked", False)

    ids = prompt_token_ids(prompt, max_len)
    tokens = {key: [] for key in keys}  # other encoders of a multi-encoder CLIP (sd3, flux) get nothing to encode
    tokens[T5_TOKENS_KEY] = [[(token, 1.0) for token in ids]]
    cond = encoder.encode_from_tokens(tokens)
    if cond.ndim != 3 or tuple(cond.shape[:2]) != (1, max_len):
        raise ValueError(
            f"clip: its encoder returned shape {list(cond.shape)} for {max_len} T5 tokens, expected "
            f"[1, {max_len}, dim]; "
            "load the T5-XXL file on its own (Load CLIP, type 'pixart')"
        )
    return cond


def load_text_encoder(folder: str | os.PathLike, dtype: torch.dtype | None = None) -> comfy.sd.CLIP:
    """Load the T5 encoder of a CogVideoX diffusers folder as a standard ComfyUI ``CLIP``.

    Parameters:
        folder: the diffusers folder (containing ``text_encoder/``) or its ``text_encoder/`` itself: transformers
            ``T5EncoderModel`` key names, ``model.safetensors`` or shards listed in ``model.safetensors.index.json``.
        dtype: weight dtype; ``None`` follows ComfyUI's text-encoder policy (``--fp32-text-enc`` etc.).

    The result is the object ``CLIPLoader`` (type ``pixart``) builds for a T5-XXL file: ComfyUI's own T5 under a
    ``ModelPatcher``, placed by ComfyUI's memory manager, with its bundled T5 v1.1 tokenizer. It is assembled here
    rather than through ``comfy.sd.load_text_encoder_state_dicts`` because that function picks the architecture
    from tensor shapes (a T5 with fewer than 24 blocks is taken for Stable Audio's T5-base) and would ignore
    ``config.json``; here the config sets the sizes (``t5xxl_model_config``), so tiny test models load the same way.
    """
    folder = Path(folder)
    te_dir = folder / "text_encoder" if (folder / "text_encoder").is_dir() else folder
    config = _read_json(te_dir / "config.json")
    header = model_folder_header(te_dir, "model")  # names, shapes, dtypes: what the detection below reads
    rename, skip = {}, frozenset()
    if "encoder.embed_tokens.weight" in header:  # transformers' tied copy of shared.weight
        if "shared.weight" in header:
            skip = frozenset({"encoder.embed_tokens.weight"})  # the same values twice: not read
        else:
            rename["encoder.embed_tokens.weight"] = "shared.weight"  # saved alone under its tied name
    header = {rename.get(k, k): v for k, v in header.items() if k not in skip}

    target = SimpleNamespace(
        params={},
        clip=comfy.text_encoders.pixart_t5.pixart_te(**comfy.text_encoders.sd3_clip.t5_xxl_detect(header)),
        tokenizer=comfy.text_encoders.pixart_t5.PixArtTokenizer,
    )
    model_options: dict = {f"{T5_TOKENS_KEY}_model_config": comfy_t5_config(config, te_dir / "config.json")}
    if dtype is not None:
        model_options["dtype"] = dtype
    clip = comfy.sd.CLIP(target, parameters=comfy.utils.calculate_parameters(header), model_options=model_options)
    missing, unexpected = _load_weights(clip, te_dir, rename, skip)
    if missing:
        raise ValueError(
            f"{te_dir}: {len(missing)} T5 weights missing (e.g. {missing[:3]}); expected a transformers "
            "T5EncoderModel checkpoint such as CogVideoX's text_encoder/"
        )
    if unexpected:
        log.warning("%s: %d unused tensors ignored (e.g. %s)", te_dir, len(unexpected), unexpected[:3])
    check_folder_tokenizer(folder / "tokenizer")
    return clip


def comfy_t5_config(config: dict, source: Path | str = "config.json") -> dict:
    """transformers ``T5Config`` fields -> the overrides of ComfyUI's T5 config (``t5_config_xxl.json`` names)."""
    if config.get("model_type") != "t5":
        raise ValueError(f"{source}: model_type is {config.get('model_type')!r}, expected 't5' (T5EncoderModel)")
    for field, value in FIXED_T5_FIELDS.items():
        if field in config and config[field] != value:
            raise ValueError(f"{source}: {field} is {config[field]}, ComfyUI's T5 supports only {value}")
    # Derived as transformers' T5Config does, from feed_forward_proj ("gated-gelu" means gated "gelu_new").
    proj = config.get("feed_forward_proj", "relu")
    activation = "gelu_new" if proj == "gated-gelu" else proj.split("-")[-1]
    if activation not in ACTIVATIONS:
        raise ValueError(f"{source}: feed_forward_proj {proj!r} is not supported (expected gated-gelu or relu)")
    return {
        "model_type": "t5",
        "d_model": config["d_model"],
        "d_kv": config["d_kv"],
        "num_heads": config["num_heads"],
        "num_layers": config["num_layers"],
        "d_ff": config["d_ff"],
        "vocab_size": config["vocab_size"],
        "dense_act_fn": ACTIVATIONS[activation],
        "is_gated_act": proj.startswith("gated-"),
    }


def check_folder_tokenizer(tokenizer_dir: Path) -> bool | None:
    """Warn when a folder's ``tokenizer/`` is not the T5 v1.1 vocabulary that prompts are tokenised with.

    Returns ``True`` (same), ``False`` (differs; warned) or ``None`` (no readable tokenizer there).
    """
    pieces = _tokenizer_pieces(tokenizer_dir)
    if pieces is None:
        return None
    bundled = {i: piece for piece, i in t5_tokenizer().get_vocab().items()}
    differs = [i for i, piece in pieces.items() if bundled.get(i) != piece]
    if differs:
        log.warning(
            "%s differs from ComfyUI's T5 v1.1 tokenizer in %d of %d ids (e.g. id %d: %r vs %r); prompts are "
            "tokenised with ComfyUI's, which is what CogVideoX was trained with",
            tokenizer_dir, len(differs), len(pieces), differs[0], pieces[differs[0]], bundled.get(differs[0]),
        )
    return not differs


def _tokenizer_pieces(tokenizer_dir: Path) -> dict[int, str] | None:
    if (tokenizer_dir / "spiece.model").is_file():
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_dir / "spiece.model"))
        return {i: processor.id_to_piece(i) for i in range(processor.get_piece_size())}
    if (tokenizer_dir / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        return {i: piece for piece, i in Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).get_vocab().items()}
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: not found; expected the text_encoder/ of a CogVideoX diffusers folder") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read JSON ({e})") from e


def _load_weights(clip: comfy.sd.CLIP, te_dir: Path, rename: dict, skip: frozenset) -> tuple[list[str], list[str]]:
    """Copy ``text_encoder/``'s tensors into the built T5 one at a time through ComfyUI's own ``CLIP.load_sd`` (its
    key handling, non-strict), each read into its own memory and dropped once copied; (missing, unexpected) names.

    Not the whole state dict in one ``load_sd``: that holds the files' read pages and the module's copy together
    (1.85x the files for T5 XXL, bench/README.md "Real size on CPU"); one tensor at a time the peak is the module
    plus the largest tensor (the 32128 x 4096 embedding)."""
    missing: set[str] | None = None
    unexpected: list[str] = []
    for key, tensor in iter_model_folder(te_dir, "model", skip):
        result = clip.load_sd({rename.get(key, key): tensor})
        del tensor
        missing = set(result.missing_keys) if missing is None else missing & set(result.missing_keys)
        unexpected += result.unexpected_keys
    if missing is None:  # no tensors at all
        missing = set(clip.load_sd({}).missing_keys)
    return sorted(missing), unexpected
