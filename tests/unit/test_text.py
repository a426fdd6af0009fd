"""vp_core.checkpoints.text against the reference: diffusers' own ``_get_t5_prompt_embeds`` on transformers' ``T5EncoderModel``.

A tiny random T5 v1.1 (gated-gelu) is saved in the official CogVideoX ``text_encoder/`` layout (sharded safetensors
with an index) and encoded (a) through CLIPs built the way ComfyUI's CLIPLoader builds them for a T5-XXL file and
(b) through ``load_text_encoder`` on the folder. Token ids come from the real T5 tokenizer that ships with ComfyUI.
Tolerance 1e-5 in fp32: ComfyUI's T5 uses torch's tanh-GELU where transformers' ``gelu_new`` writes the formula
out, and its own attention kernel; measured differences are about 1e-6.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

import comfy.sd
import comfy.text_encoders.genmo
import comfy.text_encoders.lt
import comfy.text_encoders.pixart_t5
import comfy.text_encoders.sd3_clip
import comfy.utils
from videopainter.vp_core.checkpoints import text

MAX_LEN = 16  # the tiny conformance transformer's max_text_seq_length (226 for the real model)
ATOL = 1e-5
SHORT = "A white cat walks along a sunny garden path."
LONG = (
    "A red vintage car drives slowly down a narrow cobblestone street lined with flower boxes, while pigeons "
    "scatter and a child waves from a balcony in the warm evening light."
)
PROMPTS = ["", SHORT, LONG, "a (cat:1.2) \\(x\\) embedding:foo </s> bar"]

# comfy/sd.py load_text_encoder_state_dicts, TEModel.T5_XXL branch: what CLIPLoader builds for each T5-XXL type.
CLIPLOADER_T5_TYPES = {
    "pixart": (comfy.text_encoders.pixart_t5.pixart_te, comfy.text_encoders.pixart_t5.PixArtTokenizer),
    "mochi": (comfy.text_encoders.genmo.mochi_te, comfy.text_encoders.genmo.MochiT5Tokenizer),  # masks the padding
    "ltxv": (comfy.text_encoders.lt.ltxv_te, comfy.text_encoders.lt.LTXVT5Tokenizer),  # masks the padding
    "sd3": (
        lambda **kw: comfy.text_encoders.sd3_clip.sd3_clip(clip_l=False, clip_g=False, t5=True, **kw),
        comfy.text_encoders.sd3_clip.SD3Tokenizer,  # token dict with "l", "g" and "t5xxl"
    ),
}
try:  # core's native CogVideoX text encoder (CLIPLoader type "cogvideox", ComfyUI 0.2x; not in 0.3.75)
    import comfy.text_encoders.cogvideo as core_cogvideo
except ImportError:
    core_cogvideo = None
else:
    CLIPLOADER_T5_TYPES["cogvideox"] = (core_cogvideo.cogvideo_te, core_cogvideo.CogVideoXTokenizer)
NO_CORE_COGVIDEOX = "this ComfyUI host lacks native CogVideoX (CLIPLoader type 'cogvideox', 0.2x)"


def tiny_t5_config():
    from transformers import T5Config

    return T5Config(
        d_model=32,
        d_kv=8,  # d_kv * num_heads is the attention width (4096 = 64 * 64 for XXL)
        num_heads=4,
        num_layers=2,  # block 0 owns the relative attention bias, block 1 reuses it
        d_ff=64,
        vocab_size=32128,  # the real T5 vocabulary, so the real tokenizer's ids index it
        feed_forward_proj="gated-gelu",  # T5 v1.1: gated tanh-GELU feed-forward
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        layer_norm_epsilon=1e-6,
        is_encoder_decoder=False,
        use_cache=False,
    )


def make_tiny_t5_folder(root: Path, seed: int = 0):
    """A CogVideoX-layout folder (``text_encoder/`` sharded + index, ``tokenizer/``) and the transformers model."""
    from transformers import T5EncoderModel

    torch.manual_seed(seed)
    model = T5EncoderModel(tiny_t5_config()).eval()
    with torch.no_grad():  # layer norms start at 1.0; make them random so a mis-mapped one shows
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(root / "text_encoder", max_shard_size="1MB")
    text.t5_tokenizer().save_pretrained(root / "tokenizer")
    return model


def reference_embeds(model, prompt: str, max_len: int = MAX_LEN) -> torch.Tensor:
    """The reference code itself: diffusers' CogVideoX I2V ``_get_t5_prompt_embeds`` (tokenise, encode, no mask)."""
    from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import CogVideoXImageToVideoPipeline

    stub = SimpleNamespace(tokenizer=text.t5_tokenizer(), text_encoder=model, _execution_device=torch.device("cpu"))
    with torch.no_grad():
        return CogVideoXImageToVideoPipeline._get_t5_prompt_embeds(
            stub, prompt, max_sequence_length=max_len, device=torch.device("cpu"), dtype=torch.float32
        )


def clip_like_cliploader(clip_type: str, state_dict: dict, hf_config: dict) -> comfy.sd.CLIP:
    """The CLIP that CLIPLoader builds for a T5-XXL file of this type, with the tiny sizes as config overrides."""
    te, tokenizer = CLIPLOADER_T5_TYPES[clip_type]
    detected = comfy.text_encoders.sd3_clip.t5_xxl_detect(state_dict)
    target = SimpleNamespace(params={}, clip=te(**detected), tokenizer=tokenizer)
    options = {"dtype": torch.float32, "t5xxl_model_config": text.comfy_t5_config(hf_config)}
    clip = comfy.sd.CLIP(target, parameters=comfy.utils.calculate_parameters(state_dict), model_options=options)
    missing, _ = clip.load_sd(state_dict)
    assert not missing
    return clip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("CogVideoX-tiny")
    model = make_tiny_t5_folder(root)
    te_dir = root / "text_encoder"
    state_dict = {}
    for shard in sorted(te_dir.glob("model-*.safetensors")):
        state_dict.update(load_file(str(shard)))
    config = json.loads((te_dir / "config.json").read_text())
    return SimpleNamespace(root=root, model=model, state_dict=state_dict, config=config)


@pytest.fixture(scope="module")
def folder_clip(tiny):
    return text.load_text_encoder(tiny.root, dtype=torch.float32)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


# ---------------------------------------------------------------------------------------------------------- tokens
def test_token_ids_pad_with_zero_after_the_end_token():
    content = text.t5_tokenizer()(SHORT, add_special_tokens=False)["input_ids"]
    ids = text.prompt_token_ids(SHORT, 32)
    assert ids == content + [1] + [0] * (32 - len(content) - 1)
    assert text.prompt_token_ids("", 5) == [1, 0, 0, 0, 0]


def test_token_ids_truncate_keeping_the_end_token(caplog):
    content = text.t5_tokenizer()(LONG, add_special_tokens=False)["input_ids"]
    assert len(content) > MAX_LEN
    with caplog.at_level(logging.WARNING, logger=text.__name__):
        ids = text.prompt_token_ids(LONG, MAX_LEN)
    assert ids == content[: MAX_LEN - 1] + [1]
    removed = text.t5_tokenizer().decode(content[MAX_LEN - 1 :])
    assert [r.getMessage() for r in caplog.records] == [
        f"The following part of your input was truncated because `max_sequence_length` is set to {MAX_LEN} "
        f"tokens: {removed}"
    ]


def test_no_warning_when_the_prompt_fits_exactly(caplog):
    exact = len(text.t5_tokenizer()(SHORT)["input_ids"])  # content + end token
    with caplog.at_level(logging.WARNING, logger=text.__name__):
        assert text.prompt_token_ids(SHORT, exact)[-1] == 1
        text.prompt_token_ids(SHORT, MAX_LEN)
    assert caplog.records == []


def test_token_ids_agree_with_comfy_tokenizer_on_plain_text(folder_clip):
    ids = text.prompt_token_ids(SHORT, 64)
    comfy_ids = [t for t, _ in folder_clip.tokenize(SHORT)["t5xxl"][0]]
    assert comfy_ids == ids[: len(comfy_ids)]


def test_max_len_must_leave_room_for_the_end_token():
    with pytest.raises(ValueError, match="max_text_tokens"):
        text.prompt_token_ids("a cat", 0)


# ---------------------------------------------------------------------------------------------------------- encode
def test_folder_is_the_sharded_official_layout(tiny):
    te_dir = tiny.root / "text_encoder"
    shards = set(json.loads((te_dir / "model.safetensors.index.json").read_text())["weight_map"].values())
    assert len(shards) >= 2 and all((te_dir / s).is_file() for s in shards)
    assert "shared.weight" in tiny.state_dict


@pytest.mark.parametrize("prompt", PROMPTS)
def test_folder_path_matches_transformers(tiny, folder_clip, prompt):
    cond = text.encode_prompt(folder_clip, prompt, MAX_LEN)
    assert cond.shape == (1, MAX_LEN, 32) and cond.dtype == torch.float32
    assert max_diff(cond, reference_embeds(tiny.model, prompt)) <= ATOL


@pytest.mark.parametrize("clip_type", sorted(CLIPLOADER_T5_TYPES))
@pytest.mark.parametrize("prompt", ["", SHORT])
def test_clip_path_matches_transformers(tiny, clip_type, prompt):
    clip = clip_like_cliploader(clip_type, tiny.state_dict, tiny.config)
    cond = text.encode_prompt(clip, prompt, MAX_LEN)
    assert max_diff(cond, reference_embeds(tiny.model, prompt)) <= ATOL


def test_empty_negative_prompt_is_encoded_not_zeros(tiny, folder_clip):
    cond = text.encode_prompt(folder_clip, "", MAX_LEN)
    assert cond.abs().amin(dim=-1).gt(0).all()  # every position carries an embedding (no zeroed padding)
    assert max_diff(cond, reference_embeds(tiny.model, "")) <= ATOL
    assert max_diff(cond, text.encode_prompt(folder_clip, SHORT, MAX_LEN)) > 1e-3


def test_padding_is_not_masked_even_when_the_clip_masks_it(tiny):
    """mochi/ltxv CLIPs mask the pads; encode_prompt must not, and must leave the CLIP as it was."""
    clip = clip_like_cliploader("mochi", tiny.state_dict, tiny.config)
    tokens = {"t5xxl": [[(t, 1.0) for t in text.prompt_token_ids(SHORT, MAX_LEN)]]}
    # What the host itself patches differs by version (0.27 adds manual_cast_dtype): compare with before.
    patches_before, layer_idx_before = dict(clip.patcher.object_patches), clip.layer_idx
    masked_before = clip.encode_from_tokens(tokens)
    reference = reference_embeds(tiny.model, SHORT)
    assert max_diff(masked_before, reference) > 1e-2  # the premise: this CLIP's own encode differs

    assert max_diff(text.encode_prompt(clip, SHORT, MAX_LEN), reference) <= ATOL

    # The switch was an object patch on a clone: the CLIP itself is unchanged, and when ComfyUI loads it again its
    # own encode masks as before (the patched module attribute is restored on that load).
    assert clip.patcher.object_patches == patches_before and clip.layer_idx == layer_idx_before
    assert torch.equal(clip.encode_from_tokens(tokens), masked_before)
    assert clip.cond_stage_model.t5xxl.enable_attention_masks is True


def test_clip_set_last_layer_is_ignored_with_a_warning(tiny, folder_clip, caplog):
    clip = folder_clip.clone()
    clip.clip_layer(-2)
    with caplog.at_level(logging.WARNING, logger=text.__name__):
        cond = text.encode_prompt(clip, SHORT, MAX_LEN)
    assert max_diff(cond, reference_embeds(tiny.model, SHORT)) <= ATOL
    assert clip.layer_idx == -2
    assert any("Last Layer" in r.getMessage() for r in caplog.records)


def test_rejects_a_clip_without_t5():
    clip_l_only = SimpleNamespace(tokenize=lambda text, **kw: {"l": [[(49406, 1.0)]]}, cond_stage_model=object())
    with pytest.raises(ValueError, match="expected a T5 v1.1 XXL"):
        text.encode_prompt(clip_l_only, "a cat", MAX_LEN)
    with pytest.raises(ValueError, match="no text encoder"):
        text.encode_prompt(None, "a cat", MAX_LEN)


# ---------------------------------------------------------------------------------------------------------- loader
def test_real_t5_v1_1_xxl_config_maps_to_comfys_stock_xxl_config():
    """For the real model the overrides are ComfyUI's own t5_config_xxl.json: the loaded CLIP is the stock one."""
    xxl = dict(
        model_type="t5", d_model=4096, d_kv=64, num_heads=64, num_layers=24, d_ff=10240, vocab_size=32128,
        feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", relative_attention_num_buckets=32,
        relative_attention_max_distance=128, layer_norm_epsilon=1e-6,
    )  # google/t5-v1_1-xxl = CogVideoX-5b-I2V text_encoder/config.json
    stock = json.loads((Path(comfy.text_encoders.sd3_clip.__file__).parent / "t5_config_xxl.json").read_text())
    mapped = text.comfy_t5_config(xxl)
    assert mapped == {k: stock[k] for k in mapped}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model_type": "umt5"}, "model_type"),
        ({"relative_attention_num_buckets": 64}, "relative_attention_num_buckets"),
        ({"layer_norm_epsilon": 1e-5}, "layer_norm_epsilon"),
        ({"feed_forward_proj": "gated-silu"}, "feed_forward_proj"),
    ],
)
def test_unsupported_configs_are_refused(tiny, change, message):
    with pytest.raises(ValueError, match=message):
        text.comfy_t5_config({**tiny.config, **change})


def test_single_file_with_embed_tokens_key_loads(tiny, tmp_path):
    te_dir = tmp_path / "text_encoder"
    te_dir.mkdir()
    state_dict = dict(tiny.state_dict)
    state_dict["encoder.embed_tokens.weight"] = state_dict.pop("shared.weight")
    save_file(state_dict, str(te_dir / "model.safetensors"))
    (te_dir / "config.json").write_text(json.dumps(tiny.config))
    clip = text.load_text_encoder(te_dir, dtype=torch.float32)  # the text_encoder/ folder itself is accepted too
    assert max_diff(text.encode_prompt(clip, SHORT, MAX_LEN), reference_embeds(tiny.model, SHORT)) <= ATOL


def test_weight_file_errors(tiny, tmp_path):
    te_dir = tmp_path / "text_encoder"
    te_dir.mkdir()
    (te_dir / "config.json").write_text(json.dumps(tiny.config))
    (te_dir / "pytorch_model.bin").write_bytes(b"not opened")
    with pytest.raises(ValueError, match="safetensors only"):
        text.load_text_encoder(tmp_path)

    index = {"weight_map": {"shared.weight": "model-00001-of-00002.safetensors"}}
    (te_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="missing"):
        text.load_text_encoder(tmp_path)

    save_file({"shared.weight": tiny.state_dict["shared.weight"]}, str(te_dir / "model-00001-of-00002.safetensors"))
    with pytest.raises(ValueError, match="T5 weights missing"):
        text.load_text_encoder(tmp_path, dtype=torch.float32)


def test_folder_tokenizer_check(tiny, tmp_path, caplog):
    assert text.check_folder_tokenizer(tiny.root / "tokenizer") is True  # ComfyUI's tokenizer.json
    assert text.check_folder_tokenizer(tmp_path) is None

    import io

    import sentencepiece

    model = io.BytesIO()  # a sentencepiece vocabulary that is not T5's
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([SHORT, LONG] * 20), model_writer=model, vocab_size=60,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
    )
    (tmp_path / "spiece.model").write_bytes(model.getvalue())
    with caplog.at_level(logging.WARNING, logger=text.__name__):
        assert text.check_folder_tokenizer(tmp_path) is False
    assert "differs from ComfyUI's T5 v1.1 tokenizer" in caplog.text


# ------------------------------------------------------------------------------------ core's cogvideox CLIP (0.2x)
# Core's CLIPLoader picks the encoder from tensor shapes: a T5 without XXL's block 23 (d_ff 10240) is taken for
# Stable Audio's T5-base whatever the type, and for XXL shapes type "cogvideox" builds CogVideoXT5XXL from core's
# own t5_config_xxl.json (4.8B parameters). So CLIPLoader itself cannot load a tiny T5 in cogvideox mode; these
# tests build core's cogvideox CLIP the way that branch of comfy.sd.load_text_encoder_state_dicts does, with the
# tiny sizes as config overrides (clip_like_cliploader), and run core's own text path on it.
@pytest.mark.skipif(core_cogvideo is None, reason=NO_CORE_COGVIDEOX)
@pytest.mark.parametrize("prompt", ["", SHORT, LONG])
def test_core_cogvideox_clip_gives_the_same_226_token_embedding(tiny, folder_clip, prompt):
    clip = clip_like_cliploader("cogvideox", tiny.state_dict, tiny.config)
    ours = text.encode_prompt(folder_clip, prompt, text.MAX_TEXT_TOKENS)  # our T5 path (the diffusers folder)
    via_core_clip = text.encode_prompt(clip, prompt, text.MAX_TEXT_TOKENS)  # our text node on core's CLIP
    core_own = clip.encode_from_tokens(clip.tokenize(prompt))  # core's CLIPTextEncode: pads to 226 itself
    assert ours.shape == via_core_clip.shape == core_own.shape == (1, 226, 32)
    assert max_diff(via_core_clip, ours) <= ATOL
    assert max_diff(core_own, ours) <= ATOL
    assert max_diff(ours, reference_embeds(tiny.model, prompt, text.MAX_TEXT_TOKENS)) <= ATOL
