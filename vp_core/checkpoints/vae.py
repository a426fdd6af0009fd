"""The CogVideoX VAE (diffusers' ``AutoencoderKLCogVideoX``) under ComfyUI's memory management.

Encoding follows the reference exactly: diffusers' own encode (8-frame causal batches, optional tiling) and a
posterior *sample* drawn from the run's generator, times ``scaling_factor``. Decoding is streamed: the same
2-latent causal batches and the same tiles as diffusers' ``_decode``/``tiled_decode``, but each time batch is
blended and written out before the next one is decoded, so peak memory does not grow with video length. Tiles
are blended per frame, which is why streaming the time axis is exact.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

import torch
from diffusers import AutoencoderKLCogVideoX
from torch import Tensor

import comfy.model_management
import comfy.model_patcher

from .core_interop import COGVIDEOX_5B_SCALING_FACTOR
from .loaders import CheckpointError, ManagedModule, Precision, detect_kind, read_json, read_model_folder

log = logging.getLogger(__name__)
LATENT_BATCH = 2  # latent frames per decoder call (diffusers' num_latent_frames_batch_size)
ENCODE_FRAME_BATCH = 8  # pixel frames per encoder call (diffusers' num_sample_frames_batch_size)
VAE_BYTES_PER_PIXEL = 1000  # activation elements per output pixel and frame (estimate, see working_bytes)


class VideoVAE:
    """Encode/decode video with the CogVideoX VAE; placement belongs to ComfyUI (``load_models_gpu``)."""

    def __init__(self, patcher: comfy.model_patcher.ModelPatcher):
        self.patcher = patcher

    @property
    def model(self) -> AutoencoderKLCogVideoX:
        return self.patcher.model.vae

    @property
    def scaling_factor(self) -> float:
        return float(self.model.config.scaling_factor)

    @property
    def dtype(self) -> torch.dtype:
        return self.patcher.model.precision.compute

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.model.config.block_out_channels) - 1)

    def load(self, memory_required: int = 0) -> None:
        comfy.model_management.load_models_gpu([self.patcher], memory_required=memory_required)

    def working_bytes(self, frames: int, height: int, width: int, tiling: bool) -> int:
        """Estimated activation memory of one encode/decode call on ``frames`` pixel frames of ``height x width``
        (what ``load_models_gpu`` keeps free next to the weights, like core's ``VAE.memory_used_decode``). The
        decoder's full-resolution stages hold ~128 channels in a few buffers plus the causal cache; tiles bound
        the area to one tile. An estimate (``VAE_BYTES_PER_PIXEL``), not measured on a GPU."""
        vae = self.model
        if tiling:
            height, width = min(height, vae.tile_sample_min_height), min(width, vae.tile_sample_min_width)
        return int(VAE_BYTES_PER_PIXEL * frames * height * width * torch.finfo(self.dtype).bits // 8)

    def set_tiling(self, tiling: bool) -> None:
        if tiling:
            self.model.enable_tiling()
        else:
            self.model.disable_tiling()

    @torch.no_grad()
    def encode(self, video: Tensor, generator: torch.Generator | None, tiling: bool = False, dtype: torch.dtype | None = None,
               noise: Tensor | None = None) -> Tensor:
        """Posterior sample ``[B, F', 16, h, w]`` (scaled) of ``video`` ``[B, 3, F, H, W]`` in [-1, 1].

        The noise of the sample is drawn from ``generator`` in ``dtype`` (the activation dtype), as the reference,
        unless ``noise`` (``[B, 16, F', h, w]``, channels first as the posterior) is given (training replays).
        """
        self.load(self.working_bytes(min(video.shape[2], ENCODE_FRAME_BATCH + 1), video.shape[3], video.shape[4], tiling))
        self.set_tiling(tiling)
        device = self.patcher.load_device
        dist = self.model.encode(video.to(device, self.dtype)).latent_dist
        if noise is None:
            noise = torch.randn(dist.mean.shape, generator=generator, dtype=dist.mean.dtype, device="cpu")
        noise = noise.to(device, dist.mean.dtype)
        latents = dist.mean + dist.std * noise
        return (latents * self.scaling_factor).permute(0, 2, 1, 3, 4).to(dtype or self.dtype)

    @torch.no_grad()
    def decode_iter(self, latents: Tensor, tiling: bool, interrupt: Callable[[], None] | None = None) -> Iterator[Tensor]:
        """Decode ``[B, F, 16, h, w]`` latents, yielding each chunk of frames ``[B, 3, f, H, W]`` in [-1, 1].

        Out of memory before the first chunk is out (the first time batch is the largest) retries with tiling,
        as core's VAE does (with a warning: tiles blend, so the frames differ slightly)."""
        chunks = self._decode_iter(latents, tiling, interrupt)
        try:
            first = next(chunks)
        except StopIteration:
            return
        except comfy.model_management.OOM_EXCEPTION:
            if tiling:
                raise
            log.warning("VAE decode ran out of memory; retrying with tiled decoding (turn tiling on in the decode node "
                        "to skip the untiled try)")
            comfy.model_management.soft_empty_cache()
            chunks = self._decode_iter(latents, True, interrupt)
            first = next(chunks)
        yield first
        yield from chunks

    def decode_stream(self, latents: Tensor, tiling: bool, sink: Callable[[Tensor], None], interrupt: Callable[[], None] | None = None) -> None:
        """``decode_iter``, each chunk handed to ``sink``."""
        for chunk in self.decode_iter(latents, tiling, interrupt):
            sink(chunk)

    @torch.no_grad()
    def _decode_iter(self, latents: Tensor, tiling: bool, interrupt: Callable[[], None] | None) -> Iterator[Tensor]:
        f = self.spatial_factor
        first = (LATENT_BATCH + 1) * int(self.model.config.temporal_compression_ratio)  # the largest batch, rounded up
        self.load(self.working_bytes(first, latents.shape[3] * f, latents.shape[4] * f, tiling))
        vae = self.model
        self.set_tiling(tiling)
        z = (latents.permute(0, 2, 1, 3, 4) / self.scaling_factor).to(self.patcher.load_device, self.dtype)
        frames = z.shape[2]
        batches = max(frames // LATENT_BATCH, 1)
        rem = frames % LATENT_BATCH
        h, w = z.shape[3], z.shape[4]
        tiled = vae.use_tiling and (w > vae.tile_latent_min_width or h > vae.tile_latent_min_height)
        tiles = self._tiles(h, w) if tiled else [(0, 0, h, w)]
        caches: dict[tuple[int, int], dict | None] = {(i, j): None for i, j, _, _ in tiles}
        for k in range(batches):
            if interrupt is not None:
                interrupt()
            start = LATENT_BATCH * k + (0 if k == 0 else rem)
            end = LATENT_BATCH * (k + 1) + rem
            outs = {}
            for i, j, th, tw in tiles:
                tile = z[:, :, start:end, i:i + th, j:j + tw]
                if vae.post_quant_conv is not None:
                    tile = vae.post_quant_conv(tile)
                outs[(i, j)], caches[(i, j)] = vae.decoder(tile, conv_cache=caches[(i, j)])
            yield self._blend(outs, h, w) if tiled else outs[(0, 0)]

    def _tiles(self, h: int, w: int) -> list[tuple[int, int, int, int]]:
        vae = self.model
        step_h = int(vae.tile_latent_min_height * (1 - vae.tile_overlap_factor_height))
        step_w = int(vae.tile_latent_min_width * (1 - vae.tile_overlap_factor_width))
        return [(i, j, vae.tile_latent_min_height, vae.tile_latent_min_width) for i in range(0, h, step_h) for j in range(0, w, step_w)]

    def _blend(self, outs: dict[tuple[int, int], Tensor], h: int, w: int) -> Tensor:
        """diffusers' ``tiled_decode`` blending, for one time chunk."""
        vae = self.model
        step_h = int(vae.tile_latent_min_height * (1 - vae.tile_overlap_factor_height))
        step_w = int(vae.tile_latent_min_width * (1 - vae.tile_overlap_factor_width))
        blend_h = int(vae.tile_sample_min_height * vae.tile_overlap_factor_height)
        blend_w = int(vae.tile_sample_min_width * vae.tile_overlap_factor_width)
        limit_h = vae.tile_sample_min_height - blend_h
        limit_w = vae.tile_sample_min_width - blend_w
        rows = [[outs[(i, j)] for j in range(0, w, step_w)] for i in range(0, h, step_h)]
        result_rows = []
        for r, row in enumerate(rows):
            result_row = []
            for c, tile in enumerate(row):
                if r > 0:
                    tile = vae.blend_v(rows[r - 1][c], tile, blend_h)
                if c > 0:
                    tile = vae.blend_h(row[c - 1], tile, blend_w)
                result_row.append(tile[:, :, :, :limit_h, :limit_w])
            result_rows.append(torch.cat(result_row, dim=4))
        return torch.cat(result_rows, dim=3)


def load_vae(folder: str | Path, dtype: torch.dtype | None = None, load_device=None, offload_device=None) -> VideoVAE:
    """The ``vae/`` folder of a CogVideoX diffusers download (``config.json`` + safetensors)."""
    folder = Path(folder)
    if (folder / "vae").is_dir():
        folder = folder / "vae"
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder}: a CogVideoX VAE folder needs config.json and diffusion_pytorch_model.safetensors")
    sd = read_model_folder(folder)
    if detect_kind(sd) != "vae":
        raise CheckpointError(f"{folder}: expected a CogVideoX VAE, found a {detect_kind(sd)} checkpoint")
    load_device = load_device or comfy.model_management.get_torch_device()
    offload_device = offload_device or comfy.model_management.vae_offload_device()
    dtype = dtype or comfy.model_management.vae_dtype(load_device, [torch.bfloat16, torch.float32])
    config = {k: v for k, v in read_json(cfg_path).items() if not k.startswith("_")}
    with torch.device("meta"):
        vae = AutoencoderKLCogVideoX.from_config(config)
    try:
        vae.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"{folder}: weights do not fit the VAE config ({str(e)[:300]})") from e
    return video_vae_from_module(vae, dtype, load_device, offload_device)


def video_vae_from_module(vae: AutoencoderKLCogVideoX, dtype: torch.dtype, load_device, offload_device) -> VideoVAE:
    """A loaded diffusers CogVideoX VAE under a ``ModelPatcher`` (also used for core's VAE: ``core_interop``)."""
    vae.eval().requires_grad_(False)
    root = ManagedModule("vae", vae, Precision(dtype, dtype))
    return VideoVAE(comfy.model_patcher.ModelPatcher(root, load_device=load_device, offload_device=offload_device))


# ------------------------------------------------------------------------------------------------------- VAE
def is_core_cogvideox_vae(vae) -> bool:
    """True for core's ``comfy.sd.VAE`` holding core's CogVideoX VAE (only hosts with native CogVideoX have it)."""
    try:
        from comfy.ldm.cogvideo.vae import AutoencoderKLCogVideoX as CoreCogVideoXVAE
    except ImportError:
        return False
    return isinstance(getattr(vae, "first_stage_model", None), CoreCogVideoXVAE)


def diffusers_vae_config(core_model) -> dict:
    """The diffusers ``AutoencoderKLCogVideoX`` config of core's CogVideoX VAE module, read from its weights."""
    sd = core_model.state_dict()
    down = sorted({int(k.split(".")[2]) for k in sd if k.startswith("encoder.down_blocks.")})
    channels = [sd[f"encoder.down_blocks.{i}.resnets.0.conv2.conv.weight"].shape[0] for i in down]
    layers = len({k.split(".")[4] for k in sd if k.startswith("encoder.down_blocks.0.resnets.")})
    return dict(
        in_channels=sd["encoder.conv_in.conv.weight"].shape[1], out_channels=sd["decoder.conv_out.conv.weight"].shape[0],
        latent_channels=core_model.latent_channels, block_out_channels=channels, layers_per_block=layers,
        down_block_types=["CogVideoXDownBlock3D"] * len(channels), up_block_types=["CogVideoXUpBlock3D"] * len(channels),
        norm_num_groups=core_model.encoder.norm_out.num_groups, norm_eps=core_model.encoder.norm_out.eps,
        temporal_compression_ratio=core_model.temporal_compression_ratio, scaling_factor=COGVIDEOX_5B_SCALING_FACTOR,
        use_quant_conv=False, use_post_quant_conv=False,
    )


def video_vae(vae, what: str = "vae"):
    """This pack's :class:`VideoVAE` for what a ``vae`` input received: ours as it is, or core's CogVideoX VAE
    (``VAELoader``) wrapped over the same tensors (built once per core VAE object).

    Raises:
        ValueError: a core VAE of another model (SD, FLUX, Wan ...), or something that is no VAE.
    """
    if isinstance(vae, VideoVAE):
        return vae
    if vae is None:
        raise ValueError(
            f"{what}: no VAE (a backbone loaded from a single transformer file has none): connect Load VAE on the "
            "CogVideoX VAE (e.g. cogvideox_vae.safetensors in models/vae)"
        )
    if is_core_cogvideox_vae(vae):
        cached = getattr(vae, "_videopainter_vae", None)
        if cached is None:
            from diffusers import AutoencoderKLCogVideoX

            core = vae.first_stage_model
            with torch.device("meta"):
                module = AutoencoderKLCogVideoX.from_config(diffusers_vae_config(core))
            load_device, offload_device = vae.patcher.load_device, vae.patcher.offload_device
            sd = {k: v.to(offload_device, vae.vae_dtype) for k, v in core.state_dict().items()}
            module.load_state_dict(sd, strict=True, assign=True)
            cached = video_vae_from_module(module, vae.vae_dtype, load_device, offload_device)
            vae._videopainter_vae = cached
        return cached
    model = getattr(vae, "first_stage_model", None)
    got = type(model).__module__ + "." + type(model).__name__ if model is not None else type(vae).__name__
    raise ValueError(
        f"{what}: expected the CogVideoX VAE (VideoPainter Backbone Loader's vae, or Load VAE on a CogVideoX VAE "
        f"file such as cogvideox_vae.safetensors); got {got}. Connect a CogVideoX VAE here."
    )
