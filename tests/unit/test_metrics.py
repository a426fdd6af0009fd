"""vp_core.evaluation.metrics against independent computations on fixed tensors (numpy / scipy / the raw networks).

Each check is also run on a perturbed input and must then disagree, so a metric that ignored its input (or a
reference computation that matched anything) would fail.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from videopainter.vp_core.evaluation import metrics
from videopainter.vp_core.evaluation.metrics import clip, fid, frame, i3d, models, tiny

H, W = 40, 56


@pytest.fixture(scope="module")
def metric_models(tmp_path_factory):
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"  # no download may happen: everything comes from the folder below
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    root = tiny.write_tiny_metric_models(tmp_path_factory.mktemp("models") / "videopainter" / "metrics")
    models.clear_cache()
    return metrics.load_metric_models(root)


def _frames(seed: int, t: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(t, H, W, 3, generator=g) * 255).to(torch.uint8)


def _hole(t: int = 3) -> torch.Tensor:
    m = torch.zeros(t, H, W, dtype=torch.uint8)
    m[:, 8:25, 12:40] = 1
    return m


GT, RES, HOLE = _frames(0), _frames(1), _hole()
# a result that is the ground truth plus small noise: SSIM and PSNR in a meaningful range
NEAR = (GT.to(torch.int16) + ((_frames(2).to(torch.int16) - 128) // 8)).clamp(0, 255).to(torch.uint8)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.numpy().astype(np.float64) / 255.0


def _numpy_reference(gt, res, hole, mode):
    """PSNR / MSE / MAE by numpy: reference = zero the hole of the result only; background = mean over background."""
    a, b, keep = _np(gt), _np(res), 1.0 - hole.numpy()[..., None].astype(np.float64)
    if mode == "reference":
        d = a - b * keep
        mse, mae = (d**2).mean(), np.abs(d).mean()
    else:
        d = (a - b) * keep
        n = keep.sum() * 3
        mse, mae = (d**2).sum() / n, np.abs(d).sum() / n
    return {"psnr": 10 * np.log10(1.0 / mse), "mse": mse, "mae": mae}


def _numpy_ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map (11x11 Gaussian, sigma 1.5, frames reflection-padded by 5 px as torchmetrics does), channel mean."""
    ax = np.arange(11) - 5
    g = np.exp(-(ax**2) / (2 * 1.5**2))
    g /= g.sum()
    k = np.outer(g, g)
    c1, c2 = 0.01**2, 0.03**2
    maps = []
    for c in range(3):
        x, y = (np.pad(v[..., c], 5, mode="reflect") for v in (a, b))
        mx, my = convolve2d(x, k, "valid"), convolve2d(y, k, "valid")
        sxx = np.clip(convolve2d(x * x, k, "valid") - mx**2, 0, None)
        syy = np.clip(convolve2d(y * y, k, "valid") - my**2, 0, None)
        sxy = convolve2d(x * y, k, "valid") - mx * my
        maps.append(((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2)))
    return np.mean(maps, axis=0)


@pytest.mark.parametrize("mode", frame.MODES)
def test_psnr_mse_mae_match_numpy_and_see_a_perturbation(metric_models, mode):
    for i in range(GT.shape[0]):
        got = frame.masked(GT[i], NEAR[i], HOLE[i], metric_models.lpips, mode, metric_models.lpips_map)
        want = _numpy_reference(GT[i], NEAR[i], HOLE[i], mode)
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-5), (mode, k)
        perturbed = NEAR[i].clone()
        perturbed[30:, :8] = 255 - perturbed[30:, :8]  # a background patch
        bad = frame.masked(GT[i], perturbed, HOLE[i], metric_models.lpips, mode, metric_models.lpips_map)
        assert all(bad[k] != pytest.approx(want[k], rel=1e-3) for k in want)
    whole = frame.whole_frame(GT[0], NEAR[0], metric_models.lpips)
    a, b = _np(GT[0]), _np(NEAR[0])
    assert whole["mse"] == pytest.approx(((a - b) ** 2).mean(), rel=1e-5)
    assert whole["mae"] == pytest.approx(np.abs(a - b).mean(), rel=1e-5)
    assert whole["psnr"] == pytest.approx(10 * np.log10(1 / ((a - b) ** 2).mean()), rel=1e-5)


def test_reference_mode_keeps_the_hole_of_the_ground_truth():
    # The hole's ground truth counts in reference mode: changing it changes the score; in background mode it does not.
    gt2 = GT[0].clone()
    gt2[10:20, 15:35] = 0
    lp = lambda a, b: torch.zeros(1)  # noqa: E731 - LPIPS is not under test here
    lpm = lambda a, b: torch.zeros(1, 1, H, W)  # noqa: E731
    ref = [frame.masked(g, NEAR[0], HOLE[0], lp, "reference")["mse"] for g in (GT[0], gt2)]
    bg = [frame.masked(g, NEAR[0], HOLE[0], lp, "background", lpm)["mse"] for g in (GT[0], gt2)]
    assert ref[0] != pytest.approx(ref[1])
    assert bg[0] == pytest.approx(bg[1])


@pytest.mark.parametrize("mode", frame.MODES)
def test_ssim_matches_numpy(metric_models, mode):
    a, b, keep = _np(GT[0]), _np(NEAR[0]), 1.0 - HOLE[0].numpy().astype(np.float64)
    if mode == "reference":
        want = _numpy_ssim_map(a, b * keep[..., None]).mean()
    else:
        m = _numpy_ssim_map(a * keep[..., None], b * keep[..., None])
        want = (m * keep).sum() / keep.sum()
    got = frame.masked(GT[0], NEAR[0], HOLE[0], metric_models.lpips, mode, metric_models.lpips_map)["ssim"]
    assert got == pytest.approx(want, abs=1e-5)
    assert 0.2 < want < 0.999  # a meaningful value, not a degenerate one
    other = frame.masked(GT[0], RES[0], HOLE[0], metric_models.lpips, mode, metric_models.lpips_map)["ssim"]
    assert other != pytest.approx(want, abs=1e-3)
    whole = frame.whole_frame(GT[0], NEAR[0], metric_models.lpips)["ssim"]
    assert whole == pytest.approx(_numpy_ssim_map(a, b).mean(), abs=1e-5)


def _lpips_by_hand(net, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """LPIPS from the backbone's activations and the 1x1 heads, in numpy: sum_k mean_hw(w_k . (f_k(x) - f_k(y))^2)."""
    shift = np.array([-0.030, -0.088, -0.188])[None, :, None, None]
    scale = np.array([0.458, 0.448, 0.450])[None, :, None, None]
    xs, ys = [torch.from_numpy(((v.numpy() - shift) / scale).astype(np.float32)) for v in (x, y)]
    total = 0.0
    with torch.no_grad():
        fx, fy = net.net(xs), net.net(ys)
    for k in range(7):
        a, b = fx[k].numpy().astype(np.float64), fy[k].numpy().astype(np.float64)
        a = a / np.sqrt(1e-8 + (a**2).sum(1, keepdims=True))
        b = b / np.sqrt(1e-8 + (b**2).sum(1, keepdims=True))
        w = getattr(net, f"lin{k}").model[1].weight.numpy().astype(np.float64)[0, :, 0, 0]
        total += np.einsum("c,bchw->bhw", w, (a - b) ** 2).mean()
    return total


def test_lpips_matches_the_network_by_hand(metric_models):
    x, y = frame._chw(GT[0]) * 2 - 1, frame._chw(NEAR[0]) * 2 - 1
    got = frame.whole_frame(GT[0], NEAR[0], metric_models.lpips)["lpips"]
    assert got == pytest.approx(_lpips_by_hand(metric_models.lpips_net, x, y), rel=1e-4)
    assert got > 0
    far = frame.whole_frame(GT[0], RES[0], metric_models.lpips)["lpips"]
    assert far != pytest.approx(got, rel=1e-3)
    # background LPIPS with an empty hole is the plain LPIPS (the spatial map's mean)
    empty = torch.zeros(H, W, dtype=torch.uint8)
    bg = frame.masked(GT[0], NEAR[0], empty, metric_models.lpips, "background", metric_models.lpips_map)["lpips"]
    assert bg == pytest.approx(got, rel=1e-3)


CAPTIONS = ("a red car drives on a road.", "a dog.", "two people talk in a kitchen.", "snow falls on a city.")


def test_clip_score_is_max_of_100_cos_and_0(metric_models):
    model, proc = metric_models.clip_score, metric_models.clip_processor
    raw = model.model
    positive = 0
    for mode in frame.MODES:
        for caption in CAPTIONS:
            got = clip.clip_scores(model, proc, RES, caption, HOLE, mode)
            want = []
            for f, h in zip(RES, HOLE):
                img = (f * h[..., None]).permute(2, 0, 1)  # the background blacked out (not a crop)
                if mode == "background":
                    side = W
                    img = F.pad(img, (0, 0, (side - H) // 2, side - H - (side - H) // 2))
                pix = proc.image_processor(images=[img], return_tensors="pt")["pixel_values"]
                ids = proc.tokenizer([caption], return_tensors="pt", padding=True)
                with torch.no_grad():
                    e_i = raw.get_image_features(pixel_values=pix).pooler_output[0].numpy()
                    e_t = raw.get_text_features(**ids).pooler_output[0].numpy()
                cos = e_i @ e_t / np.linalg.norm(e_i) / np.linalg.norm(e_t)
                want.append(max(100 * cos, 0.0))
            assert got == pytest.approx(want, abs=1e-4), (mode, caption)
            positive += sum(w > 0 for w in want)
    assert 0 < positive < 2 * len(CAPTIONS) * len(RES)  # both sides of the clamp were exercised


def test_clip_score_reference_mode_sees_only_the_centre_square(metric_models):
    model, proc = metric_models.clip_score, metric_models.clip_processor
    frames = F.interpolate(_frames(5, 1).permute(0, 3, 1, 2).float(), size=(48, 72)).permute(0, 2, 3, 1)
    frames = frames.to(torch.uint8)
    edited = frames.clone()
    edited[:, :, :8] = 0  # left strip, outside the centre 48x48

    def features(f, mode):
        pix = proc.image_processor(images=clip.clip_images(f, None, mode), return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            return model.get_image_features(pix)[0]

    assert torch.allclose(features(frames, "reference"), features(edited, "reference"))
    assert not torch.allclose(features(frames, "background"), features(edited, "background"))


@pytest.mark.parametrize("mode", frame.MODES)
def test_temporal_consistency_matches_manual_cosines(metric_models, mode):
    model = metric_models.clip_temporal
    got = clip.temporal_consistency(model, NEAR, HOLE, mode, metric_models.temporal_mean, metric_models.temporal_std)
    x = NEAR.permute(0, 3, 1, 2).float() / 255 * HOLE[:, None].float()
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    if mode == "background":
        mean, std = torch.tensor(metric_models.temporal_mean), torch.tensor(metric_models.temporal_std)
        x = (x - mean[:, None, None]) / std[:, None, None]
    with torch.no_grad():
        e = model.model.get_image_features(pixel_values=x).pooler_output.numpy().astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    want = np.mean([e[i] @ e[i + 1] for i in range(len(e) - 1)])
    assert got == pytest.approx(want, abs=1e-5)
    shuffled = clip.temporal_consistency(model, RES, HOLE, mode, metric_models.temporal_mean, metric_models.temporal_std)
    assert shuffled != pytest.approx(want, abs=1e-6)


def test_temporal_consistency_reference_divides_by_255_only_above_1(metric_models):
    # the reference's `if images.max() > 1.0: images / 255`: a clip of 0/1 values is fed to CLIP unscaled
    model = metric_models.clip_temporal
    dark = (NEAR > 128).to(torch.uint8)  # values 0 and 1
    x = F.interpolate(dark.permute(0, 3, 1, 2).float(), size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        e = model.model.get_image_features(pixel_values=x).pooler_output
    e = e / e.norm(dim=1, keepdim=True)
    want = float((e[:-1] * e[1:]).sum(1).mean())
    assert clip.temporal_consistency(model, dark, None, "reference") == pytest.approx(want, abs=1e-5)


def _frechet_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """||mu_x - mu_y||^2 + tr(Sx) + tr(Sy) - 2 sum sqrt(eig(Sx Sy)) (the eigenvalues of a PSD product are >= 0)."""
    mx, my = x.mean(0), y.mean(0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    ev = np.linalg.eigvals(sx @ sy)
    return float(((mx - my) ** 2).sum() + np.trace(sx) + np.trace(sy) - 2 * np.sqrt(np.clip(ev.real, 0, None)).sum())


def test_frechet_distance_matches_the_direct_formula():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(12, 5))
    fake = rng.normal(loc=0.3, scale=1.2, size=(12, 5))
    want = _frechet_numpy(real, fake)
    assert fid.vfid(real, fake) == pytest.approx(want, rel=1e-6)
    assert fid.vfid(real, real) == pytest.approx(0.0, abs=1e-6)
    assert fid.vfid(real, fake + 0.5) != pytest.approx(want, rel=1e-3)
    # fewer videos than feature dimensions: singular covariances, still finite (the benchmark case)
    few = fid.vfid(rng.normal(size=(3, 16)), rng.normal(size=(3, 16)))
    assert np.isfinite(few)
    assert np.isnan(fid.vfid(real[:1], fake[:1]))
    with pytest.raises(ValueError, match="one shape"):
        fid.vfid(real, fake[:, :4])


def test_i3d_unit_is_same_padded_conv_bn_relu_and_batch_stats_is_train_mode_bn():
    torch.manual_seed(0)
    unit = i3d.Unit3D(3, 4, (3, 3, 3))
    unit.bn.running_mean.uniform_(-1, 1)
    unit.bn.running_var.uniform_(0.5, 2)
    x = torch.rand(1, 3, 5, 9, 11)
    conv = F.conv3d(x, unit.conv3d.weight, padding="same")  # stride 1, odd kernel: TF SAME == symmetric padding
    with torch.no_grad():
        want_eval = F.relu(unit.bn.eval()(conv))
        bn_train = torch.nn.BatchNorm3d(4, eps=0.001).train()
        bn_train.load_state_dict(unit.bn.state_dict())
        want_train = F.relu(bn_train(conv))
        assert torch.allclose(unit(x, batch_stats=False), want_eval, atol=1e-5)
        assert torch.allclose(unit(x, batch_stats=True), want_train, atol=1e-5)
        assert not torch.allclose(unit(x, batch_stats=True), want_eval, atol=1e-3)
    # stride 2 'SAME': output size ceil(n / 2) in every dimension
    stem = i3d.Unit3D(3, 2, (7, 7, 7), (2, 2, 2))
    assert stem(x).shape[2:] == (3, 5, 6)


def test_i3d_features_and_checkpoint_layout():
    sd = tiny.tiny_i3d_state()
    assert "Mixed_5c.b1b.conv3d.weight" in sd and "Conv3d_1a_7x7.bn.running_var" in sd  # the released key names
    net = i3d.load_i3d({**sd, "logits.conv3d.weight": torch.zeros(1)}, width_divisor=tiny.TINY_I3D_DIVISOR)
    video = _frames(3, 9)
    f_ref = i3d.video_features(net, video, batch_stats=True)
    f_eval = i3d.video_features(net, video, batch_stats=False)
    assert f_ref.shape == (net.feature_dim,) == (1024 // tiny.TINY_I3D_DIVISOR,)
    assert not torch.allclose(f_ref, f_eval)
    with torch.no_grad():
        x = video.float().permute(3, 0, 1, 2)[None] / 255
        for name in net.layer_names:
            x = getattr(net, name)(x, True)
    assert torch.allclose(f_ref, x.mean(dim=(2, 3, 4))[0].double(), atol=1e-6)
    with pytest.raises(ValueError, match="missing"):
        i3d.load_i3d({k: v for k, v in sd.items() if not k.startswith("Mixed_5c")}, tiny.TINY_I3D_DIVISOR)
    assert models.i3d_width_divisor_of(sd) == tiny.TINY_I3D_DIVISOR


def test_clip_metrics_row(metric_models):
    row = metrics.clip_metrics(metric_models, GT, NEAR, HOLE, "a red car", "a car", "reference")
    assert set(row.values) == set(metrics.WHOLE + metrics.MASKED)
    assert all(np.isfinite(v) for v in row.values.values())
    assert row.frames == 3 and row.i3d_real.shape == row.i3d_fake.shape == (64,)
    assert row.values["psnr"] == pytest.approx(np.mean([_numpy_reference(GT[i], NEAR[i], 0 * HOLE[i], "reference")
                                                        ["psnr"] for i in range(3)]), rel=1e-5)
    same = metrics.clip_metrics(metric_models, GT, GT, HOLE, "a red car", "a car", "background")
    assert same.values["mse"] == 0 and same.values["masked_mae"] == 0
    np.testing.assert_allclose(same.i3d_real, same.i3d_fake)
    with pytest.raises(ValueError, match="mask is"):
        metrics.clip_metrics(metric_models, GT, NEAR, HOLE[:, :10], "a", "b")
    with pytest.raises(ValueError, match="mode"):
        metrics.clip_metrics(metric_models, GT, NEAR, HOLE, "a", "b", mode="exact")


def test_replace_background_keeps_the_hole_only():
    out = metrics.replace_background(GT, RES, HOLE)
    assert torch.equal(out[HOLE.bool()], RES[HOLE.bool()])
    assert torch.equal(out[~HOLE.bool()], GT[~HOLE.bool()])


def test_missing_model_names_the_file_and_where_to_get_it(tmp_path):
    with pytest.raises(metrics.MissingMetricModelError) as e:
        metrics.load_metric_models(tmp_path / "metrics")
    msg = str(e.value)
    assert "clip-vit-large-patch14" in msg and "models/videopainter/metrics" in msg and "hf download" in msg
    root = tiny.write_tiny_metric_models(tmp_path / "metrics2")
    (root / "i3d_rgb_imagenet.safetensors").unlink()
    with pytest.raises(metrics.MissingMetricModelError, match="i3d_rgb_imagenet.safetensors.*pytorch-i3d"):
        metrics.load_metric_models(root)


def test_clip_reference_preprocessing_is_pil_bicubic_on_every_transformers(metric_models):
    """Issue #26 item 9: the processor the CLIP score uses equals an independent PIL computation (shortest side to
    224 with PIL bicubic, centre crop 224, /255, CLIP mean/std), as the reference's transformers 4.42 does; the
    torchvision processor of transformers 5 differs by one 8-bit level on some samples of a 720x480 frame."""
    import numpy as np
    from PIL import Image

    g = torch.Generator().manual_seed(26)
    frame = (torch.rand(480, 720, 3, generator=g) * 255).to(torch.uint8)
    frame = torch.nn.functional.avg_pool2d(frame.permute(2, 0, 1)[None].float(), 3, 1, 1)[0].round().to(torch.uint8)
    proc = metric_models.clip_processor.image_processor
    got = proc(images=[frame], return_tensors="pt")["pixel_values"][0]
    img = Image.fromarray(frame.permute(1, 2, 0).numpy()).resize((336, 224), Image.BICUBIC)
    arr = np.asarray(img)[:, 56:280].astype(np.float32) / 255.0  # centre crop 224 of 336
    mean, std = np.array(proc.image_mean, np.float32), np.array(proc.image_std, np.float32)
    want = torch.from_numpy(((arr - mean) / std).transpose(2, 0, 1).copy())
    assert got.shape == want.shape == (3, 224, 224)
    levels = ((got - want) * torch.tensor(proc.image_std)[:, None, None] * 255).abs()
    assert float(levels.max()) < 1e-3, f"{int((levels > 0.5).sum())} samples off by a level or more"
