"""The reference's mask augmentation (train/mask_process.py) and the optimizer / schedule defaults of the .sh files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from videopainter.vp_core.training import optim
from videopainter.vp_core.training.mask_transforms import CHOICES, MaskAugment, maybe_transform, transform_masks


def _masks() -> np.ndarray:
    m = np.zeros((3, 120, 160), np.uint8)
    m[:, 40:80, 60:100] = 1  # a 40x40 square, frame-0 bounding box x 60..99, y 40..79
    return m


def _only(choice: str, **kw) -> MaskAugment:
    p = {f"p_{c}": float(c == choice) for c in CHOICES}
    return MaskAugment(**p, **kw)


@pytest.mark.parametrize("choice", CHOICES)
def test_each_transform_changes_the_mask_and_keeps_its_form(choice):
    m = _masks()
    changed = 0
    for seed in range(8):  # brush's open/close can leave a square unchanged; some draw must change it
        out = transform_masks(m, _only(choice), np.random.default_rng(seed))
        assert out.shape == m.shape and out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}
        if choice != "brush":
            assert all(np.array_equal(out[0], f) for f in out)  # one shape for the whole clip
        changed += not np.array_equal(out, m)
    assert changed > 0


def test_shapes_cover_frame_0_box_scaled():
    m = _masks()
    out = transform_masks(m, _only("circle", margin_ratio=0.0001), np.random.default_rng(0))
    # circle radius = max(w, h) * U(0.55, 0.75) around the box centre: larger than the square's inscribed circle
    assert out[0, 60, 80] == 1 and out[0].sum() > m[0].sum() * 0.9


def test_same_generator_state_same_masks_and_probability_gate():
    m, aug = _masks(), MaskAugment()
    a = maybe_transform(m, aug, np.random.default_rng(7))
    b = maybe_transform(m, aug, np.random.default_rng(7))
    assert np.array_equal(a, b)
    never = MaskAugment(mask_transform_prob=0.0)
    assert all(np.array_equal(maybe_transform(m, never, np.random.default_rng(s)), m) for s in range(5))


def test_probabilities_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        transform_masks(_masks(), MaskAugment(p_brush=0.9), np.random.default_rng(0))


def test_empty_first_frame_leaves_shapes_unchanged():
    m = np.zeros((2, 32, 32), np.uint8)
    assert np.array_equal(transform_masks(m, _only("rect"), np.random.default_rng(0)), m)


def test_optimizer_and_schedule_defaults_are_the_sh_files():
    cfg = optim.OptimConfig(learning_rate=1e-5, lr_warmup_steps=10, max_train_steps=100)
    p = torch.nn.Parameter(torch.ones(3))
    opt = optim.make_optimizer([p], cfg)
    g = opt.param_groups[0]
    assert g["betas"] == (0.9, 0.95) and g["eps"] == 1e-8 and g["weight_decay"] == 1e-4
    sched = optim.make_lr_scheduler(opt, cfg)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.5e-5) and lrs[10] == pytest.approx(1e-5)
    assert lrs[55] == pytest.approx(0.5e-5, rel=1e-6)  # cosine half way through the 90 decay steps, 1 cycle
    assert lrs[-1] < 1e-8 * 1e3 and lrs[-1] < lrs[55]


def test_clip_is_torch_formula_at_one():
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])  # norm 5
    norm, coef = optim.clip([p], 1.0)
    assert float(norm) == 5.0 and float(coef) == pytest.approx(1 / (5 + 1e-6))
    assert float(p.grad.norm()) == pytest.approx(1.0, rel=1e-5)


def test_lora_is_rehung_when_comfyui_cleared_the_layers():
    """ComfyUI's ModelPatcher empties every layer's ``weight_function`` when it unloads or re-patches the backbone;
    the training model must put the adapters back before its forward, or the LoRA gets no gradient."""
    import comfy.ops

    from videopainter.vp_core.model.branch import VideoPainterBranch
    from videopainter.vp_core.model.config import CogVideoXConfig
    from videopainter.vp_core.model.transformer import CogVideoXTransformer
    from videopainter.vp_core.training.lora import TrainableLora
    from videopainter.vp_core.training.step import InpaintModel, StepLatents

    torch.manual_seed(0)
    tiny = dict(num_attention_heads=2, attention_head_dim=16, time_embed_dim=32, text_embed_dim=32, num_layers=2,
                max_text_seq_length=8, use_learned_positional_embeddings=False)
    ops = comfy.ops.disable_weight_init
    t = CogVideoXTransformer(CogVideoXConfig(**tiny), operations=ops)
    b = VideoPainterBranch(CogVideoXConfig(**dict(tiny, num_layers=1)), operations=ops)
    for m in (t, b):
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.05)
        m.requires_grad_(False)
    lora = TrainableLora(t, 4, 4)
    for layer in lora._layers:
        layer.weight_function = []  # what ModelPatcher.unpatch_model does
    model = InpaintModel(t, b, id_resample=True, lora=lora)
    mask = torch.zeros(1, 2, 1, 4, 4)
    mask[..., :2, :2] = 1
    r = lambda *s: torch.randn(*s)  # noqa: E731
    lat = StepLatents(r(1, 2, 16, 4, 4), r(1, 2, 16, 4, 4), torch.cat([r(1, 2, 16, 4, 4), mask], 2), mask, r(1, 8, 32))
    out, _ = model(r(1, 2, 16, 4, 4), lat, torch.tensor([300]))
    out.square().mean().backward()
    grads = [p.grad for p in lora.trainable().values()]
    assert all(g is not None for g in grads) and any(float(g.abs().max()) > 0 for g in grads)
