"""The backbone loader lists and loads CogVideoX-5b-I2V where users already have it, read in place: diffusers
folders under models/CogVideo (kijai's CogVideoX wrapper: transformer/ + vae/ + scheduler/, no model_index.json)
and models/diffusers, and single transformer files in models/diffusion_models (core ComfyUI's key layout or
diffusers'). Text-to-video CogVideoX and other models there are not listed."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

import folder_paths
from videopainter.nodes import loaders as loader_nodes
from videopainter.nodes import paths
from videopainter.vp_core.checkpoints import core_interop, loaders
from videopainter.vp_core.checkpoints.vae import video_vae
from vp_node_helpers import run


@pytest.fixture(scope="module")
def shared_models(demo_models, tmp_path_factory):
    tiny = demo_models / "videopainter" / "CogVideoX-5b-I2V"
    root = tmp_path_factory.mktemp("shared_models")
    kijai = root / "CogVideo" / "CogVideoX-5b-I2V"
    for part in ("transformer", "vae", "scheduler"):
        shutil.copytree(tiny / part, kijai / part)
    shutil.copytree(tiny, root / "diffusers" / "CogVideoX-5b-I2V")
    t2v = root / "CogVideo" / "CogVideoX-5b"  # text-to-video: 16 input channels, not for VideoPainter
    shutil.copytree(tiny / "transformer", t2v / "transformer")
    cfg = json.loads((t2v / "transformer" / "config.json").read_text())
    (t2v / "transformer" / "config.json").write_text(json.dumps({**cfg, "in_channels": 16}))
    sd = loaders.read_model_folder(tiny / "transformer")
    single = root / "diffusion_models" / "tiny_i2v"
    single.mkdir(parents=True)
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in core_interop.to_core_keys(sd).items()},
              str(single / "core_layout.safetensors"))
    save_file({k: v.contiguous() for k, v in sd.items()}, str(single / "diffusers_layout.safetensors"))
    (single / "config.json").write_text((tiny / "transformer" / "config.json").read_text())
    save_file({"double_blocks.0.img_attn.qkv.weight": torch.zeros(4, 4)}, str(root / "diffusion_models" / "flux.safetensors"))
    added = [(kind, str(root / kind)) for kind in ("CogVideo", "diffusers", "diffusion_models")]
    for kind, path in added:
        folder_paths.add_model_folder_path(kind, path)
    yield root
    for kind, path in added:
        folder_paths.folder_names_and_paths[kind][0].remove(path)


def test_lists_shared_folders_and_single_files(shared_models):
    listed = paths.backbone_folders()
    assert listed[0] == "CogVideoX-5b-I2V"  # models/videopainter first
    assert [n for n in listed if "/" in n and not n.startswith("CogVideoX")] == [
        "CogVideo/CogVideoX-5b-I2V", "diffusers/CogVideoX-5b-I2V",
        "diffusion_models/tiny_i2v/core_layout.safetensors", "diffusion_models/tiny_i2v/diffusers_layout.safetensors",
    ]


@pytest.mark.parametrize("name", ["CogVideo/CogVideoX-5b-I2V", "diffusers/CogVideoX-5b-I2V",
                                  "diffusion_models/tiny_i2v/core_layout.safetensors"])
def test_loads_in_place_with_the_same_weights(shared_models, loaded, name):
    before = sorted(p for p in shared_models.rglob("*"))
    model, vae = run(loader_nodes.VideoPainterBackboneLoader, model_folder=name, weight_dtype="fp32")
    a, b = model.model.state_dict(), loaded.model.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (vae is None) == name.endswith(".safetensors")  # a single transformer file has no VAE
    assert sorted(p for p in shared_models.rglob("*")) == before  # nothing copied or written


def test_shared_names_refuse_traversal(shared_models):
    with pytest.raises(ValueError, match="no absolute paths or '..'"):
        paths.resolve_backbone("CogVideo/../../etc")


def test_a_missing_vae_is_a_clear_error():
    with pytest.raises(ValueError, match="vae: no VAE .*connect Load VAE"):
        video_vae(None)
