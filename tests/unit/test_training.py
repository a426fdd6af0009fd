"""Training on CPU with the tiny models (``training_setup``): overfitting one clip lowers the loss; the saved branch
and LoRA load through the pack's loaders and change the sampler's output; a bad dataset row is skipped with a log
line or stops the run with one (``--on_bad_row``), never a traceback."""
from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import training_setup as ts
from videopainter.vp_core.checkpoints import loaders, text
from videopainter.vp_core.training import data, optim, trainer
from videopainter.vp_core.training.mask_transforms import MaskAugment
from videopainter.vp_core.training.step import encode_batch, forward_loss

pytestmark = pytest.mark.slow
EVAL_T = (50, 300, 600, 900)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    s = ts.make_setup(tmp_path_factory.mktemp("train"))
    clip = text.load_text_encoder(s["backbone"])
    s["cache"] = s["root"] / "cache"
    data.prepare_cache(data.load_rows(data_folder=str(s["data"])), s["cache"], _data_cfg(),
                       lambda c: text.encode_prompt(clip, c, 16))
    return s


def _data_cfg() -> data.DataConfig:
    return data.DataConfig(ts.HEIGHT, ts.WIDTH, ts.FRAMES, augment=MaskAugment(mask_transform_prob=0.0))


def _config(s, task: str, out, steps: int, **kw) -> trainer.TrainConfig:
    return trainer.TrainConfig(
        task, str(s["backbone"]), str(s["cache"]), str(out), str(s["branch"]), max_train_steps=steps,
        checkpointing_steps=steps, gradient_checkpointing=False, enable_tiling=False, noised_image_dropout=0.0,
        rank=8, lora_alpha=4, seed=5,
        optim=optim.OptimConfig(learning_rate=kw.pop("lr", 2e-3), lr_scheduler="constant", lr_warmup_steps=0,
                                max_train_steps=steps),
        data=_data_cfg(), **kw)


def _eval_loss(t: trainer.Trainer, lat, rnd) -> float:
    with torch.no_grad():
        return sum(float(forward_loss(t.model, t.scheduler, lat, rnd.noise, torch.tensor([v]), 1.0).loss) for v in EVAL_T)


@pytest.fixture(scope="module")
def overfit(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("overfit")
    out.mkdir(exist_ok=True)
    t = trainer.Trainer(_config(setup, "branch", out, 20))
    batch, rnd = t._batch(0)
    lat = encode_batch(t.vae, batch, rnd, tiling=False)
    before = _eval_loss(t, lat, rnd)
    logs = t.train(progress=False)
    after = _eval_loss(t, lat, rnd)
    return t, out, before, after, logs


def test_overfitting_one_clip_lowers_the_loss(overfit):
    t, out, before, after, logs = overfit
    print(f"eval loss (4 fixed timesteps) before {before:.4f} after 20 steps {after:.4f}")
    assert len(logs) == 20 and all(np.isfinite(r["loss"]) for r in logs)
    assert after < 0.8 * before, (before, after)
    lines = (out / trainer.LOSS_LOG).read_text().splitlines()
    assert len(lines) == 20 and '"loss"' in lines[0]


@pytest.fixture
def fresh_accelerate():
    """accelerate keeps one process-wide state, fixed by the first Accelerator (mixed precision included): start this
    test's Trainer from a clean one and leave a clean one to the next test."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_bf16_mixed_precision_overfits_and_saves_the_official_dtype(setup, tmp_path, fresh_accelerate):
    """``--mixed_precision bf16`` (the .sh default) on the CPU: accelerate's autocast runs the step in bf16, the loss
    falls on the overfit case, the saved branch is bf16 (as the official file) in the official layout and loads
    through the loader, and a resume from the bf16 file is exact (the fp32 masters are in training_state)."""
    import dataclasses
    import json

    steps = 20
    t = trainer.Trainer(dataclasses.replace(_config(setup, "branch", tmp_path, steps, mixed_precision="bf16"),
                                            checkpointing_steps=10))
    assert t.acc.mixed_precision == "bf16"
    batch, rnd = t._batch(0)
    lat = encode_batch(t.vae, batch, rnd, tiling=False)
    seen = []  # the dtype a trainable Linear computes in under the step's autocast
    hook = t.branch.module.branch_blocks[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with t.acc.autocast():
        before = _eval_loss(t, lat, rnd)
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    t.train(progress=False)
    with t.acc.autocast():
        after = _eval_loss(t, lat, rnd)
    print(f"bf16: eval loss (4 fixed timesteps) before {before:.4f} after {steps} steps {after:.4f}")
    assert after < 0.8 * before, (before, after)
    folder = tmp_path / f"checkpoint-{steps}" / "branch"
    saved, original = load_file(str(folder / loaders.WEIGHTS_NAME)), load_file(str(setup["branch"] / loaders.WEIGHTS_NAME))
    assert set(saved) == set(original) and all(v.dtype == torch.bfloat16 for v in saved.values())
    assert json.loads((folder / "config.json").read_text()) == json.loads((setup["branch"] / "config.json").read_text())
    masters = load_file(str(tmp_path / f"checkpoint-{steps}" / trainer.STATE_TENSORS))
    for k, p in t.named.items():
        assert masters[f"master.{k}"].dtype == torch.float32 and torch.equal(masters[f"master.{k}"], p.detach().cpu())
        assert torch.equal(saved[k], p.detach().cpu().to(torch.bfloat16)), k
    loaded = loaders.load_branch(folder, torch.bfloat16).model.branch
    assert torch.equal(loaded.branch_blocks[0].weight, saved["branch_blocks.0.weight"])
    resumed = trainer.Trainer(dataclasses.replace(t.cfg, output_dir=str(tmp_path / "resumed"),
                                                  resume_from_checkpoint=str(tmp_path / "checkpoint-10")))
    (tmp_path / "resumed").mkdir()
    resumed.train(progress=False)
    for k, p in t.named.items():
        assert torch.equal(resumed.named[k], p), k


def _read_video(path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_validation_renders_with_the_current_weights(setup, tmp_path):
    """``--validating_steps 2``: renders at step 1 and step 2 (the reference's rule) through the pack's sampler, as
    [original | masked | generated] at the training size; the generated third changes as the weights train."""
    import dataclasses

    from videopainter.vp_core.training.validation import ValidationConfig

    cfg = dataclasses.replace(_config(setup, "branch", tmp_path, 3),
                              validation=ValidationConfig(validating_steps=2, num_inference_steps=2))
    t = trainer.Trainer(cfg)
    t.train(progress=False)
    plain = trainer.Trainer(dataclasses.replace(cfg, output_dir=str(tmp_path / "plain"), validation=ValidationConfig()))
    (tmp_path / "plain").mkdir()
    plain.train(progress=False)
    for k, p in t.named.items():  # rendering does not disturb training (weights, modes, random draws)
        assert torch.equal(p, plain.named[k]), k
    folder = tmp_path / "validation"
    assert sorted(p.name for p in folder.iterdir()) == ["step-1", "step-2"]  # not step 3: 3 % 2 != 0
    name = "clip0_video_0_replace_gt_on.mp4"
    assert [p.name for p in (folder / "step-1").iterdir()] == [name]  # one clip in the cache, no temp files left
    first, second = _read_video(folder / "step-1" / name), _read_video(folder / "step-2" / name)
    assert first.shape == (ts.FRAMES, ts.HEIGHT, 3 * ts.WIDTH, 3)
    video, masks, _ = data.ClipStore(setup["cache"]).read(0, 0, ts.FRAMES)
    assert np.abs(first[:, :, :ts.WIDTH].astype(int) - video.numpy()).mean() < 8  # the original (H.264)
    hole = masks.numpy().astype(bool)
    assert first[:, :, ts.WIDTH:2 * ts.WIDTH][hole].mean() < 8  # the masked third: the hole black
    gen1, gen2 = first[:, :, 2 * ts.WIDTH:].astype(int), second[:, :, 2 * ts.WIDTH:].astype(int)
    change = np.abs(gen1 - gen2).mean()
    print(f"validation render, step 1 vs step 2 (generated third): mean |diff| {change:.2f} / 255")
    assert change > 0.5


def test_saved_branch_loads_through_the_loader_and_changes_the_output(overfit, setup):
    t, out, *_ = overfit
    folder = out / "checkpoint-20" / "branch"
    saved = loaders.load_branch(folder, torch.float32).model.branch
    start = loaders.load_branch(setup["branch"], torch.float32).model.branch
    for k, v in saved.state_dict().items():
        assert torch.equal(v, t.branch.module.state_dict()[k].cpu()), k
    # the file is complete: the unused tensors of the official layout are written back unchanged
    on_disk, original = load_file(str(folder / loaders.WEIGHTS_NAME)), load_file(str(setup["branch"] / loaders.WEIGHTS_NAME))
    assert set(on_disk) == set(original)
    assert torch.equal(on_disk["patch_embed.pos_embedding"], original["patch_embed.pos_embedding"])  # unused here
    out_new, out_old = _sample(setup, saved), _sample(setup, start)
    assert (out_new - out_old).abs().max() > 1e-3


def _sample(setup, branch_module=None, lora_path=None) -> torch.Tensor:
    """Final latents of the pack's sampler (2 DPM steps) on the tiny clip."""
    from videopainter.vp_core.checkpoints.vae import load_vae
    from videopainter.vp_core.pipeline import preprocess, sampling
    from videopainter.vp_core.pipeline.windows import plan_windows

    backbone = loaders.load_backbone(setup["backbone"], torch.float32)
    if lora_path is not None:
        backbone = backbone.clone()
        backbone.add_patches(loaders.load_lora(lora_path, backbone).patches, 1.0)
    branch = loaders.load_branch(setup["branch"], torch.float32)
    if branch_module is not None:
        branch.model.branch.load_state_dict(branch_module.state_dict())
    store = data.ClipStore(setup["cache"])
    video, masks, emb = store.read(0, 0, ts.FRAMES)
    pipe = preprocess.PipelineInputs(video, masks * 255, video[0])
    cond = sampling.InpaintConditioning(pipe.video, pipe.masks, pipe.image, emb[None], emb[None] * 0, ts.HEIGHT, ts.WIDTH)
    settings = sampling.SamplerSettings(steps=2, guidance=6.0, dynamic_cfg=True, scheduler="dpm", eta=0.0,
                                        replace_gt=True, mask_add=True, prev_clip_weight=0.0, conditioning_scale=1.0,
                                        vae_tiling=False, seed=0)
    models = sampling.Models(backbone, branch, load_vae(setup["backbone"], torch.float32),
                             loaders.load_scheduler_config(setup["backbone"]), id_resample=lora_path is not None)
    plan = plan_windows(ts.FRAMES, ts.FRAMES, 0, "reference")
    return sampling.Sampler(models, cond, plan, settings).run().latents


def test_saved_lora_loads_through_the_loader_and_changes_the_output(setup, tmp_path):
    t = trainer.Trainer(_config(setup, "id-lora", tmp_path, 2, id_lora_path=str(setup["lora"])))
    t.train(progress=False)
    path = tmp_path / "checkpoint-2" / "pytorch_lora_weights.safetensors"
    saved = load_file(str(path))
    start = load_file(str(setup["lora"]))
    assert set(saved) == set(start) and all(k.startswith("transformer.transformer_blocks.") for k in saved)
    assert max(float((saved[k] - start[k]).abs().max()) for k in saved) > 1e-4  # trained
    backbone = loaders.load_backbone(setup["backbone"], torch.float32)
    patches = loaders.load_lora(path, backbone)
    assert len(patches.patches) == 16 and not patches.unmatched  # 4 blocks x to_q, to_k, to_v, to_out.0
    assert (_sample(setup, lora_path=path) - _sample(setup, lora_path=setup["lora"])).abs().max() > 1e-4


def _bad_rows(setup, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in ("clip0.mkv", "clip0_mask.mkv", "clip0.txt"):
        (folder / name).write_bytes((setup["data"] / name).read_bytes())
    (folder / "nomask.mkv").write_bytes((setup["data"] / "clip0.mkv").read_bytes())  # its mask video is missing
    (folder / "nomask.txt").write_text("x")
    video, mask = ts.make_sample_clip.sample_frames(3, ts.WIDTH, ts.HEIGHT)  # too few frames
    ts.make_sample_clip.write_mp4(folder / "short.mkv", video, 8, codec="ffv1")
    ts.make_sample_clip.write_mp4(folder / "short_mask.mkv", mask, 8, codec="ffv1")
    (folder / "short.txt").write_text("x")
    video, mask = ts.make_sample_clip.sample_frames(9, ts.WIDTH, ts.HEIGHT)  # nothing masked
    ts.make_sample_clip.write_mp4(folder / "empty.mkv", video, 8, codec="ffv1")
    ts.make_sample_clip.write_mp4(folder / "empty_mask.mkv", mask * 0, 8, codec="ffv1")
    (folder / "empty.txt").write_text("x")
    return folder


def test_bad_rows_are_skipped_with_a_log_line(setup, tmp_path, caplog):
    folder = _bad_rows(setup, tmp_path)
    emb = lambda c: torch.zeros(1, 16, 32)  # noqa: E731
    with caplog.at_level(logging.WARNING):
        index = data.prepare_cache(data.load_rows(data_folder=str(folder)), tmp_path / "cache", _data_cfg(), emb)
    assert index["clips"] == ["clip0"]
    reasons = {r["row_id"]: r["reason"] for r in index["skipped"]}
    assert "does not exist" in reasons["nomask"] and "nomask_mask" in reasons["nomask"]
    assert "too few frames: 3" in reasons["short"] and "--max_num_frames" in reasons["short"]
    assert "mask is empty" in reasons["empty"]
    assert sum("skipping dataset row" in r.message for r in caplog.records) == 3


def test_a_bad_row_stops_the_run_with_one_clear_line(setup, tmp_path):
    folder = _bad_rows(setup, tmp_path)
    args = ts.cli_args(setup, "branch", tmp_path / "out", 1, on_bad_row="stop")
    args[args.index("--data_folder") + 1] = str(folder)
    proc = subprocess.run([sys.executable, str(ts.REPO / "scripts" / "vp_train.py"), *args], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "ERROR vp_train: dataset row" in proc.stderr and "--on_bad_row skip" in proc.stderr


def test_vpdata_csv_rows_and_an_absent_mask_id(setup, tmp_path, caplog):
    """The reference's training CSV layout: videovo clip ``<root>/<base[:-3]>/<base>.0.mp4``, masks
    ``<csv folder>/videovo/<base>/all_masks.npz``; a row whose mask_id is absent is skipped with its reason."""
    video, mask = ts.make_sample_clip.sample_frames(9, ts.WIDTH, ts.HEIGHT)
    root = tmp_path / "videovo" / "raw_video"
    ts.make_sample_clip.write_mp4(root / "abc" / "abc123.0.mp4", video, 8)
    labels = (mask > 127).astype(np.uint8) * 3  # object id 3
    (tmp_path / "videovo" / "abc123").mkdir(parents=True)
    np.savez(tmp_path / "videovo" / "abc123" / "all_masks.npz", labels)
    caption = "a square gliding over a gradient " * 3
    csv = tmp_path / "train.csv"
    csv.write_text("path,start_frame,end_frame,fps,mask_id,caption\n"
                   f"abc123.0.mp4,0,9,8,3,{caption}\nabc123.0.mp4,0,9,8,7,{caption}\n")
    rows = data.load_rows(meta_file_path=str(csv), instance_data_root=str(root))
    assert [r["mask_id"] for r in rows] == [3, 7]
    with caplog.at_level(logging.WARNING):
        index = data.prepare_cache(rows, tmp_path / "cache", _data_cfg(), lambda c: torch.zeros(1, 16, 32))
    assert len(index["clips"]) == 1 and len(index["skipped"]) == 1
    assert "mask_id 7 does not occur" in index["skipped"][0]["reason"]
    store = data.ClipStore(tmp_path / "cache")
    v, m, _ = store.read(0, 0, ts.FRAMES)
    assert v.shape == (ts.FRAMES, ts.HEIGHT, ts.WIDTH, 3) and m.max() == 1 and m.sum() > 0


def test_new_branch_from_transformer_starts_as_a_no_op(setup, tmp_path):
    """``from_transformer`` as the reference: zero branch_blocks, so the backbone's prediction is unchanged; the
    patch embedding's first 16 input channels copied to both slots; the saved folder loads through the loader."""
    from videopainter.vp_core.training import parts
    from videopainter.vp_core.training.step import InpaintModel, StepLatents

    transformer = loaders.load_backbone(setup["backbone"], torch.float32).model.diffusion_model
    new = parts.branch_from_transformer(transformer, 2)
    w, src = new.module.patch_embed.proj.weight, transformer.patch_embed.proj.weight
    assert torch.equal(w[:, :16], src[:, :16]) and torch.equal(w[:, 16:32], src[:, :16]) and not w[:, 32].any()
    g = torch.Generator().manual_seed(0)
    f, h, wd = 2, ts.HEIGHT // 8, ts.WIDTH // 8
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    mask = torch.zeros(1, f, 1, h, wd)
    mask[..., :2, :2] = 1
    lat = StepLatents(r(1, f, 16, h, wd), r(1, f, 16, h, wd), torch.cat([r(1, f, 16, h, wd), mask], 2), mask, r(1, 16, 32))
    noisy, t = r(1, f, 16, h, wd), torch.tensor([400])
    with torch.no_grad():
        out, samples = InpaintModel(transformer, new.module)(noisy, lat, t)
        from videopainter.vp_core.model.rope import video_rope

        plain = transformer(torch.cat([noisy, lat.image_latents], 2), lat.prompt_embeds, t, video_rope(transformer.cfg, f, h, wd))
    assert all(not s.any() for s in samples) and torch.equal(out, plain)
    parts.save_branch(new, tmp_path / "branch")
    loaded = loaders.load_branch(tmp_path / "branch", torch.float32).model.branch
    assert torch.equal(loaded.patch_embed.proj.weight, w.detach())
