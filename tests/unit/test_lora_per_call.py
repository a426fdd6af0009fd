"""On a CPU load device the backbone's LoRA patches are applied per call, never merged (``vp_core/checkpoints/patcher.py``).

A merged LoRA keeps a patched copy of every patched weight plus ComfyUI's backup of the original (2.95 GiB for the ID
LoRA at full size, bench/README.md "Real size on CPU"). Per call, ``comfy.ops`` casts the weight and ComfyUI's
``LowVramPatch`` applies the patches to that call's copy. Checked here on the tiny conformance weights:

* after ``load_models_gpu`` (what the sampler calls) no backup exists and every patched layer still holds the very
  tensor it was loaded with (same storage, same values), its patches in a ``LowVramPatch`` weight function;
* the outputs equal the merged path's BIT FOR BIT in fp32 (the fixture's dtype): both compute ``W + s * alpha * B @ A``
  through ``comfy.lora.calculate_weight`` in fp32, and the merged path's rounding back to fp32 is the identity;
* in bf16 they differ by rounding only: per call the LoRA delta is computed in bf16 (``LowVramPatch`` works in the
  weight's dtype, as on a GPU's low-VRAM path), merged in fp32 and rounded once: within one bf16 step at each
  weight tensor's scale;
* strength changes, re-applying and removing the LoRA between runs give each configuration's own result;
* where the load device is an accelerator, a full load still merges (ComfyUI's fast path there).
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import comfy.lora
import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import comfy.utils
from videopainter.vp_core.checkpoints import attach, loaders
from videopainter.vp_core.checkpoints import patcher as vp_patcher
from videopainter.vp_core.conformance import runner

from conformance_fixture import FIXTURE, needs_fixture, released_fixture

pytestmark = needs_fixture("cases")  # every test here reads the fixtures
CASE = "forward_id_resample"  # ID resampling with the ID LoRA on to_q/k/v/out of every block
ID_LORA = FIXTURE / "id_lora" / "pytorch_lora_weights.safetensors"


fx = pytest.fixture(scope="module")(released_fixture)


def unload(*patchers) -> None:
    mm.unload_all_models()
    for p in patchers:
        p.detach()


def run_case(fx) -> dict[str, torch.Tensor]:
    d = FIXTURE / "cases" / CASE
    inp, params = load_file(str(d / "inputs.safetensors")), json.loads((d / "params.json").read_text())
    return {k: v.clone() for k, v in runner.RUNNERS[CASE](fx, inp, params).items()}


def patched_layers(patcher) -> dict[str, torch.nn.Module]:
    keys = {k for k in patcher.patches if k.endswith(".weight")}
    assert keys, "the ID LoRA patched nothing"
    return {k: comfy.utils.get_attr(patcher.model, k.rsplit(".", 1)[0]) for k in sorted(keys)}


def test_cpu_load_keeps_no_backup_and_no_patched_copy(fx):
    bb, br = fx.backbone(True), fx.branch()
    unload(bb, br)
    layers = patched_layers(bb)
    before = {k: (m.weight.data_ptr(), m.weight.detach().clone()) for k, m in layers.items()}
    run_case(fx)  # loads through comfy.model_management.load_models_gpu, as Sampler.run does
    assert vp_patcher.patches_per_call(bb.load_device)
    assert bb.backup == {}, f"{len(bb.backup)} backups kept, e.g. {next(iter(bb.backup))}"
    assert bb.lowvram_patch_counter() == len(bb.patches)
    for key, m in layers.items():
        ptr, values = before[key]
        assert m.weight.data_ptr() == ptr and torch.equal(m.weight, values), f"{key}: the weight was replaced or patched"
        assert any(isinstance(f, comfy.model_patcher.LowVramPatch) for f in m.weight_function), key
    unload(bb, br)


def test_per_call_output_equals_merged_bit_for_bit(fx, monkeypatch):
    bb, br = fx.backbone(True), fx.branch()
    unload(bb, br)
    per_call = run_case(fx)
    assert bb.backup == {}
    unload(bb, br)
    monkeypatch.setattr(vp_patcher, "patches_per_call", lambda device: False)  # what an accelerator load does
    merged = run_case(fx)
    assert len(bb.backup) == len(bb.patches) and bb.lowvram_patch_counter() == 0  # this run really merged
    unload(bb, br)
    assert sorted(per_call) == sorted(merged)
    for k in merged:
        assert torch.equal(per_call[k], merged[k]), f"{k}: max |diff| {(per_call[k] - merged[k]).abs().max():.3g}"


def test_bf16_per_call_weights_match_merged_within_rounding():
    model = loaders.load_backbone(FIXTURE / "cogvideox", torch.bfloat16)
    model, _ = attach.attach_lora(model, str(ID_LORA), 1.0, "id")
    mm.load_models_gpu([model])
    try:
        assert model.backup == {}
        worst = 0.0
        for key, m in patched_layers(model).items():
            x = torch.zeros(1, m.in_features, dtype=torch.bfloat16)
            per_call, _ = comfy.ops.cast_bias_weight(m, x)  # what the layer's forward multiplies with
            base = m.weight.detach().float()
            model.patch_weight_to_device(key)  # ComfyUI's merge: fp32 arithmetic, rounded once to bf16
            merged = m.weight.detach().float()
            delta = comfy.lora.calculate_weight(model.patches[key], base.clone(), key) - base
            assert delta.abs().max() > 0, key
            diff = float((per_call.float() - merged).abs().max())
            # one bf16 step at the tensor's scale (2^-7 of its largest |W| + |delta|): the delta is rounded to bf16
            # per call and the sum rounded again, merged rounds once (measured up to 0.0039 = 2^-8 against bounds of
            # ~0.007); a LoRA left out or at another strength is off by up to |delta| (~0.3 here)
            bound = 2 ** -7 * float((base.abs() + delta.abs()).max())
            assert diff <= bound, f"{key}: max |diff| {diff:.3g} > {bound:.3g}"
            worst = max(worst, diff)
        assert worst > 0  # bf16: the two orders of rounding do differ somewhere
    finally:
        unload(model)


def test_strength_change_reapply_and_remove_between_runs(fx):
    base, br = fx.backbone(False), fx.branch()
    unload(base, br)
    key = ("backbone", True)
    saved = fx._cache.get(key)
    try:
        def with_model(model) -> dict[str, torch.Tensor]:
            fx._cache[key] = model  # the case reads the backbone with the ID LoRA from here
            return run_case(fx)

        plain = with_model(base)  # no patches: a plain full load
        full, _ = attach.attach_lora(base, str(ID_LORA), 1.0, "id")
        half, _ = attach.attach_lora(full, str(ID_LORA), 0.5, "id")  # re-applied: replaces, strength 0.5
        out_full = with_model(full)
        out_half = with_model(half)
        again = with_model(full)
        removed = with_model(base)
        names = sorted(out_full)
        assert any(not torch.equal(out_full[k], plain[k]) for k in names)  # the LoRA acts
        assert any(not torch.equal(out_full[k], out_half[k]) for k in names)  # the strength acts
        assert all(torch.equal(again[k], out_full[k]) for k in names)
        assert all(torch.equal(removed[k], plain[k]) for k in names)
        for p in (full, half):
            assert p.backup == {}
    finally:
        if saved is None:
            fx._cache.pop(key, None)
        else:
            fx._cache[key] = saved
        unload(base, br)


def test_accelerator_load_device_still_merges(fx):
    """Where the load device is an accelerator the merged path (ComfyUI's fast path there) is unchanged. No GPU is
    needed to see the decision: a patcher whose load device is CUDA, loaded fully onto the CPU."""
    bb = fx.backbone(True)
    unload(bb, fx.branch())
    gpu = vp_patcher.VideoPainterPatcher(bb.model, torch.device("cuda"), torch.device("cpu"))
    gpu.patches = {k: v[:] for k, v in bb.patches.items()}
    assert not vp_patcher.patches_per_call(gpu.load_device)
    try:
        gpu.patch_model(torch.device("cpu"))  # lowvram_model_memory 0: a full load, as load_models_gpu's fast path
        assert len(gpu.backup) == len(gpu.patches) and gpu.lowvram_patch_counter() == 0
    finally:
        gpu.unpatch_model(torch.device("cpu"))
    assert gpu.backup == {}
