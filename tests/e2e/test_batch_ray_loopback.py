"""Issue #26 item 11: the local Ray instance of scripts/vp_batch.py binds and connects on loopback only.

A child process runs the driver's own code path (``main``'s early ``import_ray`` check, then ``start_ray`` with
the parsed command line), starts one Ray worker, and reports the sockets of every process it started (psutil:
gcs_server, raylet, agents, workers). The test sets no environment variable: it removes any RAY_* variable from the
child's environment, so what it sees is what a user's run does. On the old order (Ray imported before the variable
was set) gcs_server listened on '::' and everything talked over the machine's outward address.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is an optional dependency of scripts/vp_batch.py (scripts/host_pins.txt)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

CHILD = r"""
import json, os, sys
import psutil
sys.path.insert(0, sys.argv[1])
import vp_pack  # noqa: F401
from videopainter.vp_headless import batch

args = batch.build_parser().parse_args(["--workers", "1", "--cpu", "--cpus-per-worker", "1"])
batch.import_ray(local=args.address is None)  # what main() does before any work
ray = batch.start_ray(args)
try:
    pid = ray.get(ray.remote(lambda: os.getpid()).remote())
    seen = []
    for p in psutil.Process().children(recursive=True):
        try:
            name = p.name()
            for c in p.net_connections(kind="inet"):
                seen.append([p.pid, name, c.status, c.laddr.ip if c.laddr else None, c.raddr.ip if c.raddr else None])
        except psutil.Error:
            pass
    print(json.dumps({"worker_pid": pid, "sockets": seen}))
finally:
    ray.shutdown()
"""

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def test_local_ray_listens_and_talks_on_loopback_only(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    r = subprocess.run([sys.executable, "-c", CHILD, str(REPO / "scripts")], env=env, capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    sockets = report["sockets"]
    names = {s[1] for s in sockets}
    assert {"gcs_server", "raylet"} <= names, names  # Ray's own processes were seen
    assert any(s[0] == report["worker_pid"] for s in sockets), "the worker's sockets were not seen"
    listening = [s for s in sockets if s[2] == "LISTEN"]
    assert listening and all(s[3] in LOOPBACK for s in listening), [s for s in listening if s[3] not in LOOPBACK]
    outside = [s for s in sockets if s[3] not in LOOPBACK or (s[4] is not None and s[4] not in LOOPBACK)]
    assert not outside, outside
