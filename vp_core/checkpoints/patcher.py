"""The ``ModelPatcher`` of this pack's models: on a CPU load device, weight patches (LoRAs) apply per call.

ComfyUI merges weight patches into the weights when it loads a model fully (``ModelPatcher.load`` ->
``patch_weight_to_device``) and keeps each patched weight's original in ``ModelPatcher.backup`` to restore it later.
On a GPU that is the fast path: the original is the host copy that exists anyway and the patched copy is on the
card. On a CPU load device both are in RAM, and the backbone's originals are pages of the memory-mapped checkpoint:
the ID LoRA (to_q/k/v/out of all 42 blocks) costs 2.95 GiB more at full size (bench/README.md, "Real size on CPU").

There ``load_models_gpu`` always loads fully (it computes a weight budget only for an accelerator), so this patcher
turns a CPU load that has weight patches into ComfyUI's own low-VRAM load with a budget of 0: every ``comfy.ops``
layer casts its weight per call, and the layers with patches get a ``LowVramPatch`` weight function that applies
them to that call's copy (``comfy.ops.cast_bias_weight`` -> ``comfy.lora.calculate_weight``), exactly as ComfyUI
does for layers that do not fit a GPU. No patched copy and no backup persist; strength changes, re-applying or
removing a LoRA change ``patches_uuid`` and ComfyUI re-installs the weight functions as for any patch change.
``force_patch_weights`` (a caller that wants merged weights, e.g. to save them) is honoured by ComfyUI's load.
"""
from __future__ import annotations

import comfy.model_management
import comfy.model_patcher


def patches_per_call(load_device) -> bool:
    """Where weight patches are applied per call instead of merged: a CPU load device (the one place that decides)."""
    return comfy.model_management.is_device_cpu(load_device)


class VideoPainterPatcher(comfy.model_patcher.ModelPatcher):
    """A ``ModelPatcher`` whose loads on a CPU load device never merge weight patches (see the module's doc).

    ``clone()`` keeps the class (ComfyUI's ``clone`` builds ``self.__class__``), so the MODELs the attach nodes make
    behave the same."""

    def load(self, device_to=None, lowvram_model_memory=0, force_patch_weights=False, full_load=False, **kwargs):
        if self.patches and patches_per_call(self.load_device):
            # budget 0: every comfy.ops layer is "offloaded", i.e. keeps its weight where it is and casts it per call
            lowvram_model_memory, full_load = 0, False
        return super().load(device_to, lowvram_model_memory=lowvram_model_memory,
                            force_patch_weights=force_patch_weights, full_load=full_load, **kwargs)
