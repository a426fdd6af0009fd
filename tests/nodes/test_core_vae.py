"""Core's VAE holding the CogVideoX VAE (what Load VAE gives on hosts with native CogVideoX) becomes this pack's
VideoVAE over the same tensors, with the config of the file, and decodes like core's own CogVideoX VAE.
Skipped on hosts without native CogVideoX (0.3.75)."""
from __future__ import annotations

import pytest
import torch

from interop_models import FULL_VAE, HAS_CORE_COGVIDEOX, NO_CORE_COGVIDEOX, write_full_size_vae

pytestmark = pytest.mark.skipif(not HAS_CORE_COGVIDEOX, reason=NO_CORE_COGVIDEOX)


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vae") / "cogvideox_vae"
    write_full_size_vae(folder)
    return folder


@pytest.fixture(scope="module")
def core_vae(vae_folder):
    import comfy.sd
    import comfy.utils

    sd = comfy.utils.load_torch_file(str(vae_folder / "diffusion_pytorch_model.safetensors"))
    return comfy.sd.VAE(sd=sd, dtype=torch.float32)  # what VAELoader builds (fp32 on the CPU)


def test_adapter_reads_the_config_and_shares_the_tensors(core_vae):
    from videopainter.vp_core.checkpoints.vae import VideoVAE, video_vae

    ours = video_vae(core_vae)
    assert isinstance(ours, VideoVAE) and video_vae(core_vae) is ours  # built once per core VAE
    assert video_vae(ours) is ours
    config = ours.model.config
    for key in ("block_out_channels", "layers_per_block", "latent_channels", "norm_num_groups", "norm_eps",
                "temporal_compression_ratio", "scaling_factor", "in_channels", "out_channels"):
        want = FULL_VAE[key]
        assert (list(config[key]) if isinstance(want, list) else config[key]) == want, key
    core_sd, our_sd = core_vae.first_stage_model.state_dict(), ours.model.state_dict()
    assert core_sd.keys() == our_sd.keys()
    assert all(core_sd[k].data_ptr() == our_sd[k].data_ptr() for k in core_sd)  # no copy of the weights


def test_decodes_like_the_diffusers_vae_of_the_same_file(core_vae, vae_folder):
    """The adapter runs diffusers' AutoencoderKLCogVideoX (the reference's) over core's tensors, so it decodes
    exactly as this pack's own VAE loader on the same file. Core's own CogVideoX decode is not the reference's: on
    this input it differs by about 0.3 (its rolling decode resamples the latent for the spatial norms differently),
    which is why the adapter does not call it."""
    from videopainter.vp_core.checkpoints.vae import video_vae
    from videopainter.vp_core.checkpoints.vae import load_vae

    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 3, 16, 2, 2, generator=g)  # [B, F, C, h, w]: 3 latent frames (9 video frames), 16x16 px
    outs = []
    for vae in (video_vae(core_vae), load_vae(vae_folder, dtype=torch.float32)):
        chunks = []
        vae.decode_stream(latents, False, chunks.append)
        outs.append(torch.cat(chunks, dim=2).float())
    assert outs[0].shape == (1, 3, 9, 16, 16)
    assert torch.equal(outs[0], outs[1])


def test_a_core_vae_of_another_model_is_refused():
    from types import SimpleNamespace

    from videopainter.vp_core.checkpoints.vae import video_vae

    with pytest.raises(ValueError, match="vae: expected the CogVideoX VAE .*got torch.nn.modules.linear.Linear"):
        video_vae(SimpleNamespace(first_stage_model=torch.nn.Linear(1, 1)))
