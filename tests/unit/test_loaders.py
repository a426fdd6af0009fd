"""``vp_core.checkpoints.loaders``: every supported backbone layout gives the same weights; everything else fails clearly.

The tiny random CogVideoX-I2V transformer of the conformance fixture (``cogvideox/transformer/``) is re-saved as
(a) a sharded diffusers folder (three shards + ``diffusion_pytorch_model.safetensors.index.json``) and (b) a single
file whose keys carry ComfyUI's ``model.diffusion_model.`` prefix. For (b) a ``config.json`` has to sit next to the
file: shapes cannot recover ``max_text_seq_length`` or the sample grid (the learned positional embedding's row count
is their product), so ``config_from_shapes`` falls back to CogVideoX-5B-I2V's 226 tokens and 60x90x49 grid. That
shapes-only path is tested separately with the same tiny weights and a positional embedding of the real grid's size.
"""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from videopainter.vp_core.checkpoints import loaders

from conformance_fixture import FIXTURE, needs_fixture

PREFIX = "model.diffusion_model."

needs = needs_fixture("cogvideox")  # on the tests that read the fixture models


@pytest.fixture(scope="module")
def transformer_sd() -> dict[str, torch.Tensor]:
    return loaders.read_model_folder(FIXTURE / "cogvideox" / "transformer")


@pytest.fixture(scope="module")
def reference_weights() -> dict[str, torch.Tensor]:
    """Weights of the fixture's own transformer folder, as the ModelPatcher holds them."""
    return weights(loaders.load_backbone(FIXTURE / "cogvideox" / "transformer", torch.float32))


def weights(patcher) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in patcher.model.state_dict().items()}


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    different = [k for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def write_sharded(folder: Path, sd: dict[str, torch.Tensor], shards: int = 3) -> list[str]:
    folder.mkdir(parents=True)
    keys = sorted(sd)
    names = [f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    weight_map = {}
    for i, name in enumerate(names):
        part = keys[i::shards]
        save_file({k: sd[k].contiguous() for k in part}, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    total = sum(v.numel() * v.element_size() for v in sd.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / loaders.INDEX_NAME).write_text(json.dumps(index, indent=2))
    shutil.copyfile(FIXTURE / "cogvideox" / "transformer" / "config.json", folder / "config.json")
    return names


# --------------------------------------------------------------------------------------------- same weights
@needs
def test_folder_sharded_and_single_file_load_identical_weights(tmp_path, transformer_sd, reference_weights):
    sharded = tmp_path / "sharded" / "transformer"
    names = write_sharded(sharded, transformer_sd)
    assert not (sharded / loaders.WEIGHTS_NAME).exists() and len(names) == 3

    single = tmp_path / "single" / "cogvideox_i2v_tiny.safetensors"
    single.parent.mkdir()
    save_file({PREFIX + k: v for k, v in transformer_sd.items()}, str(single))
    shutil.copyfile(FIXTURE / "cogvideox" / "transformer" / "config.json", single.parent / "config.json")

    assert len(reference_weights) == len(transformer_sd)  # every checkpoint tensor made it into the module
    for path in (FIXTURE / "cogvideox", sharded, sharded.parent, single):
        patcher = loaders.load_backbone(path, torch.float32)
        assert patcher.model.diffusion_model.cfg.num_layers == 4
        assert_identical(weights(patcher), reference_weights)
    # and they are the file's tensors, not just consistent with each other
    for key, value in transformer_sd.items():
        assert torch.equal(reference_weights["diffusion_model." + key], value), key


@needs
def test_single_file_without_config_infers_the_config_from_shapes(tmp_path, transformer_sd):
    """No config.json: layers, heads, head_dim, channels, text/time dims come from shapes; the text length and
    sample grid are CogVideoX-5B-I2V's (226 tokens, 60x90 latents, 49 frames), given here by the size of the
    positional embedding."""
    sd = dict(transformer_sd)
    rows = 226 + 13 * 30 * 45
    sd["patch_embed.pos_embedding"] = torch.randn(1, rows, 32, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "no_config.safetensors"
    save_file({PREFIX + k: v for k, v in sd.items()}, str(path))
    patcher = loaders.load_backbone(path, torch.float32)
    cfg = patcher.model.diffusion_model.cfg
    assert (cfg.num_layers, cfg.num_attention_heads, cfg.attention_head_dim) == (4, 2, 16)
    assert (cfg.in_channels, cfg.out_channels, cfg.text_embed_dim, cfg.time_embed_dim) == (32, 16, 32, 32)
    assert (cfg.max_text_seq_length, cfg.sample_height, cfg.sample_width, cfg.sample_frames) == (226, 60, 90, 49)
    got = weights(patcher)
    for key, value in sd.items():
        assert torch.equal(got["diffusion_model." + key], value), key


@needs
def test_tiny_single_file_without_config_names_the_mismatch(tmp_path, transformer_sd):
    path = tmp_path / "tiny.safetensors"
    save_file({PREFIX + k: v for k, v in transformer_sd.items()}, str(path))
    with pytest.raises(loaders.CheckpointError) as err:
        loaders.load_backbone(path, torch.float32)
    assert "tiny.safetensors" in str(err.value) and "patch_embed.pos_embedding" in str(err.value)


@needs
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_weights_are_the_rounded_fp32_weights(dtype, reference_weights):
    got = weights(loaders.load_backbone(FIXTURE / "cogvideox", dtype))
    for key, ref in reference_weights.items():
        if key.endswith("pos_embedding"):  # kept in the compute dtype, which ComfyUI picks for the device
            continue
        assert got[key].dtype == dtype, key
        assert torch.equal(got[key], ref.to(dtype)), key


# --------------------------------------------------------------------------------------------- refusals
class _WouldRunCode:
    """Unpickling this creates ``self.sentinel``: proof that a pickle was opened."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_pickle_checkpoints_are_refused_unopened(tmp_path, monkeypatch, suffix: str):
    sentinel = tmp_path / "pickle_was_loaded"
    path = tmp_path / f"cogvideox_transformer{suffix}"
    path.write_bytes(pickle.dumps(_WouldRunCode(sentinel)))

    def opened(*args, **kwargs):
        raise AssertionError("a pickle checkpoint was opened")

    monkeypatch.setattr(torch, "load", opened)
    monkeypatch.setattr(pickle, "load", opened)
    monkeypatch.setattr(loaders, "load_file", opened)
    with pytest.raises(loaders.CheckpointError) as err:
        loaders.load_backbone(path, torch.float32)
    message = str(err.value)
    assert path.name in message and "pickle" in message and "safetensors" in message
    with pytest.raises(loaders.CheckpointError, match="pickle"):
        loaders.read_safetensors(path)
    assert not sentinel.exists()


@needs
def test_truncated_single_file_names_the_file(tmp_path):
    data = (FIXTURE / "cogvideox" / "transformer" / loaders.WEIGHTS_NAME).read_bytes()
    path = tmp_path / "cogvideox_half_downloaded.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(loaders.CheckpointError) as err:
        loaders.load_backbone(path, torch.float32)
    assert path.name in str(err.value) and "truncated" in str(err.value)


@needs
def test_truncated_shard_names_the_shard(tmp_path, transformer_sd):
    folder = tmp_path / "transformer"
    names = write_sharded(folder, transformer_sd)
    shard = folder / names[1]
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(loaders.CheckpointError) as err:
        loaders.load_backbone(folder, torch.float32)
    assert names[1] in str(err.value)


def test_missing_weights_name_the_expected_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(loaders.CheckpointError) as err:
        loaders.load_backbone(tmp_path, torch.float32)
    assert loaders.WEIGHTS_NAME in str(err.value) and loaders.INDEX_NAME in str(err.value)


@needs
@pytest.mark.parametrize("path", ["branch", "branch/diffusion_pytorch_model.safetensors"])
def test_branch_given_as_backbone_says_it_is_a_branch(path: str):
    with pytest.raises(loaders.CheckpointError) as err:
        loaders.load_backbone(FIXTURE / path, torch.float32)
    assert "looks like a branch checkpoint" in str(err.value)


@needs
@pytest.mark.parametrize("path, kind", [("cogvideox/vae", "vae"), ("id_lora/pytorch_lora_weights.safetensors", "lora")])
def test_other_checkpoints_given_as_backbone_say_what_they_are(path: str, kind: str):
    with pytest.raises(loaders.CheckpointError, match=f"looks like a {kind} checkpoint"):
        loaders.load_backbone(FIXTURE / path, torch.float32)


@needs
def test_backbone_given_as_branch_is_refused():
    with pytest.raises(loaders.CheckpointError, match="expected the VideoPainter branch"):
        loaders.load_branch(FIXTURE / "cogvideox" / "transformer", torch.float32)


@needs
def test_branch_with_a_wrong_shape_names_the_tensor(tmp_path):
    folder = tmp_path / "branch"
    shutil.copytree(FIXTURE / "branch", folder, copy_function=shutil.copyfile)
    loaders.load_branch(folder, torch.float32)  # the copy itself loads
    sd = load_file(str(folder / loaders.WEIGHTS_NAME))
    key = "transformer_blocks.1.ff.net.0.proj.weight"
    assert sd[key].shape == (128, 32)
    sd[key] = sd[key].t().contiguous()
    save_file(sd, str(folder / loaders.WEIGHTS_NAME))
    with pytest.raises(loaders.CheckpointError) as err:
        loaders.load_branch(folder, torch.float32)
    message = str(err.value)
    assert key in message and "(32, 128)" in message and "(128, 32)" in message


@needs
def test_lora_as_pickle_is_refused(tmp_path):
    patcher = loaders.load_backbone(FIXTURE / "cogvideox", torch.float32)
    path = tmp_path / "pytorch_lora_weights.bin"
    path.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(loaders.CheckpointError, match="pickles"):
        loaders.load_lora(path, patcher)
