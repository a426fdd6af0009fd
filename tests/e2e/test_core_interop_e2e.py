"""Native CogVideoX interop through the real server (hosts with core CogVideoX, ComfyUI 0.2x; skipped on 0.3.75).

One inpainting run with core's pieces: the backbone from a single transformer file in core's key layout
(``models/diffusion_models``, listed by the backbone loader) and the VAE from core's Load VAE, wired into the
sampler and decode. It must give exactly the frames of the run with this pack's own loaders on the same weights
(a diffusers folder with the tiny transformer and the same VAE).

Not tiny, and why: core's Load VAE builds its CogVideoX VAE at the real size whatever the file holds, so the VAE is
a random one of the real shapes (``tests/interop_models.py``), run on 9 frames (one 9-frame window) at the demo size (80x96 px, which
the tiny transformer's learned positional embedding fixes). Core's Load CLIP cannot load a tiny
T5 in ``cogvideox`` mode at all (it picks the encoder from tensor shapes and builds the full T5-XXL from its own
config), so the text side is proven at node level (``tests/unit/test_text.py``, core's cogvideox CLIP built as its
loader does, with the tiny sizes as overrides).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file

from videopainter.vp_headless import comfy_client as cc
from e2e_helpers import preview_pixels
from image_path import image_path
from interop_models import NO_CORE_COGVIDEOX, write_full_size_vae

REPO = Path(__file__).resolve().parents[2]
INPAINT = REPO / "workflows" / "api" / "videopainter_inpaint.json"
CORE_FILE = "diffusion_models/vp_e2e_core/cogvideox_tiny_i2v.safetensors"
VAE_FILE = "vp_e2e_cogvideox_vae/diffusion_pytorch_model.safetensors"
FOLDER = "vp_e2e_full_vae"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def native(server):
    types = cc.object_info(server)["CLIPLoader"]["input"]["required"]["type"]
    options = types[0] if isinstance(types[0], list) else types[1].get("options", [])
    if "cogvideox" not in options:
        pytest.skip(NO_CORE_COGVIDEOX)
    return server


@pytest.fixture(scope="module")
def interop_models(native, models_dir):
    from videopainter.vp_core.checkpoints import core_interop, loaders

    tiny = models_dir / "videopainter" / "CogVideoX-5b-I2V"
    vae_dir = models_dir / "vae" / "vp_e2e_cogvideox_vae"
    write_full_size_vae(vae_dir)
    ours = models_dir / "videopainter" / FOLDER  # this pack's layout: tiny transformer, the full-size VAE
    for part in ("transformer", "scheduler"):
        shutil.copytree(tiny / part, ours / part, dirs_exist_ok=True)
    shutil.copy(tiny / "model_index.json", ours / "model_index.json")
    if not (ours / "vae").exists():
        (ours / "vae").symlink_to(vae_dir, target_is_directory=True)
    single = models_dir / CORE_FILE
    single.parent.mkdir(parents=True, exist_ok=True)
    sd = loaders.read_model_folder(tiny / "transformer")
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in core_interop.to_core_keys(sd).items()},
              str(single))
    shutil.copy(tiny / "transformer" / "config.json", single.parent / "config.json")
    yield
    for path in (ours, single.parent, vae_dir):
        shutil.rmtree(path, ignore_errors=True)


def prompt(**sets) -> dict:
    # The IMAGE path (one 9-frame batch previewed as PNGs): the frames compared exactly, without a video codec.
    p = image_path(cc.apply_overrides(cc.load_workflow(INPAINT), {
        **cc.demo_sets(INPAINT), "sampler.steps": 1, "sampler.window_frames": 9, **sets}))
    for title in ("save", "create_video", "mask_preview_image", "mask_preview"):
        del p[cc.find_node(p, title)]
    p["20"] = {"class_type": "PreviewImage", "inputs": {"images": [cc.find_node(p, "composite"), 0]}}
    for source, target, name in (("video_components", "encode", "video"), ("mask_components", "mask_to_mask", "image")):
        nid = str(100 + len(p))
        p[nid] = {"class_type": "ImageFromBatch", "inputs": {"image": [cc.find_node(p, source), 0], "batch_index": 0, "length": 9}}
        p[cc.find_node(p, target)]["inputs"][name] = [nid, 0]
    return p


def test_backbone_loader_lists_the_core_layout_file(native, interop_models):
    listed = cc.object_info(native)["VideoPainterBackboneLoader"]["input"]["required"]["model_folder"][1]["options"]
    assert CORE_FILE in listed and FOLDER in listed
    vaes = cc.object_info(native)["VAELoader"]["input"]["required"]["vae_name"][0]
    assert VAE_FILE in vaes


def test_core_vae_and_core_layout_transformer_give_the_same_frames(native, interop_models):
    ours = cc.submit(native, prompt(**{"backbone.model_folder": FOLDER}), timeout=900)
    assert ours.ok, f"{ours.status}: {ours.error}"
    p = prompt(**{"backbone.model_folder": CORE_FILE})
    p["90"] = {"class_type": "VAELoader", "_meta": {"title": "core_vae"}, "inputs": {"vae_name": VAE_FILE}}
    for title in ("sampler", "decode"):
        p[cc.find_node(p, title)]["inputs"]["vae"] = ["90", 0]
    core = cc.submit(native, p, timeout=900)
    assert core.ok, f"{core.status}: {core.error}"
    a, b = preview_pixels(native, ours), preview_pixels(native, core)
    assert len(a) == len(b) == 9 and a[0].shape == (80, 96, 3)  # the sample clip's size (composite keeps it)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_single_file_backbone_without_a_vae_is_a_clear_error(native, interop_models):
    result = cc.submit(native, prompt(**{"backbone.model_folder": CORE_FILE}), timeout=900)
    assert result.status == "error" and result.error.node_type == "VideoPainterSampler", result.error
    assert "vae: no VAE (a backbone loaded from a single transformer file has none)" in result.error.exception_message
