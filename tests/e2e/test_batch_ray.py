"""scripts/vp_batch.py on a local Ray cluster: two CPU workers, each with its own ComfyUI server on loopback.

Four tiny inpainting jobs (demo weights); one worker's server is killed (SIGKILL, by its pid) while it runs a job.
Checked: every job completes exactly once, the killed job is retried on the other worker and its output equals a
serial run of the same job bit for bit, and a rerun skips all four without starting a server.

The jobs save their frames as PNG (the workflow's SaveVideo becomes GetVideoComponents -> SaveImage) and the
servers run with ``--disable-metadata``: core's SaveVideo (x264) does not give the same bytes for the same frames
twice on this machine, and the PNG/mp4 metadata holds the upload time of the input files. Thread counts are
pinned (``--threads 1``): CPU results are bit-reproducible only at equal thread counts.

Memory: at most two servers (plus Ray's few processes) are alive at once; this file sorts before the e2e files
that start the session's shared server, and everything is torn down in ``finally`` blocks.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from videopainter.vp_headless import batch_jobs as bj
from videopainter.vp_headless import comfy_client as cc

# Ray is not imported here: vp_headless.batch.import_ray is the one place that does, after setting what a local
# instance needs (loopback only); the test sets nothing itself, so it sees what a user's run does.
if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is an optional dependency of scripts/vp_batch.py (scripts/host_pins.txt)", allow_module_level=True)
from videopainter.vp_headless import batch as vp_batch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
INPAINT = REPO / "workflows" / "api" / "videopainter_inpaint.json"
WINDOW_PLAN = REPO / "workflows" / "api" / "window_plan.json"
pytestmark = pytest.mark.e2e


def lossless_frames_workflow(src: Path, dest: Path) -> Path:
    """``src`` with its SaveVideo (title ``save``) replaced by GetVideoComponents -> SaveImage of the same VIDEO."""
    prompt = cc.load_workflow(src)
    save = cc.find_node(prompt, "save")
    video = prompt[save]["inputs"]["video"]
    prompt["vp_frames"] = {"class_type": "GetVideoComponents", "_meta": {"title": "frames"},
                           "inputs": {"video": video}}
    prompt[save] = {"class_type": "SaveImage", "_meta": {"title": "save"},
                    "inputs": {"images": ["vp_frames", 0], "filename_prefix": "frames/frame"}}
    dest.write_text(json.dumps(prompt, indent=1))
    return dest


def write_jobs(path: Path, workflow: Path, clip: dict[str, Path], seeds: list[int]) -> Path:
    sets = str(REPO / "scripts" / "demo_sets" / "videopainter_inpaint.json")
    lines = [json.dumps({"id": f"seed{s}", "workflow": str(workflow), "sets_files": [sets],
                         "inputs": {name: str(p) for name, p in clip.items()},
                         "overrides": {"seed.value": s, "sampler.steps": 2}}) for s in seeds]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def runs(records: list[dict]) -> list[list[dict]]:
    order: dict[str, list[dict]] = {}
    for r in records:
        order.setdefault(r["run"], []).append(r)
    return list(order.values())


def stop_leftover_servers(records: list[dict]) -> list[int]:
    """SIGKILL any ComfyUI server the log names that is still running (a failed test must leave none)."""
    killed = []
    for pid in {r.get("server_pid") for r in records if r.get("server_pid")}:
        try:
            proc = psutil.Process(pid)
            if any("main.py" in part for part in proc.cmdline()):
                proc.kill()
                killed.append(pid)
        except psutil.Error:
            pass
    return killed


class Killer(threading.Thread):
    """Waits for the first dispatched job, waits until its server has been running the prompt for ``mid_s``
    seconds (checked again just before the kill), then SIGKILLs the server.
    Meanwhile records every address Ray's and the servers' processes listen on or talk to."""

    def __init__(self, log_path: Path, timeout: float = 400, mid_s: float = 3.0):
        super().__init__(daemon=True)
        self.log_path, self.timeout, self.mid_s = log_path, timeout, mid_s
        self.running_since: float | None = None
        self.killed: dict | None = None
        self.addresses: set[str] = set()
        self.error: str | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline and self.killed is None:
                self._record_addresses()
                dispatch = next((r for r in read_log(self.log_path) if r["event"] == "dispatch"), None)
                if dispatch is not None:
                    try:
                        running = requests.get(dispatch["url"] + "/queue", timeout=5).json()["queue_running"]
                    except requests.RequestException:
                        running = []
                    if not running:
                        self.running_since = None
                    elif self.running_since is None:
                        self.running_since = time.monotonic()
                    elif time.monotonic() - self.running_since >= self.mid_s:
                        os.kill(dispatch["server_pid"], signal.SIGKILL)
                        self.killed = dispatch
                        break
                time.sleep(0.2)
            for _ in range(10):
                self._record_addresses()
                time.sleep(0.5)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = repr(e)

    def _record_addresses(self) -> None:
        for child in psutil.Process().children(recursive=True):
            try:
                for conn in child.net_connections(kind="inet"):
                    for addr in (conn.laddr, conn.raddr):
                        if addr:
                            self.addresses.add(addr.ip)
            except psutil.Error:
                pass


def test_ray_batch_retries_a_killed_server_and_reruns_skip(tmp_path, models_dir, sample_clip):
    ray = vp_batch.import_ray(local=True)

    workflow = lossless_frames_workflow(INPAINT, tmp_path / "inpaint_frames.json")
    jobs = write_jobs(tmp_path / "jobs.jsonl", workflow, sample_clip, seeds=[1, 2, 3, 4])
    out, log_path = tmp_path / "out", tmp_path / "out" / "vp_batch_log.jsonl"
    common = ["--output-dir", str(out), "--models-dir", str(models_dir), "--threads", "1",
              "--server-arg=--disable-metadata", "--no-progress"]
    killer = Killer(log_path)
    killer.start()
    try:
        rc = vp_batch.main([str(jobs), "--workers", "2", *common])
        killer.join(30)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        leftovers = stop_leftover_servers(read_log(log_path))
    assert leftovers == [], f"servers left running: {leftovers}"
    assert killer.error is None, killer.error
    assert killer.killed is not None, "no job was seen running, nothing was killed"
    assert rc == 0
    (first,) = runs(read_log(log_path))
    assert {r["worker"] for r in first if r["event"] == "worker_started"} == {"w0", "w1"}
    results = [r for r in first if r["event"] == "job"]
    done = [r for r in results if r["outcome"] == "done"]
    assert sorted(r["job"] for r in done) == ["seed1", "seed2", "seed3", "seed4"], results  # each exactly once
    victim = killer.killed["job"]
    died = [r for r in results if r["outcome"] == "server_died"]
    assert [(r["job"], r["worker"]) for r in died] == [(victim, killer.killed["worker"])], results
    (retried,) = [r for r in done if r["job"] == victim]
    assert retried["worker"] != killer.killed["worker"] and retried["attempt"] == 2, retried
    assert any(r["event"] == "server_restarted" and r["worker"] == killer.killed["worker"] for r in first)
    # Loopback only (Ray's own processes and the servers): listening on every interface (0.0.0.0, ::) is not.
    outside = {a for a in killer.addresses if a not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")}
    assert not outside, f"addresses beyond loopback: {outside}"

    markers = {d.name: bj.read_marker(d) for d in out.iterdir() if d.is_dir()}
    assert set(markers) == {"seed1", "seed2", "seed3", "seed4"} and all(markers.values())
    for name, marker in markers.items():
        assert len(marker["files"]) == 49, (name, len(marker["files"]))  # one PNG per output frame
        assert not list((out / name).glob(bj.STAGING_PREFIX + "*")), "a staging folder was left behind"
    assert markers["seed1"]["files"] != markers["seed2"]["files"], "different seeds gave identical outputs"

    # A serial run of the killed job alone (no Ray, one fresh server) gives the same bytes.
    serial_jobs = tmp_path / "serial.jsonl"
    serial_jobs.write_text(next(line for line in jobs.read_text().splitlines() if f'"{victim}"' in line) + "\n")
    serial_out = tmp_path / "serial_out"
    assert vp_batch.main([str(serial_jobs), "--local", "--workers", "1", *common[2:], "--output-dir",
                          str(serial_out)]) == 0
    serial = bj.read_marker(serial_out / victim)
    assert serial["files"] == markers[victim]["files"]
    for rel in serial["files"]:
        assert (serial_out / victim / rel).read_bytes() == (out / victim / rel).read_bytes(), rel

    # The rerun skips all four and starts no server.
    try:
        assert vp_batch.main([str(jobs), "--workers", "2", *common]) == 0
    finally:
        if ray.is_initialized():
            ray.shutdown()
    rerun = runs(read_log(log_path))[-1]
    outcomes = [r["outcome"] for r in rerun if r["event"] == "job"]
    assert outcomes == ["skipped"] * 4
    assert not [r for r in rerun if r["event"] == "worker_started"]


def test_local_mode_runs_without_ray_installed(tmp_path, models_dir):
    """--local with Ray made unimportable (sys.modules['ray'] = None) runs jobs and writes done markers; without
    --local the same block gives the actionable message."""
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"id": f"plan{n}", "workflow": str(WINDOW_PLAN),
                                        "overrides": {"window_plan.total_frames": n}}) + "\n" for n in (49, 97)))
    # As `python scripts/vp_batch.py` runs it: the script's folder first on sys.path (runpy does not add it).
    code = ("import sys, runpy; sys.modules['ray'] = None; sys.argv = ['vp_batch.py'] + sys.argv[1:]; "
            f"sys.path.insert(0, {str(REPO / 'scripts')!r}); "
            f"runpy.run_path({str(REPO / 'scripts' / 'vp_batch.py')!r}, run_name='__main__')")
    args = [str(jobs), "--output-dir", str(tmp_path / "out"), "--models-dir", str(models_dir), "--no-progress"]
    p = subprocess.run([sys.executable, "-c", code, *args, "--local"], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    for n in (49, 97):
        marker = bj.read_marker(tmp_path / "out" / f"plan{n}")
        assert marker is not None and list(marker["files"]) == ["window_plan_1.txt"]
        assert f"{n} input frames" in (tmp_path / "out" / f"plan{n}" / "window_plan_1.txt").read_text()
    p = subprocess.run([sys.executable, "-c", code, *args[:-1], "--output-dir", str(tmp_path / "out2")],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 2 and "Ray is not installed" in p.stderr and "--local" in p.stderr, p.stderr[-2000:]
