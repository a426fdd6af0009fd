"""Text nodes, ``execute`` called directly: the loader on a tiny CogVideoX-layout folder, the encoder's outputs in
ComfyUI's CONDITIONING format and equal to diffusers' reference ``_get_t5_prompt_embeds`` (1e-5, fp32)."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

import folder_paths
from videopainter.nodes import text as text_nodes
from videopainter.vp_core.checkpoints import text

MAX_LEN = 16
ATOL = 1e-5


def tiny_t5_folder(root):
    """``root/<name>/text_encoder`` (sharded safetensors + index) and ``tokenizer/``, plus the transformers model."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(1)
    config = T5Config(
        d_model=32, d_kv=8, num_heads=4, num_layers=2, d_ff=64, vocab_size=32128,  # real vocab: real token ids
        feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,  # T5 v1.1
    )
    model = T5EncoderModel(config).eval()
    model.save_pretrained(root / "CogVideoX-tiny" / "text_encoder", max_shard_size="1MB")
    text.t5_tokenizer().save_pretrained(root / "CogVideoX-tiny" / "tokenizer")
    return model


def reference_embeds(model, prompt):
    from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import CogVideoXImageToVideoPipeline

    stub = SimpleNamespace(tokenizer=text.t5_tokenizer(), text_encoder=model, _execution_device=torch.device("cpu"))
    with torch.no_grad():
        return CogVideoXImageToVideoPipeline._get_t5_prompt_embeds(
            stub, prompt, max_sequence_length=MAX_LEN, device=torch.device("cpu"), dtype=torch.float32
        )


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("videopainter")
    model = tiny_t5_folder(root)
    (root / "VideoPainter" / "checkpoints").mkdir(parents=True)  # a videopainter folder without text_encoder/
    return SimpleNamespace(path=root, model=model)


@pytest.fixture
def registered(models_root, monkeypatch):
    """The ``videopainter`` model folder type pointing at the tiny models (the pack registers the real one)."""
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "videopainter", ([str(models_root.path)], set()))
    return models_root


@pytest.fixture
def clip(registered):
    (loaded,) = text_nodes.VideoPainterTextEncoderLoader.execute(folder="CogVideoX-tiny", weight_dtype="fp32").result
    return loaded


def test_loader_lists_only_folders_with_a_text_encoder(registered):
    assert text_nodes.text_encoder_folders() == ["CogVideoX-tiny"]  # not VideoPainter/, nor text_encoder/ itself
    schema = text_nodes.VideoPainterTextEncoderLoader.define_schema()
    assert schema.inputs[0].options == ["CogVideoX-tiny"]


def test_loader_lists_nothing_when_the_folder_type_is_not_registered(monkeypatch):
    monkeypatch.delitem(folder_paths.folder_names_and_paths, "videopainter", raising=False)
    assert text_nodes.text_encoder_folders() == []
    with pytest.raises(ValueError, match="folder: 'CogVideoX-tiny' not found"):
        text_nodes.VideoPainterTextEncoderLoader.execute(folder="CogVideoX-tiny")


def test_loader_refuses_unknown_folder_and_dtype(registered):
    with pytest.raises(ValueError, match="folder: 'VideoPainter' has no text_encoder/"):
        text_nodes.VideoPainterTextEncoderLoader.execute(folder="VideoPainter")
    with pytest.raises(ValueError, match="folder: .*only names listed"):
        text_nodes.VideoPainterTextEncoderLoader.execute(folder="../CogVideoX-tiny")
    with pytest.raises(ValueError, match="weight_dtype"):
        text_nodes.VideoPainterTextEncoderLoader.execute(folder="CogVideoX-tiny", weight_dtype="int8")


def test_encode_outputs_reference_conditioning(registered, clip):
    out = text_nodes.VideoPainterTextEncode.execute(
        clip=clip, prompt="A white cat walks along a garden path.", negative_prompt="", max_text_tokens=MAX_LEN
    )
    positive, negative = out.result
    for cond, prompt in ((positive, "A white cat walks along a garden path."), (negative, "")):
        assert isinstance(cond, list) and len(cond) == 1 and cond[0][1] == {}
        embedding = cond[0][0]
        assert embedding.shape == (1, MAX_LEN, 32)
        assert (embedding - reference_embeds(registered.model, prompt)).abs().max().item() <= ATOL
    assert negative[0][0].abs().sum() > 0  # the empty negative prompt is encoded, not zeros


def test_encode_does_not_modify_its_inputs(clip):
    weights = copy.deepcopy(clip.cond_stage_model.state_dict())
    patches, layer_idx, options = dict(clip.patcher.object_patches), clip.layer_idx, dict(clip.tokenizer_options)
    prompt, negative = "a dog", "blurry"
    text_nodes.VideoPainterTextEncode.execute(
        clip=clip, prompt=prompt, negative_prompt=negative, max_text_tokens=MAX_LEN
    )
    assert (prompt, negative) == ("a dog", "blurry")
    assert clip.patcher.object_patches == patches and clip.layer_idx == layer_idx and clip.tokenizer_options == options
    after = clip.cond_stage_model.state_dict()
    assert all(torch.equal(weights[k], after[k]) for k in weights)


def test_schemas():
    encode = text_nodes.VideoPainterTextEncode.define_schema()
    assert encode.node_id == "VideoPainterTextEncode" and encode.category == "videopainter/conditioning"
    inputs = {i.id: i for i in encode.inputs}
    assert list(inputs) == ["clip", "prompt", "negative_prompt", "max_text_tokens"]
    assert inputs["max_text_tokens"].default == 226 and "max_text_seq_length" in inputs["max_text_tokens"].tooltip
    assert inputs["negative_prompt"].default == "" and inputs["prompt"].multiline
    assert [o.id for o in encode.outputs] == ["positive", "negative"]
    assert all(n.define_schema().description for n in text_nodes.NODES)
    assert all(n.define_schema().node_id.startswith("VideoPainter") for n in text_nodes.NODES)
