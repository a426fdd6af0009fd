"""The any-length pipeline in ``vp_core`` on the tiny conformance model: fixed mode keeps every frame, memory stays
flat in the number of windows, the random draws follow the reference's order, and the ID state stays small.

Models, inputs and settings are built the way ``vp_core.conformance.runner`` builds them for the ``any_length`` case
(same loaders, ``preprocess.reference_inputs``, ``sampling.Sampler``, ``sampling.decode``).
"""
from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils._python_dispatch import TorchDispatchMode

from videopainter.vp_core.pipeline import preprocess, sampling, windows
from videopainter.vp_core.conformance import runner

from conformance_fixture import FIXTURE, needs_fixture

CASE = FIXTURE / "cases" / "any_length"
KiB = 1024

pytestmark = needs_fixture("cases", "any_length")  # every test here reads the case


@pytest.fixture(scope="module")
def fx():
    fixture = runner.Fixture(FIXTURE)
    fixture.models(True)  # load everything once, outside any measurement
    return fixture


@pytest.fixture(scope="module")
def case() -> tuple[dict, dict]:
    return load_file(str(CASE / "inputs.safetensors")), json.loads((CASE / "params.json").read_text())


def conditioning(pipe: preprocess.PipelineInputs, inp: dict, params: dict) -> sampling.InpaintConditioning:
    return sampling.InpaintConditioning(
        pipe.video, pipe.masks, pipe.image, inp["prompt_embeds"], inp["negative_prompt_embeds"],
        params["height"], params["width"],
    )


def settings(params: dict, **overrides) -> sampling.SamplerSettings:
    """The any_length case's settings (DPM, dynamic CFG 6, replace_gt, mask_add, prev_clip_weight 0.5, seed 42)."""
    s = runner._settings(params)
    for k, v in overrides.items():
        setattr(s, k, v)
    return s


def reference_pipe(inp: dict, params: dict, frames: int | None = None, repeat: int = 1) -> preprocess.PipelineInputs:
    video = torch.cat([inp["video_u8"]] * repeat)[:frames]
    masks = torch.cat([inp["masks_u8"]] * repeat)[:frames]
    return preprocess.reference_inputs(video, masks, inp["first_frame_inpainted_u8"], params["dilate_size"], True)


class TransformerCalls:
    """Stands in for ``Sampler.transformer`` and notes what each backbone call was given: the ID-resample inputs
    (``IDResample``: pool mask, weight, previous tokens and their positions) and, when the sampler asked for one,
    the ``Capture`` of block outputs it hands to the next window. ``keep=False`` keeps only sizes (memory test)."""

    def __init__(self, transformer, keep: bool = True):
        self.inner, self.keep = transformer, keep
        self.calls: list[dict] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, x, context, timestep, rope, injection=None, id_resample=None, capture=None, transformer_options=None):
        out = self.inner(x, context, timestep, rope, injection, id_resample, capture, transformer_options)
        call = {"capture_bytes": _capture_bytes(capture)}
        if self.keep:
            call.update(idr=id_resample, capture=capture)
        self.calls.append(call)
        return out


def _capture_bytes(capture) -> int:
    """Bytes an ID state adds on top of what the sampler keeps anyway: the captured block outputs and positions."""
    if capture is None:
        return 0
    return sum(h.numel() * h.element_size() for h in capture.hidden) + capture.token_index.numel() * capture.token_index.element_size()


def recording_sampler(*args, keep: bool = True, **kwargs) -> tuple[sampling.Sampler, TransformerCalls]:
    sampler = sampling.Sampler(*args, **kwargs)
    calls = TransformerCalls(sampler.transformer, keep)
    sampler.transformer = calls  # an attribute of this one sampler, not a patch of the module
    return sampler, calls


# ---------------------------------------------------------------------------------------------- (a) fixed
def test_fixed_mode_51_frames_in_51_frames_out(fx, case):
    """Issue #6: a 51-frame input gives 51 output frames (window 17, overlap 1, fixed mode, ID LoRA on)."""
    inp, params = case
    pipe = reference_pipe(inp, params)
    assert pipe.video.shape[0] == 51
    plan = windows.plan_windows(51, 17, 1, "fixed")
    covered = set().union(*(range(w.frame_start, w.frame_end) for w in plan.windows))
    assert set(range(51)) <= covered and len(plan.windows) > 3  # an extra end-aligned window was needed
    steps = []
    s = settings(params, steps=2, vae_tiling=False)
    result = sampling.Sampler(fx.models(True), conditioning(pipe, inp, params), plan, s, on_step=steps.append).run()
    assert [(i.window, i.step) for i in steps] == [(w, k) for w in range(len(plan.windows)) for k in range(2)]
    assert steps[-1].done == steps[-1].total == 2 * len(plan.windows)
    assert result.latents.shape == (1, plan.merged_latents, 16, 12, 10)
    assert torch.isfinite(result.latents).all()
    assert plan.decoded_frames == 51 + plan.padded_frames  # the VAE's count for the merged latents, then trimmed
    frames = sampling.decode(fx.vae(), result.latents, s.vae_tiling, plan.output_frames)
    assert frames.shape == (51, 96, 80, 3) and frames.dtype == torch.float32
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0


# ------------------------------------------------------------------------------------------- (b) memory
def _profiled_run(fx, inp, params, frames: int, steps: int) -> dict:
    """One reference-mode run (window 17, overlap 0, ID LoRA on) + decode, under the torch profiler and tracemalloc.

    Torch CPU tensors are invisible to tracemalloc, so torch allocations come from the profiler's memory events
    ("Total Allocated" in the exported trace = live bytes the CPU allocator handed out); tracemalloc covers Python
    and numpy. Markers (``record_function``) at the last step of every window and before decoding locate the
    live-bytes level at those moments.
    """
    pipe = reference_pipe(inp, params, frames, repeat=2)
    plan = windows.plan_windows(frames, 17, 0, "reference")
    s = settings(params, steps=steps, vae_tiling=False)
    cond = conditioning(pipe, inp, params)

    ahead: list[int] = []  # the next window's pixel masks, read at this window's last step and kept for it

    def mark(info: sampling.StepInfo) -> None:
        if info.step == steps - 1:
            held = sampler._read_ahead
            ahead.append(held[1].numel() * held[1].element_size() if held is not None else 0)
            with record_function(f"vp_window_end_{info.window}"):
                pass

    gc.collect()
    tracemalloc.start()
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            sampler, calls = recording_sampler(fx.models(True), cond, plan, s, on_step=mark, keep=False)
            result = sampler.run()
            with record_function("vp_decode"):
                pass
            out = sampling.decode(fx.vae(), result.latents, s.vae_tiling, plan.output_frames)
        py_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return dict(prof=prof, plan=plan, latents=result.latents, frames=out, py_peak=py_peak, ahead_bytes=ahead,
                state_bytes=[c["capture_bytes"] for c in calls.calls][steps - 1::steps])


def _torch_levels(run: dict, trace: Path) -> dict:
    run["prof"].export_chrome_trace(str(trace))
    events = json.loads(trace.read_text())["traceEvents"]
    trace.unlink()
    mem = sorted(
        (e["ts"], e["args"]["Total Allocated"], e["args"]["Bytes"])
        for e in events if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0
    )
    marks = {e["name"]: e["ts"] for e in events if str(e.get("name", "")).startswith("vp_")}
    base = mem[0][1] - mem[0][2]  # the counter is process-wide: measure from the level before the first event

    def level(ts: float) -> int:
        times = [t for t, _, _ in mem]
        i = int(np.searchsorted(times, ts, side="right")) - 1
        return (mem[i][1] if i >= 0 else base) - base

    n = len(run["plan"].windows)
    return dict(
        peak_total=max(a for _, a, _ in mem) - base,
        peak_sampling=max(a for t, a, _ in mem if t <= marks["vp_decode"]) - base,
        window_end=[level(marks[f"vp_window_end_{k}"]) for k in range(n)],
    )


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


@pytest.mark.slow
def test_memory_is_flat_in_the_number_of_windows(fx, case, tmp_path):
    """2 windows (34 frames) vs 6 windows (102 frames: the fixture clip twice), 2 steps each.

    Stated bounds (grow_x = 6-window value - 2-window value):
    * torch peak over the whole run incl. decoding: grow <= grow(decoded frames buffer) + 2 x grow(merged latent
      buffer) + 64 KiB (decoding holds the merged latents and their scaled copy next to the output buffer);
    * torch peak while sampling: grow <= grow(merged latent buffer) + 64 KiB;
    * live torch bytes at the end of each window, minus the two ID states alive then (the one read and the one just
      captured) and the next window's pixel masks (read for the ID state and kept for that window): the same for every window >= 1 within 8 KiB, and the 6-window run's level exceeds the 2-window
      run's only by the merged-buffer growth (+16 KiB). Keeping anything per window (an ID state, a window's
      encoded latents: 38 KB here) breaks this;
    * Python/numpy peak (tracemalloc): grow <= 512 KiB.
    Measured (CPU, fp32): torch peak 202,810,564 -> 208,954,564 B (+6,144,000 = frames 5,898,240 + 2 x merged
    latents 122,880), sampling peak 74,456,684 -> 74,585,820 B (merged growth + 6 KiB), per-window levels minus
    states identical to the byte, Python peak 3.2 MB for both. RSS is not used: at this size it mostly shows the
    allocator's caching, not live tensors.
    """
    inp, params = case
    warm = windows.plan_windows(34, 17, 0, "reference")  # first-call allocations (caches) out of the measurement
    sampling.Sampler(fx.models(True), conditioning(reference_pipe(inp, params, 34), inp, params), warm,
                     settings(params, steps=1, vae_tiling=False)).run()

    small = _profiled_run(fx, inp, params, 34, 2)
    big = _profiled_run(fx, inp, params, 102, 2)
    assert (len(small["plan"].windows), len(big["plan"].windows)) == (2, 6)
    lo, hi = _torch_levels(small, tmp_path / "small.json"), _torch_levels(big, tmp_path / "big.json")

    grow_latents = _nbytes(big["latents"]) - _nbytes(small["latents"])
    grow_frames = _nbytes(big["frames"]) - _nbytes(small["frames"])
    counts = 4 * (big["plan"].merged_latents - small["plan"].merged_latents)  # the merge's float32 counters
    report = (
        f"torch peak {lo['peak_total']} -> {hi['peak_total']}, sampling peak {lo['peak_sampling']} -> "
        f"{hi['peak_sampling']}, window ends {lo['window_end']} -> {hi['window_end']}, python peak "
        f"{small['py_peak']} -> {big['py_peak']}; frames +{grow_frames}, merged latents +{grow_latents}"
    )
    print(report)
    assert hi["peak_total"] - lo["peak_total"] <= grow_frames + 2 * grow_latents + counts + 64 * KiB, report
    assert hi["peak_sampling"] - lo["peak_sampling"] <= grow_latents + counts + 64 * KiB, report

    def residual(run: dict, levels: dict) -> list[int]:
        states = [0] + run["state_bytes"]
        return [levels["window_end"][k] - states[k] - states[k + 1] - run["ahead_bytes"][k]
                for k in range(len(run["plan"].windows))]

    r_small, r_big = residual(small, lo), residual(big, hi)
    assert max(r_big[1:]) - min(r_big[1:]) <= 8 * KiB, (r_big, report)
    assert abs((r_big[1] - r_small[1]) - (grow_latents + counts)) <= 16 * KiB, (r_small, r_big, report)
    assert big["py_peak"] - small["py_peak"] <= 512 * KiB, report


# ------------------------------------------------------------------------------------ (c) and (d): any_length
class RandomDraws(TorchDispatchMode):
    """Records every random op that runs while active (output, op name, generator)."""

    WORDS = ("rand", "normal", "bernoulli", "multinomial", "dropout", "exponential", "uniform", "poisson", "geometric")

    def __init__(self):
        super().__init__()
        self.draws: list[tuple[str, object, torch.Tensor]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if any(w in func.overloadpacket.__name__ for w in self.WORDS):
            self.draws.append((str(func), kwargs.get("generator"), out.detach().clone()))
        return out


@pytest.fixture(scope="module")
def any_length_run(fx, case) -> dict:
    """The any_length case (reference mode, 51 frames, 3 windows, DPM 4 steps, ID LoRA) with its random ops and
    backbone calls recorded."""
    inp, params = case
    pipe = reference_pipe(inp, params)
    plan = windows.plan_windows(pipe.video.shape[0], params["num_frames"], params["overlap_frames"], "reference")
    sampler, calls = recording_sampler(fx.models(True), conditioning(pipe, inp, params), plan, settings(params))
    with RandomDraws() as rec:
        result = sampler.run()
    return dict(pipe=pipe, plan=plan, sampler=sampler, calls=calls.calls, draws=rec.draws, result=result, params=params)


def recorded_draws() -> dict[str, torch.Tensor]:
    """Only the rng_draw_* tensors of the expected file are read."""
    with safe_open(str(CASE / "expected.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in sorted(f.keys()) if k.startswith("rng_draw_")}


def test_fixture_draw_log_is_one_generator_in_order(case):
    """The documented protocol: torch.Generator('cpu').manual_seed(42), randn of the logged shapes, in order."""
    _, params = case
    draws = recorded_draws()
    g = torch.Generator("cpu").manual_seed(params["gen_seed"])
    assert len(params["rng_draws"]) == len(draws) == 28
    for entry in sorted(params["rng_draws"], key=lambda e: e["order"]):
        expected = draws[f"rng_draw_{entry['order']:02d}"]
        assert list(expected.shape) == entry["shape"]
        assert torch.equal(torch.randn(entry["shape"], generator=g, dtype=torch.float32), expected), entry


def test_sampler_draws_in_the_reference_order(any_length_run, case):
    """Every random op the sampler runs is a randn on its one CPU generator, and the values equal the recorded
    rng_draw_NN in order: window 0 image posterior, then per window video posterior, initial noise, masked-video
    posterior and the DPM draws (1 + 2 + 2 + 1 for 4 steps)."""
    _, params = case
    draws = recorded_draws()
    ours = any_length_run["draws"]
    sources = [e["source"] for e in sorted(params["rng_draws"], key=lambda e: e["order"])]
    assert len(ours) == len(draws), [(op, tuple(t.shape)) for op, _, t in ours]
    state = any_length_run["sampler"].generator.get_state()
    for i, (op, g, value) in enumerate(ours):
        assert op.startswith("aten.randn") and g is not None, (i, op)
        # the op sees a new Python wrapper; the same underlying generator shares the sampler's (final) state
        assert g.device.type == "cpu" and g.initial_seed() == params["gen_seed"] and torch.equal(g.get_state(), state)
        ref = draws[f"rng_draw_{i:02d}"]
        assert value.shape == ref.shape and torch.equal(value, ref), f"draw {i} ({sources[i]}) differs"


def _hole_tokens(masks_u8: torch.Tensor, win: windows.Window, latent_frames: int) -> np.ndarray:
    """Hole tokens of a window recomputed from the pipeline masks with numpy (spec §6.3, §3): latent frame i is
    pixel frame floor(i * N / L), latent pixel (r, c) is pixel (8r, 8c), a 2x2 patch is a hole if any pixel is."""
    m = masks_u8[win.frame_start:win.frame_end].numpy() >= 128
    n = m.shape[0]
    lat = np.stack([m[(i * n) // latent_frames, ::8, ::8] for i in range(latent_frames)])
    f, h, w = lat.shape
    return lat.reshape(f, h // 2, 2, w // 2, 2).any(axis=(2, 4)).reshape(-1)


def test_id_state_holds_only_the_tokens_the_next_window_reads(any_length_run):
    """The state a window hands on is captured at its last step only and stores, per block, the video tokens at
    (its holes | the next window's holes), not every hidden state of every step (spec §9 item 19); the last window
    hands on nothing. The next window reads exactly that state: at its step 0 with the previous window's token
    mask, from step 1 on with its own (the reference's mask swap, §4.2 item 4); window 0 is its own pool."""
    run = any_length_run
    plan, calls, masks = run["plan"], run["calls"], run["pipe"].masks
    steps, n_windows, L = len(run["sampler"].timesteps), len(plan.windows), plan.latents_per_window
    video_tokens = L * (12 // 2) * (10 // 2)
    assert len(calls) == n_windows * steps == 12
    captured_at = [i for i, c in enumerate(calls) if c["capture"] is not None]
    assert captured_at == [k * steps + steps - 1 for k in range(n_windows - 1)]
    holes = [_hole_tokens(masks, w, L) for w in plan.windows]
    # what the reference keeps instead: [2, text + video tokens, D] per block, for every step of the window
    reference_bytes = 4 * 2 * (16 + video_tokens) * 32 * 4 * steps
    for k in range(n_windows):
        window_calls = calls[k * steps:(k + 1) * steps]
        if k == 0:
            assert all(c["idr"].prev is None for c in window_calls)  # own holes as the pool
        else:
            cap = calls[captured_at[k - 1]]["capture"]
            for i, c in enumerate(window_calls):
                idr = c["idr"]
                assert idr.weight == run["params"]["prev_clip_weight"]
                assert idr.prev is not None and len(idr.prev) == 4
                assert all(p is h for p, h in zip(idr.prev, cap.hidden))
                assert torch.equal(idr.prev_index.cpu(), cap.token_index.cpu())
                expected_mask = holes[k - 1] if i == 0 else holes[k]
                assert idr.mask.shape == (2, video_tokens)
                assert all(row == expected_mask.tolist() for row in idr.mask.cpu().tolist()), (k, i)
        if k < n_windows - 1:
            cap = calls[captured_at[k]]["capture"]
            expected = np.flatnonzero(holes[k] | holes[k + 1])
            assert 0 < len(expected) < video_tokens
            assert cap.token_index.cpu().tolist() == expected.tolist()
            assert len(cap.hidden) == 4 and all(h.shape == (2, len(expected), 32) for h in cap.hidden)
            assert _capture_bytes(cap) < reference_bytes / 4
    assert run["result"].id_state is None
