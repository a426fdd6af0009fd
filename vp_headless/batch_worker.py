"""One batch worker: owns ONE ComfyUI server (started with ``comfy_client.start_server``, as ``vp_run.py`` does),
keeps it warm between jobs so models stay loaded, and runs jobs on it one at a time.

Used as is by ``vp_batch.py --local`` (one worker per thread) and wrapped in a Ray actor otherwise; nothing here
imports Ray. A server that died (killed, out of memory) is detected after the job that saw it die and before
each job; the worker then starts a fresh server and reports the job as ``server_died`` so the driver runs it
again, on another worker when there is one.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from . import batch_jobs as bj
from . import comfy_client as cc
from .batch_jobs import JobFailed
from .batch_tasks import make_task

log = logging.getLogger(__name__)

DONE, FAILED, SERVER_DIED, SKIPPED = "done", "failed", "server_died", "skipped"


@dataclass
class WorkerConfig:
    """Everything a worker needs; plain data so it travels to a Ray actor.

    ``env`` is set for the server process (``CUDA_VISIBLE_DEVICES``, ``OMP_NUM_THREADS``); ``cpu`` passes
    ComfyUI ``--cpu``; ``server_args`` are more ComfyUI arguments; ``task_options`` go to the task
    (``sets``, ``sets_files``, ``job_timeout`` and the task's own options)."""

    models_dir: str
    work_dir: str
    task: str = "generic"
    task_options: dict[str, Any] = field(default_factory=dict)
    cpu: bool = True
    env: dict[str, str] = field(default_factory=dict)
    server_args: list[str] = field(default_factory=list)
    batch_key: dict[str, Any] = field(default_factory=dict)
    verify_hashes: bool = False  # --verify-hashes: the driver's completeness rule, applied here too (bj.is_done)


@dataclass
class JobResult:
    job_id: str
    outcome: str
    worker: str
    seconds: float
    attempt: int = 1
    error: str | None = None
    node: dict[str, str] | None = None
    server_pid: int | None = None
    new_server_pid: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BatchWorker:
    def __init__(self, name: str, config: WorkerConfig):
        self.name = name
        self.config = config
        self.task = make_task(config.task, config.task_options)
        self.server: cc.ServerHandle | None = None
        self.starts = 0

    # ------------------------------------------------------------------------------------------ server

    def start(self) -> dict[str, Any]:
        """Start (or restart) this worker's server; returns where it runs."""
        self.stop()
        if not Path(self.config.models_dir).is_dir():
            raise FileNotFoundError(f"models folder {self.config.models_dir} does not exist on {socket.gethostname()}"
                                    f": every node needs the models at the same path")
        self.starts += 1
        base = Path(self.config.work_dir) / f"{self.name}-{os.getpid()}-{self.starts}"
        self.server = cc.start_server(base, models_dir=self.config.models_dir, cpu=self.config.cpu,
                                      env=self.config.env, extra_args=self.config.server_args)
        return self.info()

    def info(self) -> dict[str, Any]:
        s = self.server
        return {"worker": self.name, "host": socket.gethostname(), "url": s.url if s else None,
                "server_pid": s.process.pid if s and s.process else None,
                "start_seconds": round(s.start_seconds or 0.0, 2) if s else None,
                "cuda_visible_devices": self.config.env.get("CUDA_VISIBLE_DEVICES",
                                                            os.environ.get("CUDA_VISIBLE_DEVICES"))}

    def server_ok(self) -> bool:
        if self.server is None or not self.server.alive():
            return False
        try:
            return requests.get(self.server.url + "/system_stats", timeout=10).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            server.stop()
            if server.base_dir is not None:
                shutil.rmtree(server.base_dir, ignore_errors=True)

    # ------------------------------------------------------------------------------------------ jobs

    def run(self, job: bj.Job, attempt: int = 1) -> dict[str, Any]:
        """Run one job (or skip it when complete); returns a JobResult as a dict."""
        t0 = time.monotonic()
        key = bj.job_key(job, self.config.batch_key)
        if bj.is_done(job, self.config.batch_key, self.config.verify_hashes):
            return JobResult(job.id, SKIPPED, self.name, 0.0, attempt).to_dict()
        if not self.server_ok():
            self.start()
        pid = self.server.process.pid if self.server.process else None
        staging = None
        try:
            bj.discard_staging(job.output)
            staging = bj.new_staging(job.output)
            info = self.task.run(job, self.server, staging)
            seconds = time.monotonic() - t0
            bj.commit_outputs(staging, job.output, {"job_id": job.id, "key": key, "worker": self.name,
                                                    "attempt": attempt, "seconds": round(seconds, 3), "info": info})
            staging = None
            return JobResult(job.id, DONE, self.name, round(seconds, 3), attempt, server_pid=pid, info=info).to_dict()
        except JobFailed as e:
            return JobResult(job.id, FAILED, self.name, round(time.monotonic() - t0, 3), attempt, error=str(e),
                             node=e.node, server_pid=pid).to_dict()
        except Exception as e:  # noqa: BLE001 - judged below: a dead server is retried, anything else fails
            seconds = round(time.monotonic() - t0, 3)
            if not self.server_ok():
                log.warning("worker %s: server (pid %s) died during job %s: %s", self.name, pid, job.id, e)
                self.start()
                return JobResult(job.id, SERVER_DIED, self.name, seconds, attempt, error=f"{type(e).__name__}: {e}",
                                 server_pid=pid, new_server_pid=self.server.process.pid).to_dict()
            return JobResult(job.id, FAILED, self.name, seconds, attempt, error=f"{type(e).__name__}: {e}",
                             server_pid=pid, info={"traceback": traceback.format_exc(limit=8)}).to_dict()
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            self._clean_server_folders()

    def _clean_server_folders(self) -> None:
        """Empty the server's input, output and temp folders after a job: a warm server does not fill its disk
        over thousands of jobs, and SaveVideo/SaveImage number files from 00001 again (the same names for the
        same job on any worker)."""
        server = self.server
        if server is None or server.base_dir is None:
            return
        for sub in ("input", "output", "temp"):
            folder = server.base_dir / sub
            if folder.is_dir():
                for child in folder.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)


def kill_orphan_servers(work_dir: str | os.PathLike, worker: str | None = None) -> list[int]:
    """SIGKILL ComfyUI servers on this machine whose base directory lies in ``work_dir`` (this batch's own; only
    ``worker``'s when given): a Ray actor that was killed leaves its server running, since servers get a session of
    their own. Returns the pids."""
    import psutil

    marker = str(Path(work_dir).resolve()) + os.sep + (f"{worker}-" if worker else "")
    killed = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if any(a.endswith("main.py") for a in cmd) and any(a.startswith(marker) for a in cmd):
            try:
                proc.kill()
                killed.append(proc.pid)
            except psutil.Error:
                pass
    return killed


def worker_config_from(data: Mapping[str, Any]) -> WorkerConfig:
    return WorkerConfig(**dict(data))
