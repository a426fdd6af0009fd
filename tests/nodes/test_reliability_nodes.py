"""Reliability matrix (issue #9), the cases the server cannot be made to produce, with ``execute`` called directly:
an empty clip, infinite pixels, pickles that must never be unpickled, a MODEL of another architecture, a LoRA
partly for another model, and out-of-memory (simulated) with its memory released. Also the cheap input checks
(``validate_inputs``) and mask thresholding. Messages come from ``tests/reliability_cases.py`` (the README table).
"""
from __future__ import annotations

import gc
import logging
import pickle
import weakref
from pathlib import Path
from unittest import mock

import comfy.sd
import pytest
import torch
from safetensors.torch import load_file, save_file

from reliability_cases import DECODE_OOM_DETAIL, SAMPLER_OOM_DETAIL
from reliability_cases import message as msg
from videopainter.nodes import decode, encode, loaders, memory, sampler
from videopainter.vp_core.checkpoints import loaders as vp_loaders
from videopainter.vp_core.pipeline import sampling
from videopainter.vp_core.model.transformer import CogVideoXTransformer
from videopainter.vp_core.checkpoints.tiny_checkpoints import STYLE_LORA_NAME

from vp_node_helpers import run

WIDTH, HEIGHT = 80, 96


def encoded(video, mask, first_frame=None, **given):
    return run(encode.VideoPainterEncode, video=video, mask=mask, first_frame=first_frame, width=WIDTH, height=HEIGHT,
               source_fps=0.0, **given)


def tiny_sd3():
    """A real core MODEL of another architecture (SD3, one block) without any downloaded weights."""
    sd = {"x_embedder.proj.weight": torch.zeros(64, 16, 2, 2), "x_embedder.proj.bias": torch.zeros(64),
          "joint_blocks.0.context_block.attn.qkv.weight": torch.zeros(192, 64),
          "context_embedder.weight": torch.zeros(64, 32), "context_embedder.bias": torch.zeros(64),
          "final_layer.linear.weight": torch.zeros(64, 64)}
    return comfy.sd.load_diffusion_model_state_dict(sd)


class Evil:
    """Unpickling this creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def no_unpickling():
    """Every way to unpickle raises (and is recorded), so a test fails if anything tries."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("something tried to unpickle")

    with mock.patch("torch.load", side_effect=refuse) as torch_load, \
            mock.patch("pickle.load", side_effect=refuse) as pickle_load, \
            mock.patch("pickle.loads", side_effect=refuse) as pickle_loads, \
            mock.patch("pickle.Unpickler", side_effect=refuse) as unpickler:
        yield (torch_load, pickle_load, pickle_loads, unpickler)


# ------------------------------------------------------------------------------------------------ inputs


@pytest.mark.parametrize("shape", [(0, HEIGHT, WIDTH, 3), (0, 3, 0, 0)], ids=["empty batch", "core empty video"])
def test_5_zero_frames(clip_tensors, shape):
    _, mask = clip_tensors
    with pytest.raises(ValueError) as e:
        encoded(torch.zeros(shape), mask[:1])
    assert str(e.value) == msg("frames_zero")


def test_4_soft_mask_is_thresholded_and_a_3_channel_mask_is_read_from_its_first_channel(clip_tensors):
    video, mask = clip_tensors
    ramp = torch.linspace(0, 1, WIDTH)[None, None, :]  # soft values everywhere
    soft = (mask * 0.6 + ramp * 0.4).clamp(0, 1)
    _, _, hole, *_ = encoded(video, soft, threshold=0.5)
    assert set(hole.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(hole.bool(), soft > 0.5)
    _, _, hole_high, *_ = encoded(video, soft, threshold=0.9)
    assert torch.equal(hole_high.bool(), soft > 0.9) and hole_high.sum() < hole.sum()
    three = torch.stack([soft, torch.rand_like(soft), torch.rand_like(soft)], -1)
    _, _, hole_rgb, *_ = encoded(video, three, threshold=0.5)
    assert torch.equal(hole_rgb, hole)


def test_14_infinite_first_frame(clip_tensors):
    video, mask = clip_tensors
    first = video[:1].clone()
    first[0, 3, 4, 1] = float("inf")
    first[0, 5, 6, 2] = float("-inf")
    with pytest.raises(ValueError) as e:
        encoded(video, mask, first_frame=first)
    assert str(e.value) == msg("inf_first_frame")


def test_14_nan_video_and_mask(clip_tensors):
    video, mask = clip_tensors
    nan_mask = torch.full_like(mask[:1], float("nan"))
    with pytest.raises(ValueError, match=r"^mask: expected finite values in \[0, 1\]; got 7680 NaN and 0 infinite"):
        encoded(video, nan_mask)


def test_12_first_frame_of_another_size_is_resized_with_a_warning(clip_tensors, caplog):
    video, mask = clip_tensors
    small = torch.nn.functional.interpolate(video[:1].permute(0, 3, 1, 2), size=(48, 40)).permute(0, 2, 3, 1)
    with caplog.at_level(logging.WARNING):
        job = encoded(video, mask, first_frame=small)[0]
    assert job.pipeline.image.shape == (HEIGHT, WIDTH, 3)
    assert "first_frame is 40x48 (WxH) but the video is 80x96: resizing it (Lanczos)" in caplog.text


def test_12_first_frame_of_another_aspect_is_refused(clip_tensors):
    video, mask = clip_tensors
    wide = torch.nn.functional.interpolate(video[:1].permute(0, 3, 1, 2), size=(40, 48)).permute(0, 2, 3, 1)
    with pytest.raises(ValueError) as e:
        encoded(video, mask, first_frame=wide)
    assert str(e.value) == msg("first_frame_aspect")


def test_7_encode_checks_the_size_before_running():
    check = encode.VideoPainterEncode.validate_inputs
    assert check(width=80, height=96) is True
    assert check(width=None, height=96) is True  # linked: checked when the node runs
    assert check(width=81, height=96) == msg("size_16")
    assert check(width=4112, height=96).startswith("width x height: expected multiples of 16 between 16 and 4096")


def test_7_linked_size_is_checked_when_the_node_runs(clip_tensors):
    video, mask = clip_tensors
    with pytest.raises(ValueError) as e:
        run(encode.VideoPainterEncode, video=video, mask=mask, width=81, height=96)
    assert str(e.value) == msg("size_16")


def test_apply_branch_checks_its_ranges():
    check = loaders.VideoPainterApplyBranch.validate_inputs
    assert check(start_percent=0.0, end_percent=1.0) is True
    assert check(start_percent=0.8, end_percent=0.2) == msg("branch_range")
    # out of its own range: named by the FLOAT check every node shares (nodes/checks.py)
    assert check(start_percent=-0.5, end_percent=0.2) == "start_percent: expected a number between 0 and 1; got -0.5"
    assert check(start_percent=None, end_percent=0.2) is True


# ------------------------------------------------------------------------------------------------ models


def test_11_model_of_another_architecture_everywhere(loaded, demo_models, clip_tensors):
    sd3 = tiny_sd3()
    expected = msg("wrong_model")
    calls = {
        "apply branch": lambda: run(loaders.VideoPainterApplyBranch, model=sd3, branch=loaded.branch),
        "ID LoRA": lambda: run(loaders.VideoPainterApplyIDLora, model=sd3,
                               lora_name="videopainter/VideoPainterID/checkpoints/pytorch_lora_weights.safetensors"),
        "style LoRA": lambda: run(loaders.VideoPainterStyleLora, model=sd3, lora_name=f"loras/{STYLE_LORA_NAME}"),
        "sampler": lambda: run(sampler.VideoPainterSampler, model=sd3, vae=loaded.vae,
                               inpaint=encoded(*clip_tensors)[0], positive=loaded.positive, negative=loaded.negative,
                               steps=1, window_frames=17),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == expected, name
    with pytest.raises(ValueError, match="got a VideoPainterBranch model"):  # the branch's own patcher as MODEL
        run(loaders.VideoPainterApplyBranch, model=loaded.branch, branch=loaded.branch)


def test_8_branch_for_another_backbone(loaded, tmp_path):
    import json

    import comfy.ops
    from videopainter.vp_core.checkpoints import tiny_checkpoints as tiny
    from videopainter.vp_core.model.branch import VideoPainterBranch
    from videopainter.vp_core.model.config import CogVideoXConfig

    cfg = {**tiny.TRANSFORMER, "num_layers": 2, "num_attention_heads": 3}
    with torch.device("meta"):
        shapes = VideoPainterBranch(CogVideoXConfig.from_dict(cfg), operations=comfy.ops.disable_weight_init).state_dict()
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    save_file({k: torch.zeros(v.shape) for k, v in shapes.items()}, str(tmp_path / vp_loaders.WEIGHTS_NAME))
    other = vp_loaders.load_branch(tmp_path, torch.float32)
    with pytest.raises(ValueError) as e:
        run(loaders.VideoPainterApplyBranch, model=loaded.model, branch=other)
    assert str(e.value) == msg("branch_other_backbone")


def test_10_lora_partly_for_another_model_warns_listing_the_unmatched_layers(loaded, demo_models, caplog):
    style = load_file(str(demo_models / "loras" / STYLE_LORA_NAME))
    sdxl = {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight": torch.zeros(4, 320),
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight": torch.zeros(320, 4)}
    path = demo_models / "loras" / "mixed.safetensors"
    save_file({**style, **sdxl}, str(path))
    try:
        with caplog.at_level(logging.WARNING):
            (out,) = run(loaders.VideoPainterStyleLora, model=loaded.model, lora_name="loras/mixed.safetensors")
    finally:
        path.unlink()
    assert msg("lora_partial", demo_models) in caplog.text
    assert out.patches, "the matching layers were still applied"


# ------------------------------------------------------------------------------------------------ pickles


@pytest.mark.parametrize("suffix", vp_loaders.PICKLE_SUFFIXES)
def test_9_pickle_files_are_refused_without_unpickling(tmp_path, no_unpickling, suffix):
    marker = tmp_path / "UNPICKLED"
    path = tmp_path / f"pytorch_lora_weights{suffix}"
    path.write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(vp_loaders.CheckpointError, match=r"files are pickles, which can run code when loaded"):
        vp_loaders.read_safetensors(path)
    assert not marker.exists()
    assert not any(m.called for m in no_unpickling)


def test_9_pickle_renamed_to_safetensors_is_not_unpickled(tmp_path, no_unpickling):
    marker = tmp_path / "UNPICKLED"
    path = tmp_path / "bad.safetensors"
    path.write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(vp_loaders.CheckpointError) as e:
        vp_loaders.read_safetensors(path)
    assert str(e.value) == msg("pickle_renamed", tmp_path)
    assert not marker.exists() and not any(m.called for m in no_unpickling)


def test_9_lora_nodes_refuse_pickles(loaded, demo_models, no_unpickling):
    marker = demo_models / "UNPICKLED"
    path = demo_models / "loras" / "evil.ckpt"
    path.write_bytes(pickle.dumps(Evil(marker)))
    try:
        for node_cls in (loaders.VideoPainterApplyIDLora, loaders.VideoPainterStyleLora):
            with pytest.raises(vp_loaders.CheckpointError, match=r"evil\.ckpt: \.ckpt files are pickles"):
                run(node_cls, model=loaded.model, lora_name="loras/evil.ckpt")
    finally:
        path.unlink()
    assert not marker.exists() and not any(m.called for m in no_unpickling)


# ------------------------------------------------------------------------------------------------ out of memory


def _oom_after_allocating(refs: list, detail: str):
    def fail(*_args, **_kwargs):
        hog = torch.ones(256, 1024)  # what a real window holds when the allocator gives up
        refs.append(weakref.ref(hog))
        raise torch.OutOfMemoryError(detail)
    return fail


def test_15_out_of_memory_in_a_window_names_the_settings_and_frees_memory(loaded, clip_tensors, memory_calls):
    (model,) = run(loaders.VideoPainterApplyBranch, model=loaded.model, branch=loaded.branch)
    inpaint = encoded(*clip_tensors)[0]
    refs: list = []
    with mock.patch.object(CogVideoXTransformer, "forward", _oom_after_allocating(refs, SAMPLER_OOM_DETAIL)):
        with pytest.raises(memory.VideoPainterOutOfMemoryError) as e:
            run(sampler.VideoPainterSampler, model=model, vae=loaded.vae, inpaint=inpaint, positive=loaded.positive,
                negative=loaded.negative, steps=1, window_frames=17)
    assert str(e.value) == msg("oom_sampler")
    for setting in ("vae_tiling", "window_frames", "fp8", "--lowvram"):
        assert setting in str(e.value)
    empty, unload = memory_calls
    assert empty.called and unload.called
    assert e.value.__context__ is None and e.value.__cause__ is None
    gc.collect()
    assert refs and refs[0]() is None, "the failed window's tensors are still referenced"


def test_15_out_of_memory_while_decoding(loaded, memory_calls):
    latent = {"samples": torch.zeros(1, 16, 5, 12, 10), "videopainter": {"output_frames": 17}}
    refs: list = []
    with mock.patch.object(sampling, "decode", _oom_after_allocating(refs, DECODE_OOM_DETAIL)):
        with pytest.raises(memory.VideoPainterOutOfMemoryError) as e:
            run(decode.VideoPainterDecode, vae=loaded.vae, latent=latent, tiling=False)
    assert str(e.value) == msg("oom_decode")
    empty, unload = memory_calls
    assert empty.called and unload.called
    assert e.value.__context__ is None
    gc.collect()
    assert refs and refs[0]() is None, "the failed call's tensors are still referenced"


def test_15_cpu_allocation_failure_counts_as_out_of_memory_and_other_errors_pass_through():
    def cpu_oom():
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:119] DefaultCPUAllocator: can't allocate memory: you tried "
                           "to allocate 21474836480 bytes")

    with pytest.raises(memory.VideoPainterOutOfMemoryError, match=r"^out of memory while decoding \(\[enforce fail"):
        memory.call_releasing_memory(cpu_oom, "decoding", memory.DECODE_REMEDY)
    with pytest.raises(ValueError, match="^unrelated$"):
        memory.call_releasing_memory(lambda: (_ for _ in ()).throw(ValueError("unrelated")), "decoding", "x")
    assert memory.call_releasing_memory(lambda: 7, "decoding", "x") == 7
