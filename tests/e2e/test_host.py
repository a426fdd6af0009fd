"""The pack inside the real pinned ComfyUI host: listed, runnable, errors reach the client, the runner's exit codes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from videopainter.vp_headless import comfy_client as cc
from test_workflows_extra import demo_prompt  # FLUX Fill's workflow runs its VideoPainter half (no tiny FLUX exists)

REPO = Path(__file__).resolve().parents[2]
VP_RUN = REPO / "scripts" / "vp_run.py"
API_WORKFLOWS = sorted((REPO / "workflows" / "api").glob("*.json"))
WINDOW_PLAN = REPO / "workflows" / "api" / "window_plan.json"

pytestmark = pytest.mark.e2e


def plan_error(**kwargs) -> str:
    """The exact message vp_core gives for a bad plan, computed in-process (what the user must see verbatim)."""
    from videopainter.vp_core.pipeline import windows

    with pytest.raises(ValueError) as e:
        windows.plan_windows(**kwargs)
    return str(e.value)


def vp_run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(VP_RUN), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


# ------------------------------------------------------------------------------------------ (a) nodes are listed


def test_pack_nodes_listed_in_object_info(server):
    from videopainter.nodes import NODE_LIST

    info = cc.object_info(server)
    listed = {name for name in info if name.startswith("VideoPainter")}
    expected = {node.define_schema().node_id for node in NODE_LIST}
    assert "VideoPainterWindowPlan" in listed
    assert listed == expected, f"missing: {expected - listed}, unexpected: {listed - expected}"
    for name in listed:
        assert info[name]["category"].startswith("videopainter"), (name, info[name]["category"])
        assert info[name]["python_module"].startswith("custom_nodes.videopainter"), info[name]["python_module"]


def test_server_log_has_no_pack_import_error(server):
    # Core's audio nodes fail to import (no torchaudio in the pinned host, by design); only our pack matters here.
    lines = server.log_path.read_text(errors="replace").splitlines()
    ours = [line for line in lines if line.rstrip().endswith("custom_nodes/videopainter")]
    assert ours and all("IMPORT FAILED" not in line for line in ours), ours
    assert not [line for line in lines if line.startswith("Cannot import") and "videopainter" in line]


# ------------------------------------------------------------------------------------------ (b) workflows run


@pytest.mark.parametrize("path", API_WORKFLOWS, ids=[p.stem for p in API_WORKFLOWS])
def test_api_workflow_runs_to_completion(server, path: Path, tmp_path: Path):
    progress: list[cc.Progress] = []
    # The session's model folders hold the tiny demo weights; scripts/demo_sets/ sizes the workflow for them.
    prompt = demo_prompt(server, path, tmp_path)
    result = cc.submit(server, prompt, on_progress=progress.append, timeout=600)
    assert result.ok, f"{result.status}: {result.error}"
    assert result.outputs, "the workflow produced no outputs"
    assert {p.node_id for p in progress if p.kind == "executing"}, "no 'executing' message reached the client"
    files = cc.collect_outputs(server, result.history, tmp_path)
    assert files and all(f.stat().st_size > 0 for f in files)


def test_window_plan_output_is_the_planner_summary(server):
    from videopainter.vp_core.pipeline import windows

    prompt = cc.apply_overrides(cc.load_workflow(WINDOW_PLAN), {"window_plan.total_frames": 97})
    result = cc.submit(server, prompt).raise_for_status()
    node = prompt["1"]["inputs"]
    expected = windows.plan_windows(97, node["window_frames"], node["overlap_frames"], node["window_mode"]).summary()
    assert result.outputs["1"]["text"] == [expected]


# ------------------------------------------------------------------------------------------ (c) errors reach the client


def test_node_error_reaches_client_and_server_keeps_serving(server):
    bad = cc.apply_overrides(cc.load_workflow(WINDOW_PLAN), {"window_plan.window_frames": 50})
    result = cc.submit(server, bad)
    assert result.status == "error"
    expected = plan_error(total_frames=120, window_frames=50, overlap_frames=1, mode="fixed")
    assert expected.startswith("window_frames must be 4k+1")
    assert result.error.node_id == "1"
    assert result.error.node_type == "VideoPainterWindowPlan"
    assert result.error.exception_type.endswith("ValueError")
    assert result.error.exception_message.strip() == expected
    assert str(result.error) == f"node 1 (VideoPainterWindowPlan): {expected}"
    with pytest.raises(cc.PromptExecutionError, match="window_frames must be 4k"):
        result.raise_for_status()

    # The same server still answers and runs a good prompt.
    assert requests.get(server.url + "/system_stats", timeout=10).status_code == 200
    good = cc.apply_overrides(cc.load_workflow(WINDOW_PLAN), {"window_plan.total_frames": 49})
    assert cc.submit(server, good).ok


def test_validation_error_is_readable(server):
    bad = cc.apply_overrides(cc.load_workflow(WINDOW_PLAN), {"window_plan.total_frames": -1})
    with pytest.raises(cc.PromptValidationError) as e:
        cc.submit(server, bad)
    assert e.value.error["type"] == "prompt_outputs_failed_validation"
    assert str(e.value) == (
        "prompt failed validation:\n"
        "  node 1 (VideoPainterWindowPlan), input 'total_frames': Value -1 smaller than min of 0: total_frames"
    )
    assert cc.submit(server, cc.load_workflow(WINDOW_PLAN)).ok


def two_outputs(valid: dict, bad_total_frames: int = -1) -> dict:
    """``valid`` plus a window plan of its own (node "50") that fails validation: ComfyUI answers such a prompt with
    HTTP 200, queues the valid outputs and returns the other's errors as ``node_errors``."""
    return {**valid, "50": {"class_type": "VideoPainterWindowPlan", "_meta": {"title": "bad_plan"},
                            "inputs": {"total_frames": bad_total_frames, "window_frames": 49, "overlap_frames": 1,
                                       "window_mode": "fixed"}}}


PARTIAL_LINE = "node 50 (VideoPainterWindowPlan), input 'total_frames': Value -1 smaller than min of 0: total_frames"


def test_partially_valid_prompt_is_refused_and_its_queued_half_cancelled(server):
    slow = slow_prompt(6)
    slow["1"]["inputs"]["color"] = 0x123456  # not in the server's cache from the other blur tests
    with pytest.raises(cc.PromptValidationError) as e:
        cc.submit(server, two_outputs(slow), timeout=120)
    message = str(e.value)
    assert message.startswith("prompt failed validation (the server queued only the outputs that validated"), message
    assert message.endswith("\n  " + PARTIAL_LINE), message
    assert e.value.error["type"] == cc.PARTIAL_PROMPT_ERROR and set(e.value.node_errors) == {"50"}
    cancelled = e.value.cancelled_prompt_id
    queue = requests.get(server.url + "/queue", timeout=10).json()
    assert cancelled not in [item[1] for item in queue["queue_running"] + queue["queue_pending"]], queue
    history = requests.get(f"{server.url}/history/{cancelled}", timeout=10).json().get(cancelled)
    if history is not None:  # it had started: interrupted, and the blur chain's output never came
        assert "99" not in history["outputs"], history["outputs"]
        assert "execution_success" not in [m[0] for m in history["status"]["messages"]], history["status"]
    assert cc.submit(server, cc.load_workflow(WINDOW_PLAN)).ok


def test_partially_valid_prompt_runs_its_valid_half_when_allowed(server):
    plan = cc.apply_overrides(cc.load_workflow(WINDOW_PLAN), {"window_plan.total_frames": 2345})
    result = cc.submit(server, two_outputs(plan), allow_partial=True, timeout=60).raise_for_status()
    assert set(result.outputs) == {"1"}, result.outputs
    assert result.outputs["1"]["text"][0].startswith("fixed plan: 2345 input frames"), result.outputs
    assert set(result.node_errors) == {"50"}
    assert cc.format_validation_error({}, result.node_errors).endswith(PARTIAL_LINE)


def test_interrupt_stops_a_running_prompt(server):
    ids: list[str] = []
    seen: list[cc.Progress] = []

    def on_progress(p: cc.Progress) -> None:
        seen.append(p)
        if p.node_id == "3" and p.kind == "executing":
            cc.interrupt(server, ids[0])

    result = cc.submit(server, slow_prompt(), on_progress=on_progress, on_queued=ids.append, timeout=120)
    assert result.status == "interrupted"
    assert result.interrupted_node in {"3", "4"}, result.interrupted_node
    assert cc.submit(server, cc.load_workflow(WINDOW_PLAN)).ok


def slow_prompt(blurs: int = 12) -> dict:
    """Core nodes only: a chain of heavy blurs (~0.8 s each on 2 CPU cores) to have something to interrupt."""
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 512, "batch_size": 4, "color": 0},
                    "_meta": {"title": "image"}}}
    for i in range(2, blurs + 2):
        prompt[str(i)] = {"class_type": "ImageBlur",
                          "inputs": {"image": [str(i - 1), 0], "blur_radius": 31, "sigma": 10.0}}
    prompt["99"] = {"class_type": "PreviewImage", "inputs": {"images": [str(blurs + 1), 0]}}
    return prompt


# ------------------------------------------------------------------------------------------ inputs and outputs


def test_upload_and_collect_work_for_a_remote_server(server, tmp_path):
    """With --server the runner only has HTTP: /upload/image for inputs and /view for outputs."""
    remote = cc.ServerHandle(url=server.url)
    src = tmp_path / "clip.bin"
    src.write_bytes(os.urandom(1000))
    assert cc.upload_input(remote, "e2e/clip.bin", src) == "e2e/clip.bin"
    assert (server.input_dir / "e2e" / "clip.bin").read_bytes() == src.read_bytes()

    (server.output_dir / "e2e").mkdir(parents=True, exist_ok=True)
    (server.output_dir / "e2e" / "result.bin").write_bytes(src.read_bytes())
    history = {"outputs": {"7": {"videos": [{"filename": "result.bin", "subfolder": "e2e", "type": "output"}],
                                 "images": [{"filename": "preview.png", "subfolder": "", "type": "temp"}]}}}
    for handle, dest in ((remote, tmp_path / "remote"), (server, tmp_path / "local")):
        files = cc.collect_outputs(handle, history, dest)
        assert files == [dest / "e2e" / "result.bin"]  # temp previews are not outputs
        assert files[0].read_bytes() == src.read_bytes()


# ------------------------------------------------------------------------------------------ (d) the runner's exit codes


def test_vp_run_starts_its_own_host_and_copies_outputs(tmp_path):
    out = tmp_path / "out"
    r = vp_run(str(WINDOW_PLAN), "--set", "window_plan.total_frames=97", "--output-dir", str(out),
               "--models-dir", str(tmp_path / "models"))
    assert r.returncode == 0, r.stderr
    text = (out / "window_plan_1.txt").read_text()
    assert text.startswith("fixed plan: 97 input frames -> 2 window(s)"), text
    assert str(out / "window_plan_1.txt") in r.stdout
    assert "ComfyUI ready at http://127.0.0.1:" in r.stderr
    assert _vp_run_temp_dirs(r.stderr), r.stderr
    assert not list(Path(p) for p in _vp_run_temp_dirs(r.stderr) if Path(p).exists()), "temp base dir left behind"
    assert "To see the GUI go to" in (out / "comfyui.log").read_text(), "the host's log is not kept with the outputs"
    assert f"server log: {out / 'comfyui.log'}" in r.stderr


def test_vp_run_sets_file_then_set(server, tmp_path):
    sets = tmp_path / "sets.json"
    sets.write_text(json.dumps({"window_plan.total_frames": 40, "window_plan.window_frames": 17}))
    r = vp_run(str(WINDOW_PLAN), "--server", server.url, "--sets-file", str(sets),
               "--set", "window_plan.total_frames=97", "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "out" / "window_plan_1.txt").read_text()
    assert text.startswith("fixed plan: 97 input frames -> 6 window(s) of 17 frames"), text


def test_vp_run_node_error_exits_1_with_the_message(server, tmp_path):
    r = vp_run(str(WINDOW_PLAN), "--server", server.url, "--set", "window_plan.window_frames=50",
               "--output-dir", str(tmp_path))
    assert r.returncode == 1, r.stderr
    expected = plan_error(total_frames=120, window_frames=50, overlap_frames=1, mode="fixed")
    assert f"error: node 1 (VideoPainterWindowPlan): {expected}\n" in r.stderr


def test_vp_run_validation_error_exits_2(server, tmp_path):
    r = vp_run(str(WINDOW_PLAN), "--server", server.url, "--set", "1.total_frames=-1", "--output-dir", str(tmp_path))
    assert r.returncode == 2, r.stderr
    assert "node 1 (VideoPainterWindowPlan), input 'total_frames': Value -1 smaller than min of 0" in r.stderr


def test_vp_run_refuses_a_partially_valid_graph_unless_allowed(server, tmp_path):
    workflow = tmp_path / "half_valid.json"
    workflow.write_text(json.dumps(two_outputs(cc.apply_overrides(cc.load_workflow(WINDOW_PLAN),
                                                                  {"window_plan.total_frames": 3456}))))
    r = vp_run(str(workflow), "--server", server.url, "--output-dir", str(tmp_path / "refused"))
    assert r.returncode == 2, r.stderr
    assert PARTIAL_LINE in r.stderr and "--allow-partial" in r.stderr, r.stderr
    assert not (tmp_path / "refused").exists()
    r = vp_run(str(workflow), "--server", server.url, "--allow-partial", "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "warning (--allow-partial" in r.stderr and PARTIAL_LINE in r.stderr, r.stderr
    assert (tmp_path / "out" / "window_plan_1.txt").read_text().startswith("fixed plan: 3456 input frames")


def test_vp_run_usage_errors_exit_2(server, tmp_path):
    r = vp_run(str(WINDOW_PLAN), "--server", server.url, "--set", "sampler.steps=3")
    assert r.returncode == 2 and "no node with id or title 'sampler'; available: 1 ('window_plan')" in r.stderr

    r = vp_run(str(WINDOW_PLAN), "--server", server.url, "--set", "window_plan.nope=3")
    assert r.returncode == 2 and "has no input 'nope'" in r.stderr

    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    r = vp_run(str(ui), "--server", server.url)
    assert r.returncode == 2 and "only API-format workflows are supported" in r.stderr


def test_vp_run_input_goes_to_the_input_folder(server, tmp_path, sample_clip):
    src = sample_clip["vp_sample.mp4"]
    r = vp_run(str(WINDOW_PLAN), "--server", server.url, "--input", f"e2e_run/{src.name}={src}",
               "--output-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (server.input_dir / "e2e_run" / src.name).read_bytes() == src.read_bytes()


def test_vp_run_ctrl_c_interrupts_the_prompt_and_exits_130(server, tmp_path):
    workflow = tmp_path / "slow.json"
    workflow.write_text(json.dumps(slow_prompt()))
    proc = subprocess.Popen([sys.executable, str(VP_RUN), str(workflow), "--server", server.url,
                             "--output-dir", str(tmp_path / "out")], stderr=subprocess.PIPE, text=True, cwd=REPO,
                             preexec_fn=_default_sigint)
    lines = []
    for line in proc.stderr:  # not a TTY: one line per node start
        lines.append(line)
        if line.startswith("node 3 ImageBlur: running"):
            proc.send_signal(signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted: sent /interrupt for prompt " in rest, rest
    prompt_id = rest.split("interrupted: sent /interrupt for prompt ")[1].split()[0]
    history = _wait_history(server, prompt_id)
    kinds = [m[0] for m in history["status"]["messages"]]
    assert "execution_interrupted" in kinds and "execution_success" not in kinds, kinds
    assert cc.submit(server, cc.load_workflow(WINDOW_PLAN)).ok


def test_vp_run_ctrl_c_while_the_host_starts_leaves_nothing_behind(tmp_path):
    proc = subprocess.Popen([sys.executable, str(VP_RUN), str(WINDOW_PLAN), "--output-dir", str(tmp_path),
                             "--models-dir", str(tmp_path / "models")], stderr=subprocess.PIPE, text=True, cwd=REPO,
                             preexec_fn=_default_sigint)
    first = proc.stderr.readline()
    assert first.startswith("starting the pinned ComfyUI host"), first
    base = _vp_run_temp_dirs(first)[0]
    time.sleep(1.5)  # ComfyUI is importing by now
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, first + rest
    assert not Path(base).exists()
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"]) if base in " ".join(p.info["cmdline"] or [])]
    assert leftovers == [], f"ComfyUI processes left running: {leftovers}"


def _default_sigint() -> None:
    """In the spawned vp_run: SIGINT as a terminal's Ctrl-C delivers it, even when this test run was started where
    SIGINT is ignored (a background shell's ``&``), which children would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


SIGINT_IGNORED_CLIENT = """
import signal, sys, time
sys.path.insert(0, sys.argv[1])
import vp_pack
from videopainter.vp_headless import comfy_client as cc
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a client started with `nohup ... &`
handle = cc.start_server(sys.argv[2], models_dir=sys.argv[3])
t0 = time.monotonic()
rc = handle.stop()
print(rc, round(time.monotonic() - t0, 1), signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
"""


def test_a_client_that_ignores_sigint_still_stops_its_server_cleanly(tmp_path, models_dir):
    """A client started in the background ignores SIGINT; its ComfyUI must not inherit that, or ServerHandle.stop's
    SIGINT (ComfyUI's clean exit) is ignored and the server is killed by SIGTERM 15 s later."""
    out = subprocess.run([sys.executable, "-c", SIGINT_IGNORED_CLIENT, str(REPO / "scripts"), str(tmp_path / "base"),
                          str(models_dir)], capture_output=True, text=True, timeout=180, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    rc, seconds, still_ignored = out.stdout.split()[-3:]
    assert rc == "0", f"ComfyUI exited with {rc} after {seconds} s (SIGINT ignored in it?)\n{out.stderr[-2000:]}"
    assert float(seconds) < 15, seconds
    assert still_ignored == "True"  # the client's own disposition is given back


def _vp_run_temp_dirs(stderr: str) -> list[str]:
    return [part.split(",")[0] for part in stderr.split("base: ")[1:]]


def _wait_history(server: cc.ServerHandle, prompt_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = requests.get(f"{server.url}/history/{prompt_id}", timeout=10).json()
        if prompt_id in data:
            return data[prompt_id]
        time.sleep(0.2)
    raise AssertionError(f"prompt {prompt_id} never reached the history")
