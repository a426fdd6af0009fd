"""Any-length denoising (spec §5, §6): windows x steps with the branch, ID resampling, replace-gt and CFG.

Random draws follow the reference's order on one CPU ``torch.Generator``: per window (image posterior in window 0),
video posterior, initial noise, masked-video posterior, then the scheduler's draws.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Callable

import torch
from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler
from torch import Tensor

import comfy.model_management

from . import preprocess
from ..video import video_io
from ..base.finite import DECODE_CAUSES, SAMPLER_CAUSES, require_finite
from .id_state import IDState, check_fits, run_spec
from ..checkpoints.loaders import DEFAULT_SCHEDULER
from ..model.config import CogVideoXConfig
from ..model.id_resample import IDResample
from ..model.rope import video_rope
from ..model.transformer import Capture, Injection, token_mask
from ..checkpoints.vae import VideoVAE
from .windows import Window, WindowPlan, decoded_frame_count

log = logging.getLogger(__name__)
SCHEDULERS = ("dpm", "ddim")


@dataclass
class SamplerSettings:
    """Knobs of a run; defaults are the reference's (``infer/inpaint.py``)."""

    steps: int = 50
    guidance: float = 6.0
    dynamic_cfg: bool = True
    scheduler: str = "dpm"
    eta: float = 0.0
    replace_gt: bool = True
    mask_add: bool = True
    prev_clip_weight: float = 0.0
    conditioning_scale: float = 1.0
    branch_strength: float = 1.0
    branch_start: float = 0.0
    branch_end: float = 1.0
    vae_tiling: bool = False
    seed: int = 42


@dataclass
class Models:
    """Everything a run needs, already loaded as ``ModelPatcher``s (ComfyUI places them)."""

    backbone: object
    branch: object | None
    vae: VideoVAE
    scheduler_config: dict
    id_resample: bool = False


@dataclass
class InpaintConditioning:
    """The pipeline's pixel inputs at source resolution plus text and working size."""

    video: video_io.Frames  # uint8 [T, H, W, 3]
    masks: video_io.Frames  # uint8 [T, H, W], 255 = hole
    image: Tensor | None  # uint8 [H, W, 3]; None: no first frame, window 0 gets a zero image latent
    positive: Tensor  # [1, text_len, text_dim]
    negative: Tensor | None
    height: int
    width: int
    crop: dict | None = None  # crop mode's box (``CropPlan.spec``): a carried ID state must share it


@dataclass
class StepInfo:
    window: int
    step: int
    done: int
    total: int
    latents: Tensor


@dataclass
class SampleResult:
    latents: Tensor  # merged [B, L_total, 16, h, w]
    plan: WindowPlan
    id_state: IDState | None = None


def make_scheduler(kind: str, config: dict):
    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    if kind == "dpm":
        return CogVideoXDPMScheduler.from_config(cfg, timestep_spacing="trailing")
    if kind == "ddim":
        return CogVideoXDDIMScheduler.from_config(cfg)
    raise ValueError(f"scheduler must be one of {SCHEDULERS}; got {kind!r}")


def dynamic_guidance(guidance: float, t: int, steps: int) -> float:
    """The reference's dynamic CFG with the *raw* timestep (§9 item 12): erratic, but what the model was run with."""
    return 1 + guidance * ((1 - math.cos(math.pi * ((steps - t) / steps) ** 5.0)) / 2)


def activation_bytes(cfg, latent_frames: int, lat_h: int, lat_w: int, batch: int, dtype: torch.dtype,
                     id_resample: bool) -> int:
    """Memory one transformer call needs beyond its weights, so ComfyUI keeps room for it when it partially loads
    the model (like its own samplers do): ~15 hidden-state-sized buffers (q, k, v, attention output, the
    feed-forward's token chunks, residuals) per CFG batch, plus the extra keys/values of ID resampling (as many as
    the literal form's, the fallback where no log-sum-exp kernel exists). ``bench/bench_gpu.py`` uses the same."""
    p = cfg.patch_size
    tokens = cfg.max_text_seq_length + latent_frames * (lat_h // p) * (lat_w // p)
    per_buffer = batch * tokens * cfg.inner_dim * (torch.finfo(dtype).bits // 8)
    return per_buffer * (15 + (4 if id_resample else 0))


READ_CHUNK = 4  # source frames read and resized at a time: bounds the source-resolution copies of a window


def _window_pixels(src: video_io.Frames, win: Window, convert: Callable[[Tensor], Tensor]) -> Tensor:
    """A window's frames (``src`` at source resolution, read when the window starts) converted to the working size,
    ``READ_CHUNK`` frames at a time (every conversion is per frame, so this equals converting them at once)."""
    parts = [convert(video_io.read_frames(src, a, min(a + READ_CHUNK, win.frame_end)))
             for a in range(win.frame_start, win.frame_end, READ_CHUNK)]
    return torch.cat(parts, 2)


class Sampler:
    """One any-length run. ``run`` is the whole procedure; the pieces are methods so each fits on a screen."""

    def __init__(self, models: Models, cond: InpaintConditioning, plan: WindowPlan, settings: SamplerSettings,
                 on_step: Callable[[StepInfo], None] | None = None, interrupt: Callable[[], None] | None = None,
                 initial_noise: Tensor | None = None):
        self.m, self.cond, self.plan, self.s = models, cond, plan, settings
        self.on_step, self.interrupt, self.initial_noise = on_step, interrupt, initial_noise
        self.transformer = models.backbone.model.diffusion_model
        self.branch = models.branch.model.branch if models.branch is not None else None
        self.cfg = self.transformer.cfg
        self.device = models.backbone.load_device
        self.dtype = models.backbone.model.precision.compute
        self.scheduler = make_scheduler(settings.scheduler, models.scheduler_config)
        self.scheduler.set_timesteps(settings.steps, device=self.device)
        self.timesteps = self.scheduler.timesteps
        self.do_cfg = settings.guidance > 1.0
        f = models.vae.spatial_factor
        self.lat_h, self.lat_w = cond.height // f, cond.width // f
        self.rope = tuple(r.to(self.device) for r in video_rope(self.cfg, plan.latents_per_window, self.lat_h, self.lat_w))
        self.spec = run_spec(self.cfg, cond.height, cond.width, plan, 2 if self.do_cfg else 1,
                             (plan.latents_per_window, self.cfg.latent_channels, self.lat_h, self.lat_w), cond.crop)
        self.generator = torch.Generator("cpu").manual_seed(settings.seed)
        # ComfyUI's per-model options (attention overrides set by other nodes) reach every attention call
        self.transformer_options = dict(getattr(models.backbone, "model_options", {}).get("transformer_options", {}))
        self._read_ahead: tuple[int, Tensor] | None = None  # the next window's pixel masks, read by _keep_index

    # ------------------------------------------------------------------------------------------- per window
    def prepare_window(self, win: Window, prev_latents: Tensor | None) -> dict:
        """Encode the window (draws in the reference's order) and build its latent mask."""
        c, s, vae = self.cond, self.s, self.m.vae
        video = _window_pixels(c.video, win, lambda x: preprocess.window_video(x, c.height, c.width))
        if prev_latents is None and c.image is None:
            # No first frame (preprocess.first_frame_inputs): the all-zero image latent of the training's image
            # dropout. Nothing is encoded, so no random draw is taken for it.
            log.info("window 0: no first frame, zero image latent")
            image_latents = torch.zeros(1, 1, self.cfg.latent_channels, self.lat_h, self.lat_w, dtype=self.dtype)
        elif prev_latents is None:
            img = preprocess.image(c.image, c.height, c.width)[:, :, None]
            image_latents = vae.encode(img, self.generator, s.vae_tiling, self.dtype)
        else:
            idx = win.cond_latent_index if win.cond_latent_index is not None else self.plan.continue_cond_index
            image_latents = prev_latents[:, idx:idx + 1]
        L = self.plan.latents_per_window
        pad = torch.zeros(1, L - 1, *image_latents.shape[2:], dtype=self.dtype, device=image_latents.device)
        image_latents = torch.cat([image_latents.to(self.dtype), pad.to(image_latents.device)], 1).to(self.device)
        video_latents = vae.encode(video, self.generator, s.vae_tiling, self.dtype).to(self.device)
        shape = (1, L, self.cfg.latent_channels, self.lat_h, self.lat_w)
        if self.initial_noise is not None and win.index == 0:
            noise = self.initial_noise.to(self.dtype)
        else:
            noise = torch.randn(shape, generator=self.generator, dtype=self.dtype)
        noise = noise.to(self.device)
        latents = noise * self.scheduler.init_noise_sigma
        pix_mask = self._pixel_mask(win)
        masked = video * (pix_mask < 0.5)
        masked_latents = vae.encode(masked, self.generator, s.vae_tiling, self.dtype).to(self.device)
        mask = preprocess.latent_mask(pix_mask, L, self.lat_h, self.lat_w).to(self.device, self.dtype)
        return dict(latents=latents, noise=noise, image=image_latents, video=video_latents, masked=masked_latents, mask=mask)

    def activation_bytes(self) -> int:
        """Memory one transformer call needs beyond its weights (``activation_bytes`` for this run)."""
        return activation_bytes(self.cfg, self.plan.latents_per_window, self.lat_h, self.lat_w, 2 if self.do_cfg else 1,
                                self.dtype, self.m.id_resample)

    def id_state_bytes(self, win: Window, mask: Tensor, state: IDState | None) -> int:
        """Compute-device memory of the ID states during window ``win``: the previous state where it lives there,
        and the one this window captures at its last step (kept there, except the last window's, which goes to
        host memory at once), so ComfyUI's memory manager budgets both generations."""
        if not self.m.id_resample:
            return 0
        prev = sum(h.numel() * h.element_size() for h in (state.hidden if state is not None else [])
                   if h.device.type == torch.device(self.device).type)
        if win.index + 1 >= len(self.plan.windows):
            return prev
        keep = self._keep_index(win, token_mask(mask, self.cfg.patch_size)).numel()
        batch = 2 if self.do_cfg else 1
        return prev + self.cfg.num_layers * batch * keep * self.cfg.inner_dim * (torch.finfo(self.dtype).bits // 8)

    def branch_active(self, step: int) -> bool:
        frac = step / max(len(self.timesteps), 1)
        return self.branch is not None and self.s.branch_strength != 0 and self.s.branch_start <= frac <= self.s.branch_end

    def denoise_window(self, win: Window, w: dict, state: IDState | None, capture_state: bool, done: int, total: int):
        """Run every step of one window; returns (final latents, captured block outputs or None)."""
        s = self.s
        mask1 = w["mask"]
        batch = 2 if self.do_cfg else 1
        mask_b = mask1.repeat(batch, 1, 1, 1, 1)
        hole = token_mask(mask_b, self.cfg.patch_size)
        context = torch.cat([self.cond.negative, self.cond.positive]) if self.do_cfg else self.cond.positive
        context = context.to(self.device, self.dtype)
        branch_cond = torch.cat([w["masked"].repeat(batch, 1, 1, 1, 1), mask_b], 2)
        image = w["image"].repeat(batch, 1, 1, 1, 1)
        latents, old_x0 = w["latents"], None
        prev = state.hidden if state is not None and state.hidden else None
        uses_prev = prev is not None and s.prev_clip_weight > 0
        prev_mask = state.token_mask.to(self.device) if uses_prev else None
        captured = None
        n = len(self.timesteps)
        for i, t in enumerate(self.timesteps):
            if self.interrupt is not None:
                self.interrupt()
            z = latents.repeat(batch, 1, 1, 1, 1)
            z = self.scheduler.scale_model_input(z, t)
            timestep = t.expand(batch)
            injection = None
            if self.branch_active(i):
                samples = self.branch(z, branch_cond, context, timestep, self.rope, s.conditioning_scale)
                if s.branch_strength != 1.0:
                    samples = [x * s.branch_strength for x in samples]
                injection = Injection(samples, hole, s.mask_add)
            idr = None
            if self.m.id_resample:
                # REPRODUCE (§4.2 item 4): the reference overwrites its "previous mask" with the mask every call
                # returns, so step 0 reads the previous window's mask and later steps the window's own.
                r = prev_mask if (uses_prev and i == 0) else hole
                idr = IDResample(r, s.prev_clip_weight, prev, state.token_index if prev is not None else None)
                idr.check()
            capture = None
            if i == n - 1 and self.m.id_resample and capture_state:
                last_window = win.index + 1 >= len(self.plan.windows)  # its state holds every token: host memory
                capture = Capture(self._keep_index(win, hole), device="cpu" if last_window else None)
            v = self.transformer(torch.cat([z, image], 2), context, timestep, self.rope, injection, idr, capture,
                                 transformer_options=self.transformer_options)
            v = v.float()
            if self.do_cfg:
                g = dynamic_guidance(s.guidance, int(t.item()), n) if s.dynamic_cfg else s.guidance
                v_u, v_c = v.chunk(2)
                v = v_u + g * (v_c - v_u)
            latents, old_x0 = self._step(v, old_x0, i, t, latents)
            require_finite(latents, f"the latents after step {i + 1} of {n} of window {win.index + 1} of "
                                    f"{len(self.plan.windows)}", SAMPLER_CAUSES)
            latents = latents.to(self.dtype)
            if s.replace_gt:
                latents = self._replace_gt(latents, w, i)
            if capture is not None:
                captured = (capture, hole)
            if self.on_step is not None:
                self.on_step(StepInfo(win.index, i, done + i + 1, total, latents))
        return latents, captured

    def _pixel_mask(self, win: Window) -> Tensor:
        """The window's resized binary masks ``[1, 1, N, H, W]`` (read at the last step of the window before for the
        ID state, and kept from then on: the masks are read from the source once)."""
        if self._read_ahead is not None and self._read_ahead[0] == win.index:
            pix, self._read_ahead = self._read_ahead[1].float(), None
            return pix
        c = self.cond
        return _window_pixels(c.masks, win, lambda x: preprocess.window_masks(x, c.height, c.width))

    def _keep_index(self, win: Window, hole: Tensor) -> Tensor:
        """Token positions the next window may read: this window's holes plus the next window's (or all)."""
        if win.index + 1 >= len(self.plan.windows):
            return torch.arange(hole.shape[1], device=hole.device)
        nxt = self.plan.windows[win.index + 1]
        pix = self._pixel_mask(nxt)
        self._read_ahead = (nxt.index, pix.to(torch.uint8))  # binary: exact as uint8, a quarter of the bytes
        nxt_hole = token_mask(preprocess.latent_mask(pix, self.plan.latents_per_window, self.lat_h, self.lat_w), self.cfg.patch_size)
        return torch.nonzero(hole.any(0) | nxt_hole.to(hole.device).any(0)).flatten()

    def _step(self, v: Tensor, old_x0: Tensor | None, i: int, t: Tensor, latents: Tensor):
        if isinstance(self.scheduler, CogVideoXDPMScheduler):
            back = self.timesteps[i - 1] if i > 0 else None
            return self.scheduler.step(v, old_x0, t, back, latents, eta=self.s.eta, generator=self.generator, return_dict=False)
        return self.scheduler.step(v, t, latents, eta=self.s.eta, generator=self.generator, return_dict=False)[0], None

    def _replace_gt(self, latents: Tensor, w: dict, i: int) -> Tensor:
        """Paste the (noised) known latents outside the hole, at the *next* timestep (§6.4)."""
        target = w["video"]
        if i < len(self.timesteps) - 1:
            nxt = torch.tensor([self.timesteps[i + 1]], device=self.device)
            target = self.scheduler.add_noise(target, w["noise"], nxt)
        m = w["mask"].repeat(1, 1, self.cfg.latent_channels, 1, 1)
        return (1 - m) * target + m * latents

    # ------------------------------------------------------------------------------------------------- run
    def run(self, state: IDState | None = None, capture_final: bool = False, reset_windows: tuple[int, ...] = (),
            on_checkpoint: Callable[[IDState], None] | None = None) -> SampleResult:
        """All windows of the plan.

        Parameters:
            state: continue after an earlier run (chained clips): its final latents give the first window's I2V
                latent, its block outputs the ID-resample pool, its generator state the random draws. A checkpoint
                (``state.resume_window`` set) instead resumes this same plan at that window.
            capture_final: also return the state after the last window (to chain or save it).
            reset_windows: windows (0-based, this plan) where the ID pool is dropped (scene cut): that window
                uses its own holes, as window 0 does; the I2V latent still comes from the previous window.
            on_checkpoint: called after every window but the last with a checkpoint that resumes the run exactly.
        """
        plan, m = self.plan, self.m
        if state is not None:
            check_fits(state, self.spec)  # before any model loads or step runs
        if state is not None and state.rng_state is not None:
            self.generator.set_state(state.rng_state)
        acc = torch.zeros(1, plan.merged_latents, self.cfg.latent_channels, self.lat_h, self.lat_w, dtype=self.dtype)
        counts = torch.zeros(plan.merged_latents)
        start, offset = 0, (state.window_index + 1 if state is not None else 0)
        if state is not None and state.resume_window is not None:
            if state.merged is None or tuple(state.merged.shape) != tuple(acc.shape):
                got = None if state.merged is None else tuple(state.merged.shape)
                raise ValueError(
                    f"id_state: this checkpoint was saved for a run with merged latents {got}, this run has "
                    f"{tuple(acc.shape)}; resume with the same clip, size and window settings"
                )
            start, offset = state.resume_window, 0
            acc, counts = state.merged.clone().to(acc.dtype), state.counts.clone()
        total = len(plan.windows) * len(self.timesteps)
        prev_latents = None if state is None else state.prev_latents.to(self.device)
        for win in plan.windows[start:]:
            w = self.prepare_window(win, prev_latents)
            comfy.model_management.load_models_gpu(
                [m.backbone] + ([m.branch] if m.branch is not None else []),
                memory_required=self.activation_bytes() + self.id_state_bytes(win, w["mask"], state))
            if win.index in reset_windows and state is not None:
                state = replace(state, hidden=[], token_index=state.token_index[:0])
            last = win.index == len(plan.windows) - 1
            keep = not last or capture_final
            latents, captured = self.denoise_window(win, w, state, keep, win.index * len(self.timesteps), total)
            o = win.latent_offset
            acc[:, o:o + latents.shape[1]] += latents.cpu()
            counts[o:o + latents.shape[1]] += 1
            state = None
            if keep:
                cap, hole = captured if captured is not None else (None, torch.zeros(0, dtype=torch.bool))
                state = IDState(
                    cap.hidden if cap else [], cap.token_index if cap else torch.zeros(0, dtype=torch.long), hole,
                    latents, offset + win.index, self.generator.get_state(), made_with=self.spec,
                )
                if on_checkpoint is not None and not last:
                    on_checkpoint(replace(state, resume_window=win.index + 1, merged=acc.clone(), counts=counts.clone()))
            prev_latents = latents
        acc = acc / counts.clamp(min=1)[None, :, None, None, None].to(acc.dtype)
        return SampleResult(acc, plan, state.to("cpu") if state is not None and capture_final else None)


def join_latents(first: Tensor, second: Tensor, overlap: int) -> Tensor:
    """Merge the latents of two chained runs ``[B, F, C, h, w]`` the way one run merges its windows: the
    ``overlap`` latents they share are averaged. Exact when each shared latent belongs to one window of each run
    (always, unless a window overlaps its neighbour by more than half its latents)."""
    if overlap <= 0:
        return torch.cat([first, second], 1)
    if overlap > min(first.shape[1], second.shape[1]):
        raise ValueError(f"cannot join: {overlap} shared latents but the parts have {first.shape[1]} and {second.shape[1]}")
    shared = (first[:, -overlap:] + second[:, :overlap]) / 2
    return torch.cat([first[:, :-overlap], shared, second[:, overlap:]], 1)


def decode(vae: VideoVAE, latents: Tensor, tiling: bool, frames: int | None = None,
           interrupt: Callable[[], None] | None = None) -> Tensor:
    """Decode merged latents to ``float32 [F, H, W, 3]`` in [0, 1], streamed into one output buffer."""
    out: Tensor | None = None
    filled = 0
    n = decoded_frame_count(latents.shape[1])

    def sink(x: Tensor) -> None:
        nonlocal out, filled
        require_finite(x, f"the decoded frames {filled + 1}-{filled + x.shape[2]} of {n}", DECODE_CAUSES)
        x = (x[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 3, 0).float().cpu()
        if out is None:
            out = torch.empty(n, *x.shape[1:], dtype=torch.float32)
        out[filled:filled + x.shape[0]] = x
        filled += x.shape[0]

    vae.decode_stream(latents, tiling, sink, interrupt)
    return out[: frames if frames is not None else filled]


def check_text_embedding(name: str, shape: tuple[int, ...], cfg) -> None:
    """Raise a ValueError that names the real cause when a conditioning's embeddings do not fit the loaded backbone.

    The usual cause is a workflow at the released size (226 tokens) run on the tiny demo weights (16 tokens), or the
    other way round: the fix is the text encoder's ``max_text_tokens`` (the demo sets files set it), not the node.
    """
    want = (cfg.max_text_seq_length, cfg.text_embed_dim)
    if len(shape) == 3 and shape[1:] == want:
        return
    released = CogVideoXConfig()
    released_size = (released.max_text_seq_length, released.text_embed_dim)
    which = ("the loaded backbone (CogVideoX-5b-I2V size)" if want == released_size else
             f"the loaded backbone (its config.json: max_text_seq_length={want[0]}, text_embed_dim={want[1]}; the tiny "
             f"demo weights are this small, CogVideoX-5b-I2V expects {released_size[0]} x {released_size[1]})")
    msg = f"{name}: {which} expects text embeddings of {want[0]} tokens x {want[1]}; got shape {shape}."
    if len(shape) == 3 and shape[2] != want[1]:
        msg += (f" The width {shape[2]} is not the backbone's: the prompt was encoded by a text encoder that does not "
                f"belong to this backbone; load the matching one in 'VideoPainter Text Encoder Loader'.")
    if len(shape) == 3 and shape[1] != want[0]:
        msg += (f" Set max_text_tokens on 'VideoPainter Text Encode' to {want[0]} (headless: "
                f"--set text_encode.max_text_tokens={want[0]}; on the demo weights pass the workflow's demo sets file, "
                f"vp_run.py --sets-file scripts/demo_sets/<workflow>.json, which sets it and the demo sizes).")
    if len(shape) != 3:
        msg += " Encode the prompt with 'VideoPainter Text Encode'."
    raise ValueError(msg)


def run_inpaint(model, vae: VideoVAE, job: "preprocess.InpaintInput", positive: Tensor, negative: Tensor | None,
                settings: SamplerSettings, plan: WindowPlan, on_step: Callable[[StepInfo], None] | None = None,
                interrupt: Callable[[], None] | None = None, id_state: IDState | None = None,
                capture_final: bool = True, reset_windows: tuple[int, ...] = (),
                on_checkpoint: Callable[[IDState], None] | None = None) -> SampleResult:
    """The sampler node's one call: read what is attached to the MODEL, then run all windows."""
    from ..checkpoints import attach

    attach.require_videopainter_model(model)
    branch, options = attach.branch_of(model)
    if branch is None:
        raise ValueError("model: no VideoPainter branch is attached; add 'VideoPainter Apply Branch' before the sampler")
    cfg = model.model.diffusion_model.cfg
    for name, emb in (("positive", positive), ("negative", negative)):
        if emb is not None:
            check_text_embedding(name, tuple(emb.shape), cfg)
    if settings.guidance > 1.0 and negative is None:
        raise ValueError("negative: classifier-free guidance (cfg > 1) needs a negative conditioning")
    if not job.streamed and not bool((job.pipeline.masks > 0).any()):  # a streamed clip is not read ahead for this
        log.warning("the mask is empty: there is nothing to fill; the video is only re-encoded")
    s = SamplerSettings(**{**settings.__dict__})
    if options is not None:
        s.branch_strength, s.branch_start, s.branch_end = options.strength, options.start_percent, options.end_percent
    sched = model.get_attachment(attach.SCHEDULER_KEY) or dict(DEFAULT_SCHEDULER)
    models = Models(model, branch, vae, sched, attach.has_id_lora(model))
    cond = InpaintConditioning(job.pipeline.video, job.pipeline.masks, job.pipeline.image, positive, negative, job.height, job.width,
                                job.crop.spec() if job.crop is not None else None)
    try:
        return Sampler(models, cond, plan, s, on_step=on_step, interrupt=interrupt).run(id_state, capture_final, reset_windows, on_checkpoint)
    finally:  # the job stays in ComfyUI's cache: its readers let go of their decoders and kept frames until reused
        video_io.close(cond.video)
        video_io.close(cond.masks)
