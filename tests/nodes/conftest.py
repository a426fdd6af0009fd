"""Node-test fixtures: the tiny demo checkpoints (vp_core.checkpoints.tiny_checkpoints, the layout of the official downloads)
in a session temp dir, registered as ComfyUI model folders, and the pack's models loaded once through its nodes.

Loaded models are shared by the tests of a session; the tests check that no node changes them.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from unittest import mock

import comfy.model_management
import numpy as np
import pytest
import torch

import folder_paths

from vp_node_helpers import CLIP_FRAMES, SECOND_STYLE_LORA, run


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> Path:
    """``<root>/videopainter/...`` (backbone, branch, ID LoRA) and ``<root>/loras/`` (two style LoRAs), registered
    with ``folder_paths.add_model_folder_path`` for the session."""
    from videopainter.nodes import paths  # noqa: F401  (registers the videopainter folder type first, as in ComfyUI)
    from videopainter.vp_core.checkpoints.tiny_checkpoints import write_tiny_checkpoints, write_tiny_style_lora

    root = tmp_path_factory.mktemp("models")
    write_tiny_checkpoints(root / "videopainter")
    write_tiny_style_lora(root)
    write_tiny_style_lora(root, name=SECOND_STYLE_LORA, seed=2)
    added = [("videopainter", str(root / "videopainter")), ("loras", str(root / "loras"))]
    for name, path in added:
        folder_paths.add_model_folder_path(name, path)
    yield root
    for name, path in added:
        if path in folder_paths.folder_names_and_paths.get(name, ([], set()))[0]:
            folder_paths.folder_names_and_paths[name][0].remove(path)


@pytest.fixture(scope="session")
def loaded(demo_models):
    """Backbone MODEL + VAE, branch, and the demo prompt's conditioning, each loaded once through the nodes."""
    from videopainter.nodes import loaders, text

    model, vae = run(loaders.VideoPainterBackboneLoader, model_folder="CogVideoX-5b-I2V", weight_dtype="fp32")
    (branch,) = run(loaders.VideoPainterBranchLoader, branch_folder="VideoPainter/checkpoints/branch", weight_dtype="fp32")
    (clip,) = run(text.VideoPainterTextEncoderLoader, folder="CogVideoX-5b-I2V", weight_dtype="fp32")
    positive, negative = run(text.VideoPainterTextEncode, clip=clip, prompt="a red ball rolls on the grass",
                             negative_prompt="", max_text_tokens=16)
    return SimpleNamespace(model=model, vae=vae, branch=branch, positive=positive, negative=negative)


@pytest.fixture(scope="session")
def clip_tensors():
    """A 40-frame 80x96 clip at 16 fps (IMAGE floats) with a moving square mask (MASK floats)."""
    import make_sample_clip

    video, mask = make_sample_clip.sample_frames(CLIP_FRAMES, width=80, height=96)
    return torch.from_numpy(video.astype(np.float32) / 255.0), torch.from_numpy(mask.astype(np.float32) / 255.0)


@pytest.fixture
def memory_calls():
    """``soft_empty_cache`` and ``unload_all_models`` wrapped, to check that a failed node released the memory."""
    mm = comfy.model_management
    with mock.patch.object(mm, "soft_empty_cache", wraps=mm.soft_empty_cache) as empty, \
            mock.patch.object(mm, "unload_all_models", wraps=mm.unload_all_models) as unload:
        yield empty, unload
