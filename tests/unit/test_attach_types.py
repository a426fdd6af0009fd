"""vp_core.checkpoints.attach recognises the backbone and its own patchers by their classes, not by class names: a same-named
class from elsewhere is not taken for them."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from videopainter.vp_core.checkpoints import attach, loaders
from videopainter.vp_core.model.config import CogVideoXConfig
from videopainter.vp_core.model.transformer import CogVideoXTransformer
from videopainter.vp_core.checkpoints.tiny_checkpoints import TRANSFORMER


def patcher_of(module: nn.Module) -> SimpleNamespace:
    """What attach reads of a ComfyUI MODEL: ``.model`` (the root module) and its ``.diffusion_model``."""
    root = SimpleNamespace(diffusion_model=module) if not isinstance(module, loaders.ManagedModule) else module
    return SimpleNamespace(model=root)


def test_the_backbone_class_is_recognised_and_a_same_named_one_is_not():
    import comfy.ops

    with torch.device("meta"):
        real = CogVideoXTransformer(CogVideoXConfig.from_dict(TRANSFORMER), operations=comfy.ops.disable_weight_init)
    assert attach.is_videopainter_model(patcher_of(real))

    class CogVideoXTransformer_(nn.Module):  # noqa: N801
        pass

    CogVideoXTransformer_.__name__ = CogVideoXTransformer_.__qualname__ = "CogVideoXTransformer"
    impostor = patcher_of(CogVideoXTransformer_())
    assert not attach.is_videopainter_model(impostor)
    with pytest.raises(ValueError, match=r"^model: expected the MODEL output of 'VideoPainter Backbone Loader'"):
        attach.require_videopainter_model(impostor)


def test_a_patcher_of_this_pack_is_named_by_what_it_holds_and_a_same_named_module_by_itself():
    precision = loaders.Precision(torch.float32, torch.float32)
    ours = loaders.ManagedModule("branch", nn.Linear(2, 2), precision)
    assert attach._model_kind(patcher_of(ours)) == "Linear"

    class ManagedModule(nn.Module):
        def __init__(self):
            super().__init__()
            self.add_module("branch", nn.Linear(2, 2))

    assert attach._model_kind(SimpleNamespace(model=ManagedModule())) == "ManagedModule"
    assert attach._model_kind(object()) == "object (not a MODEL)"
