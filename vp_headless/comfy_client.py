"""A small client for a headless ComfyUI server: start the pinned host, submit API-format prompts, follow them.

One implementation shared by ``scripts/vp_run.py`` (the batch runner), the e2e tests and the benchmarks.
Only the standard library plus ``requests`` and ``aiohttp`` (both pinned host requirements) are used.

Typical use::

    server = start_server(tmp_dir, models_dir=repo / "models")
    try:
        prompt = apply_overrides(load_workflow("workflows/api/window_plan.json"), {"window_plan.total_frames": 97})
        result = submit(server, prompt, on_progress=print)
        result.raise_for_status()
        collect_outputs(server, result.history, "output/")
    finally:
        server.stop()
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import requests

from ..vp_core.base import atomic, hostenv
from .errors import (  # re-exported: the runners and tests write cc.ServerStartError etc.
    PARTIAL_PROMPT_ERROR,
    format_validation_error,
    ComfyClientError,
    ServerStartError,
    ServerGoneError,
    OverrideError,
    PromptValidationError,
    NodeError,
    PromptExecutionError,
)
from .workflow import (  # re-exported: cc.load_workflow, cc.apply_overrides ...
    DEMO_SETS_DIR,
    is_ui_workflow,
    load_workflow,
    find_node,
    title_key,
    apply_overrides,
    load_sets_file,
    demo_sets,
    parse_set_value,
    replace_first_frame,
)

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
PACK_DIR_NAME = "videopainter"


# Model folder names the pack reads; extra_model_paths.yaml points each at <models_dir>/<name>.
MODEL_FOLDERS = ("videopainter", "diffusion_models", "vae", "loras", "text_encoders")
START_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------------------------------- server


@dataclass
class ServerHandle:
    """A ComfyUI server: one we started (``process`` set) or one we were pointed at (``--server URL``).

    ``base_dir`` is known only for servers we started; then inputs are copied into ``base_dir/input`` and outputs
    read from ``base_dir/output`` directly, otherwise the HTTP endpoints ``/upload/image`` and ``/view`` are used.
    """

    url: str
    base_dir: Path | None = None
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    start_seconds: float | None = None
    _log_file: Any = field(default=None, repr=False)

    @property
    def input_dir(self) -> Path | None:
        return None if self.base_dir is None else self.base_dir / "input"

    @property
    def output_dir(self) -> Path | None:
        return None if self.base_dir is None else self.base_dir / "output"

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no server log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop a server we started: SIGINT (ComfyUI exits cleanly in ~2 s), then SIGTERM, then SIGKILL."""
        proc = self.process
        if proc is None:
            return None
        try:
            for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                if proc.poll() is not None:
                    break
                proc.send_signal(sig)
                try:
                    proc.wait(wait_s)
                except subprocess.TimeoutExpired:
                    log.warning("ComfyUI (pid %d) still running %.0f s after %s", proc.pid, wait_s, sig.name)
            return proc.poll()
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def _sigint_not_inherited_ignored():
    """While the server is spawned, SIGINT is not ignored in this process, so ComfyUI does not inherit "ignored".

    A client started in the background (``nohup ... &``, a non-interactive shell's ``&``, some schedulers) ignores
    SIGINT, and an ignored signal stays ignored across exec: ComfyUI would then not stop on ``ServerHandle.stop``'s
    SIGINT (its clean exit) and would be killed by SIGTERM 15 s later. A handler (this process's Ctrl-C handling)
    is reset by exec anyway, so only "ignored" needs undoing, for the instant of the spawn (main thread only: Python
    sets signal handlers there)."""
    restore = None
    if os.name == "posix" and threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            restore = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        if restore is not None:
            signal.signal(signal.SIGINT, restore)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_model_paths(base_dir: Path, models_dir: Path) -> Path:
    """Write ``base_dir/extra_model_paths.yaml`` pointing each of MODEL_FOLDERS at ``models_dir/<name>``."""
    lines = ["videopainter_models:", f"  base_path: {json.dumps(str(Path(models_dir).resolve()))}"]
    lines += [f"  {name}: {name}" for name in MODEL_FOLDERS]
    path = base_dir / "extra_model_paths.yaml"
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


def link_pack(custom_nodes_dir: Path, pack_dir: Path = REPO_ROOT, name: str = PACK_DIR_NAME) -> Path:
    """Make ``custom_nodes_dir/name`` a symlink to the pack (replacing a stale link)."""
    custom_nodes_dir.mkdir(parents=True, exist_ok=True)
    link = custom_nodes_dir / name
    if link.is_symlink() and link.resolve() == pack_dir.resolve():
        return link
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise ComfyClientError(f"{link} exists and is not a symlink; remove it or pick another base directory")
    link.symlink_to(pack_dir.resolve(), target_is_directory=True)
    return link


def start_server(
    base_dir: str | os.PathLike,
    port: int | None = None,
    extra_args: Iterable[str] = (),
    *,
    models_dir: str | os.PathLike | None = None,
    comfyui_dir: str | os.PathLike | None = None,
    python: str = sys.executable,
    timeout: float = START_TIMEOUT_S,
    cpu: bool = True,
    env: Mapping[str, str] | None = None,
) -> ServerHandle:
    """Start the ComfyUI host (the pinned one unless VP_COMFYUI_DIR names another) on 127.0.0.1 with this pack loaded, and wait until it serves /object_info.

    Parameters:
        base_dir: ComfyUI's ``--base-directory`` (custom_nodes, input, output, temp, user live under it).
        port: TCP port; a free one when ``None``.
        extra_args: more ``main.py`` arguments.
        models_dir: where ``extra_model_paths.yaml`` points the model folders; default ``<repo>/models``.
            An existing ``base_dir/extra_model_paths.yaml`` is kept when ``models_dir`` is not given.
        comfyui_dir: the host's source tree; default: the one ``vp_core/base/hostenv.py`` finds (``$VP_COMFYUI_DIR``,
            else the pinned ``.comfyui/ComfyUI`` that ``scripts/quickstart.sh --install-only`` unpacks).
        python: the interpreter that runs ``main.py``; default the one running this (its venv has the host's pins).
        timeout: seconds to wait for the server.
        cpu: pass ``--cpu``; ``False`` lets ComfyUI use the GPU(s) ``CUDA_VISIBLE_DEVICES`` shows it.
        env: variables set for the server process on top of this process's environment (e.g. one GPU per server
            with ``CUDA_VISIBLE_DEVICES``, thread counts with ``OMP_NUM_THREADS``).

    Raises:
        ServerStartError: the host is missing, exited, or did not answer in time (with its log tail).
    """
    base = Path(base_dir).resolve()
    if comfyui_dir is None:
        try:
            comfyui_dir = hostenv.comfy_dir()
        except RuntimeError as e:
            raise ServerStartError(str(e)) from e
    main_py = Path(comfyui_dir) / "main.py"
    if not main_py.exists():
        raise ServerStartError(f"{main_py} not found: run `bash scripts/quickstart.sh --install-only` first")
    base.mkdir(parents=True, exist_ok=True)
    link_pack(base / "custom_nodes")
    yaml_path = base / "extra_model_paths.yaml"
    if models_dir is not None or not yaml_path.exists():
        write_model_paths(base, Path(models_dir) if models_dir is not None else REPO_ROOT / "models")
    port = port or free_port()
    cmd = [
        python, str(main_py), *(["--cpu"] if cpu else []), "--listen", "127.0.0.1", "--port", str(port),
        "--base-directory", str(base), "--extra-model-paths-config", str(yaml_path),
        "--database-url", "sqlite:///:memory:", "--disable-auto-launch", "--disable-api-nodes",
        *extra_args,
    ]
    log_path = base / "comfyui.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - closed by ServerHandle.stop()
    t0 = time.monotonic()
    # Own session: a Ctrl-C in the terminal reaches the client only, which decides to /interrupt and stop.
    with _sigint_not_inherited_ignored():
        proc = subprocess.Popen(
            cmd, cwd=base, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=None if env is None else {**os.environ, **env},
        )
    handle = ServerHandle(url=f"http://127.0.0.1:{port}", base_dir=base, process=proc, log_path=log_path,
                          _log_file=log_file)
    log.info("starting ComfyUI: %s", " ".join(cmd))
    try:
        _wait_ready(handle, timeout)
    except BaseException:
        handle.stop()
        raise
    handle.start_seconds = time.monotonic() - t0
    log.info("ComfyUI ready at %s in %.1f s", handle.url, handle.start_seconds)
    return handle


def _wait_ready(handle: ServerHandle, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not handle.alive():
            raise ServerStartError(
                f"ComfyUI exited with code {handle.process.returncode} while starting; log tail:\n{handle.log_tail()}"
            )
        try:
            if requests.get(handle.url + "/object_info", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise ServerStartError(f"ComfyUI did not answer /object_info within {timeout:.0f} s; log tail:\n"
                                   f"{handle.log_tail()}")
        time.sleep(0.25)


def connect(url: str, timeout: float = 10.0) -> ServerHandle:
    """A handle for a server that is already running (``--server URL``); checks that it answers."""
    url = url.rstrip("/")
    if "://" not in url:
        url = "http://" + url
    try:
        requests.get(url + "/system_stats", timeout=timeout).raise_for_status()
    except requests.RequestException as e:
        raise ComfyClientError(f"no ComfyUI server answers at {url}: {e}") from e
    return ServerHandle(url=url)


def object_info(server: ServerHandle) -> dict[str, Any]:
    r = requests.get(server.url + "/object_info", timeout=30)
    r.raise_for_status()
    return r.json()


# --------------------------------------------------------------------------------------------------- inputs


def upload_input(server: ServerHandle, name: str, path: str | os.PathLike) -> str:
    """Put the file at ``path`` into the server's input folder as ``name``; returns the name nodes should use.

    Copies directly for a server we started; uploads through ``/upload/image`` (any file type) otherwise.
    """
    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(f"input file {src} does not exist")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"input name {name!r} must be a relative path inside the input folder")
    if server.input_dir is not None:
        dest = server.input_dir / rel
        atomic.copy_file(src, dest)  # a node never reads a half-copied input
        return rel.as_posix()
    with open(src, "rb") as f:
        r = requests.post(
            server.url + "/upload/image",
            files={"image": (rel.name, f)},
            data={"overwrite": "true", "type": "input", "subfolder": rel.parent.as_posix().strip(".")},
            timeout=120,
        )
    r.raise_for_status()
    return rel.as_posix()


# --------------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Progress:
    """One progress report: ``kind`` is "executing" (a node started) or "progress" (value/max inside it)."""

    kind: str
    node_id: str
    node_type: str
    value: int = 0
    max: int = 0


@dataclass
class RunResult:
    """What became of one prompt. ``status`` is "success", "error" or "interrupted"."""

    prompt_id: str
    status: str
    history: dict[str, Any]
    error: NodeError | None = None
    interrupted_node: str | None = None
    seconds: float = 0.0
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # submit(allow_partial=True): the outputs that failed validation and did not run (the server's node_errors)
    node_errors: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def outputs(self) -> dict[str, Any]:
        return self.history.get("outputs", {})

    def raise_for_status(self) -> RunResult:
        if not self.ok:
            raise PromptExecutionError(self)
        return self




def submit(
    server: ServerHandle,
    prompt: Mapping[str, Any],
    on_progress: Callable[[Progress], None] | None = None,
    timeout: float | None = None,
    on_queued: Callable[[str], None] | None = None,
    allow_partial: bool = False,
) -> RunResult:
    """Queue ``prompt`` and follow it over the websocket until it finishes; returns its RunResult.

    ``on_progress`` gets a Progress when a node starts and for every ProgressBar update; ``on_queued`` gets the
    prompt id as soon as the server accepted it (so a Ctrl-C handler can ``interrupt`` it).

    ComfyUI accepts a prompt in which only SOME outputs fail validation (HTTP 200) and runs the others. That is
    refused here as well, so a headless run cannot "succeed" with half its graph: the queued prompt is cancelled
    and PromptValidationError names every failing node. ``allow_partial=True`` runs what validated instead; the
    result's ``node_errors`` then lists what did not run.

    Raises:
        PromptValidationError: the server refused the graph (HTTP 400), or some of its outputs (HTTP 200 with
            ``node_errors``, unless ``allow_partial``).
        ServerGoneError: the server stopped while the prompt ran.
        TimeoutError: ``timeout`` seconds passed.
    """
    return asyncio.run(_submit(server, dict(prompt), on_progress, timeout, on_queued, allow_partial))


def _cancel_queued(server: ServerHandle, prompt_id: str, wait_s: float = 60.0) -> None:
    """Drop a prompt the server accepted (pending: dequeued; running: interrupted) and wait until it is gone."""
    interrupt(server, prompt_id)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        queue = requests.get(server.url + "/queue", timeout=10).json()
        if all(item[1] != prompt_id for item in (*queue.get("queue_running", []), *queue.get("queue_pending", []))):
            return
        time.sleep(0.2)
    log.warning("prompt %s was cancelled but is still in the server's queue after %.0f s", prompt_id, wait_s)


async def _submit(server: ServerHandle, prompt: dict[str, Any], on_progress, timeout: float | None,
                  on_queued, allow_partial: bool = False) -> RunResult:
    client_id = uuid.uuid4().hex
    ws_url = server.url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
    t0 = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as session:
        # Connect first so no message of ours is missed.
        async with session.ws_connect(ws_url, heartbeat=30, max_msg_size=0) as ws:
            async with session.post(server.url + "/prompt", json={"prompt": prompt, "client_id": client_id}) as r:
                body = await r.json(content_type=None)
                if r.status == 400:
                    raise PromptValidationError(body.get("error", {}), body.get("node_errors", {}))
                if r.status != 200:
                    raise ComfyClientError(f"POST /prompt answered {r.status}: {body}")
            prompt_id = body["prompt_id"]
            skipped = body.get("node_errors") or {}
            if skipped and not allow_partial:
                await asyncio.to_thread(_cancel_queued, server, prompt_id)
                error = {"type": PARTIAL_PROMPT_ERROR,
                         "message": f"the server queued only the outputs that validated, as prompt {prompt_id}; "
                                    "it was cancelled. Fix these inputs, or allow partial prompts to run the rest "
                                    "(vp_run.py --allow-partial; submit(allow_partial=True))"}
                raise PromptValidationError(error, skipped, cancelled_prompt_id=prompt_id)
            if on_queued:
                on_queued(prompt_id)
            follow = _follow(ws, prompt_id, prompt, on_progress)
            try:
                messages = await asyncio.wait_for(follow, timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s") from None
        history = await _fetch_history(session, server, prompt_id)
    result = _result(prompt_id, history, messages, time.monotonic() - t0)
    result.node_errors = dict(skipped)
    return result


async def _follow(ws, prompt_id: str, prompt: Mapping[str, Any], on_progress) -> list[tuple[str, dict]]:
    """Read websocket messages for ``prompt_id`` until ComfyUI reports the prompt done (``executing`` node None,
    sent after the history entry is written)."""
    messages: list[tuple[str, dict]] = []
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.TEXT:  # binary messages are preview images
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
            continue
        event = json.loads(msg.data)
        kind, data = event.get("type"), event.get("data") or {}
        if data.get("prompt_id") != prompt_id:
            continue
        messages.append((kind, data))
        if kind == "executing":
            node = data.get("node")
            if node is None:
                return messages
            if on_progress:
                on_progress(Progress("executing", str(node), _class_of(prompt, node)))
        elif kind == "progress" and on_progress:
            node = str(data.get("node"))
            on_progress(Progress("progress", node, _class_of(prompt, node), int(data["value"]), int(data["max"])))
    # The socket closed before the prompt finished: the history may still tell (or the server died).
    return messages


def _class_of(prompt: Mapping[str, Any], node_id: Any) -> str:
    node = prompt.get(str(node_id).split(".")[0], {})  # expanded (subgraph) ids look like "5.2"
    return node.get("class_type", "?")


async def _fetch_history(session: aiohttp.ClientSession, server: ServerHandle, prompt_id: str,
                         wait_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            async with session.get(f"{server.url}/history/{prompt_id}") as r:
                data = await r.json(content_type=None)
            if prompt_id in data:
                return data[prompt_id]
        except aiohttp.ClientError as e:
            raise ServerGoneError(f"server stopped answering while prompt {prompt_id} ran: {e}") from e
        if time.monotonic() > deadline or not server.alive():
            tail = f"\nlog tail:\n{server.log_tail()}" if server.process else ""
            raise ServerGoneError(f"no history for prompt {prompt_id} (server alive: {server.alive()}){tail}")
        await asyncio.sleep(0.2)


def _result(prompt_id: str, history: dict[str, Any], ws_messages: list, seconds: float) -> RunResult:
    status = history.get("status", {})
    messages = [(m[0], m[1]) for m in status.get("messages", [])] or ws_messages
    error, interrupted = None, None
    for kind, data in messages:
        if kind == "execution_error":
            error = NodeError(
                node_id=str(data.get("node_id")),
                node_type=str(data.get("node_type")),
                exception_type=str(data.get("exception_type", "")),
                exception_message=str(data.get("exception_message", "")),
                traceback=tuple(data.get("traceback") or ()),
            )
        elif kind == "execution_interrupted":
            interrupted = str(data.get("node_id"))
    if error is not None:
        state = "error"
    elif interrupted is not None:
        state = "interrupted"
    else:
        state = "success" if status.get("status_str", "success") == "success" else "error"
    return RunResult(prompt_id, state, history, error, interrupted, seconds, messages)


def interrupt(server: ServerHandle, prompt_id: str | None = None) -> None:
    """Stop ``prompt_id`` (or whatever runs, when ``None``): drop it from the queue if pending, else /interrupt."""
    if prompt_id is not None:
        requests.post(server.url + "/queue", json={"delete": [prompt_id]}, timeout=10)
        requests.post(server.url + "/interrupt", json={"prompt_id": prompt_id}, timeout=10).raise_for_status()
    else:
        requests.post(server.url + "/interrupt", json={}, timeout=10).raise_for_status()


# --------------------------------------------------------------------------------------------------- outputs


def iter_output_files(history: Mapping[str, Any], types: tuple[str, ...] = ("output",)):
    """(node_id, key, entry) for each output entry that names a file (``filename``, ``subfolder``, ``type``)."""
    for node_id, node_out in history.get("outputs", {}).items():
        for key, items in node_out.items():
            if not isinstance(items, list):
                continue
            for entry in items:
                if isinstance(entry, dict) and "filename" in entry and entry.get("type", "output") in types:
                    yield node_id, key, entry


def iter_output_texts(history: Mapping[str, Any]):
    """(node_id, text) for each ``text`` UI output (e.g. PreviewText)."""
    for node_id, node_out in history.get("outputs", {}).items():
        for text in node_out.get("text", []) or []:
            if isinstance(text, str):
                yield node_id, text


def collect_outputs(server: ServerHandle, history: Mapping[str, Any], dest_dir: str | os.PathLike,
                    *, save_texts: bool = True) -> list[Path]:
    """Copy every output file of a finished prompt into ``dest_dir`` (keeping subfolders); returns the paths.

    Files come from the server's output folder (or ``/view`` for a remote server). Text outputs (PreviewText)
    are written as ``<title or class>_<node id>.txt`` when ``save_texts``.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    copied: list[Path] = []
    for _node_id, _key, entry in iter_output_files(history):
        rel = Path(entry.get("subfolder") or "") / entry["filename"]
        if rel.is_absolute() or ".." in rel.parts:
            raise ComfyClientError(f"refusing output path {rel}")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if server.output_dir is not None:
            atomic.copy_file(server.output_dir / rel, target)
        else:
            params = {"filename": entry["filename"], "subfolder": entry.get("subfolder", ""), "type": "output"}
            r = requests.get(server.url + "/view", params=params, timeout=300)
            r.raise_for_status()
            atomic.write_bytes(target, r.content)
        copied.append(target)
    if save_texts:
        prompt = _prompt_of(history)
        for node_id, text in iter_output_texts(history):
            node = prompt.get(node_id, {})
            label = node.get("_meta", {}).get("title") or node.get("class_type") or "node"
            target = dest / f"{_safe_name(label)}_{_safe_name(node_id)}.txt"
            atomic.write_text(target, text if text.endswith("\n") else text + "\n")
            copied.append(target)
    return copied


def _prompt_of(history: Mapping[str, Any]) -> dict[str, Any]:
    """The prompt stored in a history entry: ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``."""
    stored = history.get("prompt")
    if isinstance(stored, list) and len(stored) > 2 and isinstance(stored[2], dict):
        return stored[2]
    return {}


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "node"
