"""Open the ComfyUI window of the installed host with this pack, the repository's models/ and the sample clips.

    bash scripts/ui.sh [--port 8188] [--models-dir models] [--base-dir output/ui] [--cpu]

Starts ``.comfyui/ComfyUI`` (what ``scripts/quickstart.sh`` installed) on 127.0.0.1 through the headless client's
``start_server`` (the same host, pack link and ``extra_model_paths.yaml`` as ``vp_run.py``), with a base folder that
is kept between starts (your workflows, inputs and outputs stay). Before that:

- models/: when it holds no VideoPainter checkpoints, the tiny random demo weights are written there (as quickstart
  does); real weights are used as they are;
- the sample clip and its mask (``vp_sample.mp4``, ``vp_sample_mask.mp4``) go into the host's input folder;
- on the demo weights, every workflow that has demo sets (``scripts/demo_sets/<name>.json``, the sizes the tiny model
  takes) is saved with them applied as ``demo_<name>`` in the Workflows sidebar, so Run works in the browser.

Prints the URL and waits; Ctrl-C stops the host.
"""
from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import vp_pack  # noqa: F401  (registers this repository as the package 'videopainter')
from api_to_ui import convert
from make_sample_clip import MASK_NAME, VIDEO_NAME, make_sample_clip
from videopainter.vp_headless import comfy_client as cc

REPO = cc.REPO_ROOT
DEFAULT_PORT = 8188
REAL_WEIGHTS_MIN_BYTES = 500 * 2**20  # quickstart's test: a real transformer shard is GBs, the demo one a few MB
START_HERE_DEMO = "videopainter_inpaint"  # runs on the demo weights (the FLUX first-frame one needs real FLUX Fill)
HOST_NOISE = ("IMPORT FAILED", "Cannot import", "will be broken")


def has_real_weights(models_dir: Path) -> bool:
    base = models_dir / "videopainter" / "CogVideoX-5b-I2V"
    return base.is_dir() and any(p.stat().st_size > REAL_WEIGHTS_MIN_BYTES for p in base.rglob("*.safetensors"))


def ensure_models(models_dir: Path) -> bool:
    """True when models_dir holds real weights; otherwise makes sure the demo weights are there (False)."""
    if has_real_weights(models_dir):
        return True
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_demo_models.py"), str(models_dir)], check=True)
    return False


def ensure_sample_clips(input_dir: Path) -> list[Path]:
    clips = [input_dir / VIDEO_NAME, input_dir / MASK_NAME]
    if not all(p.is_file() for p in clips):
        make_sample_clip(input_dir)
    return clips


def write_demo_workflows(object_info: dict, workflows_dir: Path) -> list[Path]:
    """Each API workflow with demo sets, the sets applied, converted to the UI format, as ``demo_<name>.json``."""
    written = []
    for api_path in sorted((REPO / "workflows" / "api").glob("*.json")):
        sets = cc.demo_sets(api_path)
        if not sets:
            continue
        api = cc.apply_overrides(cc.load_workflow(api_path), sets)
        ui = convert(api, object_info, f"{api_path.stem} (demo weights)")
        target = workflows_dir / f"demo_{api_path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        cc.atomic.write_text(target, json.dumps(ui, indent=2) + "\n")
        written.append(target)
    return written


def host_noise(log_text: str) -> list[str]:
    """Lines of the host's start-up log that report a failed import or a broken feature."""
    return [line for line in log_text.splitlines() if any(mark in line for mark in HOST_NOISE)]


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start(base_dir: Path, models_dir: Path, port: int, cpu: bool) -> tuple[cc.ServerHandle, dict]:
    """Prepare models and inputs, start the host, write the demo workflows; returns the server and a summary."""
    real = ensure_models(models_dir)
    clips = ensure_sample_clips(base_dir / "input")
    server = cc.start_server(base_dir, port=port, models_dir=models_dir, cpu=cpu)
    demo = [] if real else write_demo_workflows(cc.object_info(server), base_dir / "user" / "default" / "workflows")
    noise = host_noise(server.log_path.read_text(errors="replace")) if server.log_path else []
    return server, {"real_weights": real, "clips": clips, "demo_workflows": demo, "host_noise": noise}


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port on 127.0.0.1 (default {DEFAULT_PORT}; "
                    "a free one when it is taken)")
    ap.add_argument("--models-dir", type=Path, default=REPO / "models",
                    help="model folders (videopainter/, diffusion_models/, vae/, loras/, text_encoders/); default models/")
    # not under .comfyui/: quickstart replaces that folder when the pinned host changes, saved workflows included
    ap.add_argument("--base-dir", type=Path, default=REPO / "output" / "ui",
                    help="the host's base folder (input/, output/, user/ workflows); kept between starts")
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (default: the GPU when torch sees one)")
    args = ap.parse_args(argv)
    port = args.port if port_free(args.port) else cc.free_port()
    if port != args.port:
        print(f"port {args.port} is taken: using {port}", file=sys.stderr)
    cpu = args.cpu
    if not cpu:
        import torch

        cpu = not torch.cuda.is_available()
    try:
        server, info = start(args.base_dir.resolve(), args.models_dir.resolve(), port, cpu)
    except cc.ServerStartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    with server:
        weights = "real weights" if info["real_weights"] else "TINY RANDOM DEMO WEIGHTS (output is noise-like)"
        print(f"\nComfyUI is ready: {server.url}   (Ctrl-C stops it)")
        print(f"  models:  {args.models_dir.resolve()} ({weights}); {'CPU' if cpu else 'GPU'}")
        print(f"  inputs:  {', '.join(p.name for p in info['clips'])} in {args.base_dir.resolve() / 'input'}")
        if info["demo_workflows"]:
            print(f"  start:   Workflows sidebar (press W) -> demo_{START_HERE_DEMO}, then Run; the video appears in"
                  " its Save Video node. The other demo_* workflows have the demo sizes too.")
        else:
            print("  start:   Workflow -> Browse Templates -> videopainter -> videopainter_flux_fill_first_frame")
        print(f"  log:     {server.log_path}")
        for line in info["host_noise"]:
            print(f"  host:    {line}", file=sys.stderr)
        sys.stdout.flush()
        # the host runs in its own session: a SIGTERM to this launcher must stop it too, as Ctrl-C does
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            print("\nstopping ComfyUI", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
