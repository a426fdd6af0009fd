"""Partial loading (ComfyUI's lowvram path) leaves the forward passes unchanged.

How partial loading is reached on a CPU-only machine: ``load_models_gpu`` computes a weight budget only for an
accelerator load device (for the CPU it forces ``VRAMState.DISABLED`` and loads fully), then calls
``LoadedModel(patcher).model_load(budget)`` -> ``ModelPatcher.partially_load`` -> ``ModelPatcher.load(...,
lowvram_model_memory=budget)``. These tests call that same ``LoadedModel.model_load`` with an explicit budget (a
fraction of ``model_size()``), which is exactly what the memory manager does on a GPU that cannot hold the model;
and ``ModelPatcher.partially_unload``, which is what ``free_memory`` does to a loaded model when memory is needed.
Load and offload device are both the CPU here, so no bytes move, but the code path is the real one: the modules
that did not fit are switched to ``comfy_cast_weights`` (weights cast per call by ``comfy.ops``) and the ID LoRA on
them is applied on the fly through ``LowVramPatch`` weight functions instead of being merged into the weights. A
layer that bypassed ``comfy.ops`` (e.g. ``F.linear(x, layer.weight)``) would lose its LoRA there, and the outputs
below would change.

Reference: the same inputs after a full load through ``comfy.model_management.load_models_gpu``. Measured
difference: exactly 0 for every output.

These tests emulate an accelerator's load device, where the budget decides and a full load merges the ID LoRA: on a
CPU load device this pack's patcher never merges weight patches (``vp_core/checkpoints/patcher.py``, tested in
``test_lora_per_call.py``), so the patcher is told to decide as for an accelerator here.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import comfy.model_management as mm
from videopainter.vp_core.checkpoints import patcher as vp_patcher
from videopainter.vp_core.conformance import runner

from conformance_fixture import FIXTURE, needs_fixture, released_fixture

FRACTIONS = [0.0, 0.3, 0.7]  # share of model_size() the memory manager may keep loaded (0 -> 1 byte)
ATOL_VS_REFERENCE = 1e-4

pytestmark = needs_fixture("cases")  # every test here reads the fixtures


@pytest.fixture(autouse=True)
def accelerator_patching(monkeypatch):
    monkeypatch.setattr(vp_patcher, "patches_per_call", lambda device: False)


fx = pytest.fixture(scope="module")(released_fixture)


def case(name: str) -> tuple[dict, dict, dict]:
    d = FIXTURE / "cases" / name
    return load_file(str(d / "inputs.safetensors")), json.loads((d / "params.json").read_text()), load_file(str(d / "expected.safetensors"))


def lowvram_counts(patcher) -> tuple[int, int]:
    """(modules casting their weights per call, modules that could)."""
    castable = [m for m in patcher.model.modules() if hasattr(m, "comfy_cast_weights")]
    return sum(bool(m.comfy_cast_weights) for m in castable), len(castable)


def detach(*patchers) -> None:
    mm.unload_all_models()
    for p in patchers:
        p.detach()
        assert lowvram_counts(p)[0] == 0 and not p.model.model_lowvram


def run(fx, name: str, inp: dict, params: dict) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in runner.RUNNERS[name](fx, inp, params).items()}


def assert_same(got: dict, ref: dict) -> float:
    assert sorted(got) == sorted(ref)
    worst = max(float((got[k].float() - ref[k].float()).abs().max()) for k in ref)
    assert worst <= 1e-6, worst
    return worst


@pytest.mark.parametrize("name, id_lora", [("forward_branch", False), ("forward_id_resample", True)])
def test_every_weight_is_in_a_comfy_ops_layer(fx, name: str, id_lora: bool):
    """Partial loading needs every parameter in a layer the patcher can switch to per-call casting."""
    for patcher in (fx.backbone(id_lora), fx.branch()):
        plain = [n for n, m in patcher.model.named_modules()
                 if any(True for _ in m.parameters(recurse=False)) and not hasattr(m, "comfy_cast_weights")]
        assert not plain, f"modules with weights outside comfy.ops: {plain[:5]}"


@pytest.mark.parametrize("fraction", FRACTIONS)
@pytest.mark.parametrize("name, id_lora", [("forward_branch", False), ("forward_id_resample", True)])
def test_partial_load_keeps_the_forward_result(fx, monkeypatch, name: str, id_lora: bool, fraction: float):
    inp, params, expected = case(name)
    backbone, branch = fx.backbone(id_lora), fx.branch()
    detach(backbone, branch)
    full = run(fx, name, inp, params)  # runner._loaded = comfy.model_management.load_models_gpu: full load on CPU
    assert lowvram_counts(backbone)[0] == 0 and backbone.loaded_size() == backbone.model_size()
    for key, ref in expected.items():
        if not key.startswith("rng_draw_"):
            assert float((full[key].float() - ref.float()).abs().max()) <= ATOL_VS_REFERENCE, key

    detach(backbone, branch)
    budgets = {}

    def load_partially(*patchers):
        for p in patchers:
            budgets[p] = max(1, int(fraction * p.model_size()))
            mm.LoadedModel(p).model_load(budgets[p])

    monkeypatch.setattr(runner, "_loaded", load_partially)
    partial = run(fx, name, inp, params)
    for p in (backbone, branch):
        cast, castable = lowvram_counts(p)
        assert p.model.model_lowvram and cast > 0, "the patcher loaded everything: no partial load happened"
        assert p.loaded_size() <= budgets[p] < p.model_size()
        if fraction == 0.0:
            assert cast == castable  # nothing fits: every layer casts per call
    if id_lora:
        # the LoRA on offloaded layers is applied per call, not merged into the weights
        assert backbone.lowvram_patch_counter() > 0
    assert_same(partial, full)
    detach(backbone, branch)


@pytest.mark.parametrize("name, id_lora", [("forward_branch", False), ("forward_id_resample", True)])
def test_partial_unload_keeps_the_forward_result(fx, monkeypatch, name: str, id_lora: bool):
    """What ``free_memory`` does to a fully loaded model when another needs room: ``partially_unload``."""
    inp, params, _ = case(name)
    backbone, branch = fx.backbone(id_lora), fx.branch()
    detach(backbone, branch)
    full = run(fx, name, inp, params)

    def unload_half(*patchers):
        mm.load_models_gpu(list(patchers))
        for p in patchers:
            freed = p.partially_unload(p.offload_device, p.model_size() // 2)
            assert freed >= p.model_size() // 2

    monkeypatch.setattr(runner, "_loaded", unload_half)
    partial = run(fx, name, inp, params)
    for p in (backbone, branch):
        assert lowvram_counts(p)[0] > 0 and p.loaded_size() <= p.model_size() // 2
    if id_lora:
        assert backbone.lowvram_patch_counter() > 0
    assert_same(partial, full)
    detach(backbone, branch)
