"""vp_core.checkpoints.core_interop: the transformer key table between core's CogVideoX layout and diffusers' (this pack's),
both ways on the tiny demo transformer, and the backbone loader reading a single file in core's layout.

Where the host has native CogVideoX (0.27.0), the converted keys and shapes are also checked against core's own
``CogVideoXTransformer3DModel``; on 0.3.75 that one test is skipped (the host lacks native CogVideoX).
"""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from safetensors.torch import save_file

from videopainter.vp_core.checkpoints import core_interop, loaders
from videopainter.vp_core.checkpoints import tiny_checkpoints as tiny

HAS_CORE_COGVIDEOX = importlib.util.find_spec("comfy.ldm.cogvideo") is not None


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tiny.write_tiny_checkpoints(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def diffusers_sd(tiny_root):
    return loaders.read_model_folder(tiny_root / "CogVideoX-5b-I2V" / "transformer")


def test_round_trip_both_ways(diffusers_sd):
    core = core_interop.to_core_keys(diffusers_sd)
    assert core_interop.is_core_layout(core) and not core_interop.is_core_layout(diffusers_sd)
    assert not any(k.startswith("transformer_blocks.") or ".attn1." in k or ".ff.net." in k for k in core)
    assert {"blocks.0.q.weight", "blocks.3.attn_out.bias", "blocks.1.ff_proj.weight", "blocks.2.ff_out.bias",
            "blocks.0.norm_k.weight", "time_embedding_linear_1.weight", "patch_embed.pos_embedding"} <= core.keys()
    back = core_interop.to_diffusers_keys(core)
    assert back.keys() == diffusers_sd.keys()
    assert all(back[k] is diffusers_sd[k] for k in back)  # renamed, never copied
    assert core_interop.to_core_keys(back).keys() == core.keys()


def test_unknown_block_module_is_an_error():
    with pytest.raises(KeyError, match="blocks.0.attn2.to_q.weight"):
        core_interop.to_core_keys({"transformer_blocks.0.attn2.to_q.weight": torch.zeros(1)})


@pytest.mark.skipif(not HAS_CORE_COGVIDEOX, reason="this ComfyUI host lacks native CogVideoX (comfy/ldm/cogvideo, 0.2x)")
def test_core_layout_is_cores_own_model(diffusers_sd):
    import comfy.ops
    from comfy.ldm.cogvideo.model import CogVideoXTransformer3DModel

    cfg = {k: v for k, v in tiny.TRANSFORMER.items() if k in CogVideoXTransformer3DModel.__init__.__code__.co_varnames}
    # Core computes a sincos table for learned embeddings too, which its code cannot build at the tiny width (32);
    # pos_embedding is the same key in both layouts, so it is left out of this comparison.
    cfg["use_learned_positional_embeddings"] = False
    model = CogVideoXTransformer3DModel(**cfg, operations=comfy.ops.disable_weight_init)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in core_interop.to_core_keys(diffusers_sd).items() if k != "patch_embed.pos_embedding"}
    assert got == want


def test_backbone_loader_reads_a_core_layout_single_file(tiny_root, diffusers_sd, tmp_path):
    folder = tmp_path / "core_layout"
    folder.mkdir()
    prefixed = {f"model.diffusion_model.{k}": v.contiguous() for k, v in core_interop.to_core_keys(diffusers_sd).items()}
    save_file(prefixed, str(folder / "cogvideox_tiny_i2v.safetensors"))
    (folder / "config.json").write_text(json.dumps(tiny.TRANSFORMER))
    from_core = loaders.load_backbone(folder / "cogvideox_tiny_i2v.safetensors", torch.float32)
    from_folder = loaders.load_backbone(tiny_root / "CogVideoX-5b-I2V", torch.float32)
    a, b = from_core.model.state_dict(), from_folder.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
