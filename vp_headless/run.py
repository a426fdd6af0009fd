"""Run an API-format ComfyUI workflow headless on the pinned host (or on a running server) and collect its outputs.

    .venv/bin/python scripts/vp_run.py WORKFLOW.json [--input NAME=PATH ...] [--set NODE.INPUT=VALUE ...]
        [--output-dir DIR] [--server URL] [--models-dir DIR] [--allow-partial]

The started host's log is kept as ``<output-dir>/comfyui.log`` and the pack's warnings of the run (e.g. the
no-first-frame fallback's) are printed at the end; a file missing from the server's input folder gets a
``--input NAME=PATH`` hint.

Exit codes: 0 success; 1 a node failed (its id, class and message are printed) or the server failed;
2 bad arguments, a UI-format workflow, or a graph the server refused (validation errors, also when only some
of its outputs fail: nothing runs unless --allow-partial); 130 Ctrl-C
(the running prompt is interrupted first).
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

import aiohttp

from . import comfy_client as cc
from ..vp_core.base import run_warnings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SERVER_LOG = "comfyui.log"  # the started host's log, copied into --output-dir when the run ends
PACK_WARNINGS = "pack_warnings.log"

DESCRIPTION = """\
Run a ComfyUI workflow headless and copy its outputs.

Only API-format workflows are supported ({node_id: {"class_type", "inputs"}}, as written by ComfyUI's
"Export (API)"; ours are in workflows/api/). UI-format files (workflows/*.json, with "nodes" and "links")
are refused with the name of their workflows/api/ twin: converting them needs every node's widget order
from the server and is not done here.

Without --server the pinned ComfyUI host (.comfyui/ComfyUI, see scripts/quickstart.sh) is started on a free
127.0.0.1 port with this pack loaded and a throw-away base directory, and stopped afterwards.
"""

EPILOG = """\
examples:
  %(prog)s workflows/api/window_plan.json --set window_plan.total_frames=97
  %(prog)s workflows/api/videopainter_inpaint.json \\
      --input vp_sample.mp4=my_clip.mp4 --input vp_sample_mask.mp4=my_mask.mp4 \\
      --set prompt.value="a red vintage car" --set seed.value=7 --output-dir output/car

exit codes: 0 success, 1 node or server failure, 2 usage or validation error, 130 interrupted (Ctrl-C)
"""


class ProgressLine:
    """One terminal line updated in place (on a TTY); plain lines at node changes otherwise."""

    def __init__(self, stream: TextIO = sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.dirty = False
        self.last_node = None

    def __call__(self, p: cc.Progress) -> None:
        if p.kind == "executing":
            text = f"node {p.node_id} {p.node_type}: running"
        else:
            pct = 100 * p.value // p.max if p.max else 0
            text = f"node {p.node_id} {p.node_type}: {p.value}/{p.max} ({pct}%)"
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.dirty = True
        elif p.kind == "executing" or p.value == p.max:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.dirty:
            self.stream.write("\n")
            self.stream.flush()
            self.dirty = False


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def missing_input_hints(prompt: dict, node_errors: dict, given: set[str]) -> list[str]:
    """A hint per file a node could not find in the server's input folder and that no ``--input`` supplied.

    ComfyUI reports such a file as "Invalid video file: NAME" (a loader's own check) or as a value not in the
    list of files; either way the remedy is ``--input NAME=PATH``, which copies a file there under that name.
    """
    hints = []
    for nid, info in node_errors.items():
        for err in info.get("errors", []):
            name = (err.get("extra_info") or {}).get("input_name")
            value = (prompt.get(nid, {}).get("inputs") or {}).get(name)
            text = f"{err.get('message', '')} {err.get('details', '')}"
            about_a_file = "file" in text.lower() or err.get("type") == "value_not_in_list"
            if isinstance(value, str) and Path(value).suffix and value not in given and about_a_file:
                hints.append(f"node {nid} ({info.get('class_type', '?')}) input {name!r}: {value!r} is not in the "
                             f"server's input folder; give the file with --input {value}=PATH "
                             f"(e.g. --input {value}=my_clip{Path(value).suffix})")
    return hints


def parse_pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"{what} {item!r} must look like KEY=VALUE")
        pairs.append((key, value))
    return pairs


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="vp_run.py", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("workflow", type=Path, help="API-format workflow JSON (e.g. workflows/api/window_plan.json)")
    ap.add_argument("--input", action="append", default=[], metavar="NAME=PATH",
                    help="copy PATH into the server's input folder as NAME (repeatable)")
    ap.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                    help="override a widget value; NODE is a node id or its title (_meta.title); VALUE is parsed "
                         "as JSON when it is valid JSON (49, 1.5, true), else kept as a string (repeatable)")
    ap.add_argument("--sets-file", type=Path, action="append", default=[], metavar="FILE.json",
                    help="a JSON object of NODE.INPUT: value overrides, applied before --set (repeatable; e.g. "
                         "scripts/demo_sets/videopainter_inpaint.json fits the workflow to the tiny demo weights)")
    ap.add_argument("--output-dir", type=Path, default=cc.REPO_ROOT / "output",
                    help="where output files are copied (default: output/ in the repo)")
    ap.add_argument("--server", metavar="URL", help="use a running ComfyUI (e.g. http://127.0.0.1:8188) "
                    "instead of starting the pinned host; inputs/outputs then go through /upload/image and /view")
    ap.add_argument("--models-dir", type=Path, default=cc.REPO_ROOT / "models",
                    help="model folders (videopainter/, diffusion_models/, vae/, loras/, text_encoders/) for the "
                         "started host (default: models/ in the repo); ignored with --server")
    ap.add_argument("--timeout", type=float, default=None, help="give up after this many seconds of execution")
    ap.add_argument("--allow-partial", action="store_true",
                    help="when some outputs fail validation, run the others (ComfyUI's own behaviour) and list what "
                         "was skipped; by default such a graph is refused (exit 2) and nothing runs")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        prompt = cc.load_workflow(args.workflow)
        inputs = [(name, Path(path)) for name, path in parse_pairs(args.input, "--input")]
        sets: dict = {}
        for sets_file in args.sets_file:
            sets.update(cc.load_sets_file(sets_file))
        sets.update({key: cc.parse_set_value(v) for key, v in parse_pairs(args.set, "--set")})
        prompt = cc.apply_overrides(prompt, sets)
        for _name, path in inputs:
            if not path.is_file():
                raise ValueError(f"--input file {path} does not exist")
    except (OSError, ValueError, cc.OverrideError) as e:
        say(f"error: {e}")
        return EXIT_USAGE

    server: cc.ServerHandle | None = None
    tmp_dir: Path | None = None
    prompt_id: list[str] = []
    progress = ProgressLine()
    try:
        if args.server:
            server = cc.connect(args.server)
            say(f"using ComfyUI at {server.url}")
        else:
            tmp_dir = Path(tempfile.mkdtemp(prefix="vp_run_"))
            say(f"starting the pinned ComfyUI host (models: {args.models_dir.resolve()}; base: {tmp_dir}, removed "
                f"after the run; its log is kept as {args.output_dir / SERVER_LOG})")
            server = cc.start_server(tmp_dir, models_dir=args.models_dir,
                                     env={run_warnings.ENV: str(tmp_dir / PACK_WARNINGS)})
            say(f"ComfyUI ready at {server.url} in {server.start_seconds:.1f} s")
        for name, path in inputs:
            cc.upload_input(server, name, path)
        t0 = time.monotonic()
        result = cc.submit(server, prompt, on_progress=progress, timeout=args.timeout, on_queued=prompt_id.append,
                           allow_partial=args.allow_partial)
        progress.done()
        if result.node_errors:
            say("warning (--allow-partial: the outputs that validated ran, these did not): "
                + cc.format_validation_error({}, result.node_errors))
            for hint in missing_input_hints(prompt, result.node_errors, {name for name, _ in inputs}):
                say(f"hint: {hint}")
        if not result.ok:
            if result.error is not None:
                say(f"error: {result.error}")
            else:
                say(f"error: prompt {result.prompt_id} was interrupted at node {result.interrupted_node}")
            return EXIT_FAILED
        files = cc.collect_outputs(server, result.history, args.output_dir)
        say(f"done in {time.monotonic() - t0:.1f} s; {len(files)} output file(s) in {args.output_dir}")
        for f in files:
            print(f)
        for node_id, text in cc.iter_output_texts(result.history):
            say(f"--- node {node_id} text output ---\n{text.rstrip()}")
        return EXIT_OK
    except cc.PromptValidationError as e:
        progress.done()
        say(f"error: {e}")
        for hint in missing_input_hints(prompt, e.node_errors, {name for name, _ in inputs}):
            say(f"hint: {hint}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        progress.done()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup below
        if server is not None and server.alive() and prompt_id:
            try:
                cc.interrupt(server, prompt_id[0])
                say(f"interrupted: sent /interrupt for prompt {prompt_id[0]}")
            except Exception as e:  # the server may already be gone; we are exiting either way
                say(f"interrupted (could not send /interrupt: {e})")
        else:
            say("interrupted")
        return EXIT_INTERRUPTED
    except (cc.ComfyClientError, TimeoutError, OSError, aiohttp.ClientError) as e:
        progress.done()
        say(f"error: {e}")
        return EXIT_FAILED
    finally:
        if server is not None and server.process is not None:
            server.stop()
        if tmp_dir is not None:
            keep_log_and_report_warnings(tmp_dir, args.output_dir)
            shutil.rmtree(tmp_dir, ignore_errors=True)


def keep_log_and_report_warnings(base_dir: Path, output_dir: Path) -> None:
    """Copy the started host's log next to the outputs (its base folder is deleted) and print the pack's warnings
    of this run (``vp_core.base.run_warnings``) last, where they are seen."""
    log_path = base_dir / "comfyui.log"
    if log_path.exists():
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            cc.atomic.copy_file(log_path, output_dir / SERVER_LOG)
            say(f"server log: {output_dir / SERVER_LOG}")
        except OSError as e:
            say(f"warning: could not keep the server log in {output_dir}: {e}")
    warnings = run_warnings.read(base_dir / PACK_WARNINGS)
    if warnings:
        say(f"the pack's warnings during this run ({len(warnings)}):")
        for line in warnings:
            say(f"  {line}")

