"""Shared plumbing of the benchmarks: host setup, random-weight modules, alternating timers, tables and JSON.

Every benchmark builds its modules through ``vp_core.checkpoints.loaders.build_module`` (the production loader path, comfy.ops
layers) from a random state dict, so what is timed is the code the nodes run, not a copy of it.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
FIXTURES = Path(os.environ.get("VP_CONFORMANCE_DIR") or REPO.parent / "shared" / "conformance")  # ../shared beside the repo
ATTENTION_CHOICES = ("host", "sdpa")
CLOCKS = ("cpu", "wall")
CLOCK_HELP = (
    "cpu (default on CPU): CPU time of the process with 1 intra-op thread, immune to other jobs on a shared machine; "
    "wall: perf_counter with --threads threads (use on a quiet machine; always used on CUDA)"
)

log = logging.getLogger("bench")



def script(name: str):
    """A module of ``scripts/`` (``vp_pack``, which registers this repository as the package ``videopainter``, and
    developer tools such as ``make_sample_clip``), loaded from its file: the benchmarks run as files from ``bench/``,
    and the repository itself must not go on ``sys.path``, where its ``nodes/`` would shadow ComfyUI's ``nodes``."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


script("vp_pack")


def setup(attention: str = "host", cpu: bool | None = None, threads: int | None = None) -> None:
    """Make ComfyUI importable and pick its attention backend before ``comfy.model_management`` is imported.

    ``host``: whatever ComfyUI selects on this machine by default (sub-quadratic attention on CPU, PyTorch SDPA on
    NVIDIA). ``sdpa``: ``--use-pytorch-cross-attention``, i.e. ``torch.nn.functional.scaled_dot_product_attention``,
    the kernel diffusers calls.
    """
    if attention not in ATTENTION_CHOICES:
        raise ValueError(f"attention must be one of {ATTENTION_CHOICES}; got {attention!r}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from videopainter.vp_core.base.hostenv import ensure_comfy

    if "comfy.model_management" in sys.modules and attention != "host":
        raise RuntimeError("setup() must run before comfy.model_management is imported")
    ensure_comfy(cpu=cpu)
    from comfy.cli_args import args

    if attention == "sdpa":
        args.use_pytorch_cross_attention = True
    import torch

    if threads:
        torch.set_num_threads(threads)


def clock_and_threads(clock: str | None, threads: int | None, gpu: bool) -> tuple[str, int | None]:
    """Resolve the ``--clock``/``--threads`` options: CUDA always times wall clock; the CPU clock implies 1 thread."""
    if gpu:
        return "wall", threads
    clock = clock or "cpu"
    if clock == "cpu":
        if threads not in (None, 1):
            raise ValueError("--clock cpu measures one thread's work; use --clock wall with --threads")
        return clock, 1
    return clock, threads


def attention_name() -> str:
    """The function ComfyUI's ``optimized_attention`` resolved to (what vp_core's blocks call)."""
    from comfy.ldm.modules.attention import optimized_attention

    return getattr(optimized_attention, "__name__", str(optimized_attention))


# ------------------------------------------------------------------------------------------------ modules
def random_state_dict(cls, cfg, seed: int, dtype=None, gen_device: str = "cpu") -> dict:
    """Random CPU tensors for every key of ``cls(cfg)``, scaled like the conformance fixtures (set A protocol):
    matrices N(0,1)/sqrt(fan_in), norm weights 1+0.2N, other vectors 0.1N, learned pos-emb 0.3N.

    ``gen_device="cuda"`` draws on the GPU (seconds instead of a minute for the 5B model); the values then differ
    from a CPU draw, which does not matter for timing and memory."""
    import comfy.ops
    import torch

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in cls(cfg, dtype=torch.float32, operations=comfy.ops.disable_weight_init).state_dict().items()}
    g = torch.Generator(gen_device).manual_seed(seed)
    sd = {}
    for key in sorted(shapes):
        shape = shapes[key]
        x = torch.randn(shape, generator=g, dtype=torch.float32, device=gen_device)
        if key.endswith("pos_embedding"):
            x = x * 0.3
        elif len(shape) >= 2:
            x = x / math.sqrt(max(1, math.prod(shape[1:])))
        elif "norm" in key and key.endswith("weight"):
            x = 1 + 0.2 * x
        else:
            x = 0.1 * x
        sd[key] = (x.to(dtype) if dtype is not None else x).cpu()
    return sd


def build_random(cls, cfg, seed: int, dtype=None, what: str = "bench module", gen_device: str = "cpu"):
    """``cls`` built by ``vp_core.checkpoints.loaders.build_module`` (meta device, comfy.ops layers) from random weights."""
    import torch
    from videopainter.vp_core.checkpoints import loaders

    dtype = dtype or torch.float32
    sd = random_state_dict(cls, cfg, seed, dtype, gen_device)
    return loaders.build_module(cls, cfg, sd, loaders.Precision(dtype, dtype), f"random({what})", what)


def place(named: dict, dtype, device) -> list:
    """Wrap each module in a ``ModelPatcher`` (as the loaders do) and let ComfyUI's memory manager place them on
    ``device``; returns the patchers (keep them alive while the modules are used)."""
    import comfy.model_management
    from videopainter.vp_core.checkpoints import loaders

    precision = loaders.Precision(dtype, dtype)
    patchers = [loaders.patcher_for(name, module, precision, load_device=device) for name, module in named.items()]
    comfy.model_management.load_models_gpu(patchers)
    return patchers


# ------------------------------------------------------------------------------------------------- timing
def _sync(device) -> None:
    import torch

    if device is not None and getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timings:
    """Seconds per call, per name, on two clocks: ``wall`` (perf_counter) and ``cpu`` (this process's CPU time)."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]

    def on(self, clock: str) -> dict[str, list[float]]:
        return self.wall if clock == "wall" else self.cpu


def alternate(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, device=None) -> Timings:
    """Time each callable ``repeats`` times, interleaved (A B C, B C A, C A B, ...) so that drift in clock speed,
    cache state or background load falls on all of them alike."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    _sync(device)
    out = Timings({n: [] for n in names}, {n: [] for n in names})
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fns[n]()
            _sync(device)
            out.wall[n].append(time.perf_counter() - t0)
            out.cpu[n].append(time.process_time() - c0)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> float:
    """Half the inter-quartile range relative to the median: a rough +- for the tables."""
    if len(xs) < 4:
        return (max(xs) - min(xs)) / 2 / statistics.median(xs)
    q = statistics.quantiles(xs, n=4)
    return (q[2] - q[0]) / 2 / statistics.median(xs)


# ---------------------------------------------------------------------------------------------- reporting
def machine() -> dict:
    import psutil
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(terse=True),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        return f"{c:.4g}" if abs(c) < 1e4 else f"{c:.3e}"
    return str(c)


def write_json(name: str, data: dict, out_dir: Path | None = None) -> Path:
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    script = Path(sys.argv[0]).resolve()
    script = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    data = dict(data, machine=machine(), written=time.strftime("%Y-%m-%dT%H:%M:%S%z"), written_epoch=time.time(),
                command=" ".join(["python", str(script), *sys.argv[1:]]))
    from videopainter.vp_core.base import atomic

    atomic.write_text(path, json.dumps(data, indent=2, default=str) + "\n")
    return path
