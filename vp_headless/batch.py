"""Run many workflow jobs on a Ray cluster (or on this machine with --local), one warm ComfyUI server per worker.

    .venv/bin/python scripts/vp_batch.py JOBS.csv|JOBS.jsonl [--address auto] [--workers N] [--output-dir DIR]
    .venv/bin/python scripts/vp_batch.py --task edit-pairs --csv our_video_edit.csv --video-root ... --mask-root ...
    .venv/bin/python scripts/vp_batch.py --local JOBS.jsonl          # no Ray needed

Exit codes: 0 every job done or skipped; 1 some job failed; 2 bad arguments or job list.
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import batch_jobs as bj
from . import batch_tasks
from . import comfy_client as cc
from .batch_worker import (
    DONE, FAILED, SERVER_DIED, SKIPPED, BatchWorker, WorkerConfig, kill_orphan_servers)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# The commands' folder: the Ray workers import scripts/vp_pack.py from it to register this pack's package.
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
RAY_PIN = "ray==2.60.0"  # scripts/host_pins.txt
log = logging.getLogger("vp_batch")

EPILOG = """\
job list (CSV or JSONL; relative paths are relative to the list's folder, outputs to --output-dir):
  {"id": "car", "workflow": "workflows/api/videopainter_inpaint.json",
   "inputs": {"vp_sample.mp4": "clips/car.mp4", "vp_sample_mask.mp4": "clips/car_mask.mp4"},
   "overrides": {"prompt.value": "a red vintage car", "seed.value": 7}, "output": "car"}
  CSV: columns id, workflow, output, sets_files (;-separated), input:NAME (a path), set:NODE.INPUT (a value)

tasks:
  generic     (default) the job list as above
  edit-pairs  --csv in the reference's edit layout (path, mask_id, start_frame, end_frame, fps, caption,
              Edited_video_caption, Edited_image_caption, Editing_instruction) + --video-root/--mask-root;
              writes <output-dir>/<id>/source.mp4, edited.mp4, pair.json
  eval        --eval-args '<scripts/vp_eval.py arguments>': one job per dataset row (vp_eval's evaluate_row on
              a warm server), <eval out>/<dataset>_metrics.csv assembled at the end (vp_eval's write_results)

A job whose output folder holds a matching vp_batch_done.json with all its files is skipped; a job whose server
died is retried on another worker (--max-attempts); a node error fails that job only. Every job is logged to
<output-dir>/vp_batch_log.jsonl (worker, seconds, outcome).
"""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vp_batch.py", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jobs", nargs="?", type=Path, help="job list (.csv or .jsonl) for the generic task")
    ap.add_argument("--task", choices=["generic", "edit-pairs", "eval"], default="generic")
    ap.add_argument("--output-dir", type=Path, default=cc.REPO_ROOT / "output" / "batch",
                    help="root of the job output folders and the log (default output/batch)")
    ap.add_argument("--models-dir", type=Path, default=cc.REPO_ROOT / "models",
                    help="model folders for every server; on a cluster the same path must exist on every node")
    ap.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                    help="override for every job (before the job's own overrides), as vp_run.py --set")
    ap.add_argument("--sets-file", type=Path, action="append", default=[], metavar="FILE.json",
                    help="a JSON object of overrides for every job (e.g. scripts/demo_sets/<workflow>.json)")
    where = ap.add_argument_group("where the jobs run")
    where.add_argument("--local", action="store_true", help="run on this machine without Ray (threads)")
    where.add_argument("--address", help="Ray cluster address (auto, HOST:PORT, ray://...); default: start a "
                                         "local Ray instance")
    where.add_argument("--workers", type=int, help="number of workers: on a CPU-only cluster (or --local) one "
                       "ComfyUI server each (default 1); with GPUs default one per GPU the cluster reports")
    where.add_argument("--cpus-per-worker", type=int, default=1, help="Ray CPU slots per CPU worker (default 1)")
    where.add_argument("--threads", type=int, help="OMP/MKL threads of each CPU server (default: its CPU slots; "
                       "--local: cores / workers). Results are bit-reproducible only at equal thread counts")
    where.add_argument("--cpu", action="store_true", help="ignore GPUs: CPU workers and ComfyUI --cpu")
    where.add_argument("--gpus", help="--local only: comma-separated GPU ids, one worker per GPU")
    where.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                       help="extra ComfyUI argument for every server (repeatable, e.g. --server-arg=--lowvram)")
    runs = ap.add_argument_group("retries and checks")
    runs.add_argument("--max-attempts", type=int, default=3, help="tries per job when its server or worker "
                      "dies (default 3); node errors are not retried")
    runs.add_argument("--job-timeout", type=float, help="fail a job after this many seconds of execution")
    runs.add_argument("--verify-hashes", action="store_true", help="skip a job only if its files' SHA-256 match")
    runs.add_argument("--log", type=Path, help="JSONL log (default <output-dir>/vp_batch_log.jsonl, appended)")
    runs.add_argument("--no-progress", action="store_true", help="no progress bar")
    edit = ap.add_argument_group("--task edit-pairs")
    edit.add_argument("--csv", type=Path, help="edit CSV in the reference layout (our_video_edit.csv)")
    edit.add_argument("--video-root", help="the reference's video_root (data/videovo/raw_video; Pexels clips are "
                                           "found by replacing videovo with pexels/pexels)")
    edit.add_argument("--mask-root", help="the reference's mask_root (data/video_inpainting)")
    edit.add_argument("--workflow", type=Path, default=batch_tasks.EDIT_WORKFLOW,
                      help="editing workflow (default workflows/api/videopainter_edit.json)")
    edit.add_argument("--max-frames", type=int, default=49, help="frames per clip after frame-rate sampling, as the "
                      "reference's inpainting_frames (default 49; 0 = all)")
    edit.add_argument("--first-frames", type=Path, help="folder of first frames made elsewhere (<id>.png): they "
                      "replace the workflow's node titled first_frame (e.g. FLUX Fill)")
    ev = ap.add_argument_group("--task eval")
    ev.add_argument("--eval-args", default="", help="arguments for scripts/vp_eval.py's parser, quoted as one")
    return ap


# ------------------------------------------------------------------------------------------------- jobs


@dataclass
class Plan:
    jobs: list[bj.Job]
    task_options: dict[str, Any]
    batch_key: dict[str, Any]
    finish: Any = None  # called with the list of all jobs after the run (eval: assemble the CSV)


def plan_jobs(args: argparse.Namespace) -> Plan:
    sets = {}
    for item in args.set:
        k, eq, v = item.partition("=")
        if not eq or not k:
            raise ValueError(f"--set {item!r} must look like NODE.INPUT=VALUE")
        sets[k] = cc.parse_set_value(v)
    sets_files = [str(p.resolve()) for p in args.sets_file]
    for p in sets_files:
        cc.load_sets_file(p)
    options: dict[str, Any] = {"sets": sets, "sets_files": sets_files, "job_timeout": args.job_timeout}
    # What every job's key holds besides its own spec: a change of these reruns the batch.
    batch_key = {"sets": sets, "sets_files": [bj.sha256_file(Path(p)) for p in sets_files], "task": args.task}
    finish = None
    if args.task == "generic":
        if args.jobs is None:
            raise ValueError("give a job list (JOBS.csv or JOBS.jsonl), or --task edit-pairs/eval")
        jobs = bj.load_jobs(args.jobs, args.output_dir)
    elif args.task == "edit-pairs":
        if args.csv is None:
            raise ValueError("--task edit-pairs needs --csv (the reference's our_video_edit.csv layout)")
        for flag in ("video_root", "mask_root"):
            if not getattr(args, flag):
                raise ValueError(f"--task edit-pairs needs --{flag.replace('_', '-')}")
        options["first_frames"] = str(args.first_frames) if args.first_frames else None
        batch_key["first_frames"] = options["first_frames"]
        jobs = batch_tasks.edit_pair_jobs(args.csv, args.output_dir, args.workflow, args.video_root, args.mask_root,
                                          args.max_frames or None)
    else:
        from . import batch_eval

        if args.set or args.sets_file:
            raise ValueError("--task eval: give --set/--sets-file inside --eval-args (vp_eval applies them)")
        if not args.eval_args:
            raise ValueError("--task eval needs --eval-args '...' (scripts/vp_eval.py's arguments, e.g. '--dataset "
                             "VPBench --csv data/our_video_inpaint.csv --video-root ... --mask-root ...')")
        # The CSV and the rows go to vp_eval's output folder (its --out), not --output-dir.
        jobs, eval_options, eval_key, finish_eval = batch_eval.plan(args.eval_args, args.models_dir, batch_key)
        options.update(eval_options)
        batch_key.update(eval_key)
        finish = finish_eval
    batch_tasks.make_task(args.task, options)  # option errors surface here, before any worker starts
    return Plan(jobs, options, batch_key, finish)


# ------------------------------------------------------------------------------------------------- backends


class LocalBackend:
    """Workers in threads of this process, each with its own server; no Ray."""

    def __init__(self, configs: dict[str, WorkerConfig]):
        self.workers = {name: BatchWorker(name, cfg) for name, cfg in configs.items()}
        self.pool = ThreadPoolExecutor(max_workers=len(configs), thread_name_prefix="vp_batch")

    def start_all(self) -> list[dict[str, Any]]:
        return list(self.pool.map(lambda w: w.start(), self.workers.values()))

    def submit(self, name: str, job: bj.Job, attempt: int):
        return self.pool.submit(self.workers[name].run, job, attempt)

    def wait(self, handles, timeout: float):
        done, _ = futures_wait(list(handles), timeout=timeout, return_when=FIRST_COMPLETED)
        return [(h, _outcome(h.result)) for h in done]

    def replace(self, name: str) -> dict[str, Any]:
        return self.workers[name].start()

    def close(self) -> None:
        for w in self.workers.values():
            w.stop()
        self.pool.shutdown(wait=True)


def _outcome(get):
    try:
        return get(), None
    except Exception as e:  # noqa: BLE001 - the caller decides (worker lost -> retry)
        return None, e


class RayBackend:
    """One Ray actor per worker; each actor holds one BatchWorker (one server)."""

    def __init__(self, ray, configs: dict[str, WorkerConfig], actor_options: dict[str, Any]):
        self.ray = ray
        self.configs = configs
        self.actor_options = actor_options
        # The actor class travels by value: a worker process has no package 'videopainter' until the actor's
        # __init__ registers it (scripts/vp_pack.py), so it could not import this module to find the class.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        self.remote_cls = ray.remote(_RayWorker)
        self.actors: dict[str, Any] = {}

    def _new(self, name: str):
        actor = self.remote_cls.options(name=None, max_restarts=0, **self.actor_options).remote(
            name, str(SCRIPTS), asdict(self.configs[name]))
        self.actors[name] = actor
        return actor.start.remote()

    def start_all(self) -> list[dict[str, Any]]:
        return self.ray.get([self._new(name) for name in self.configs])

    def submit(self, name: str, job: bj.Job, attempt: int):
        return self.actors[name].run.remote(job.to_dict(), attempt)

    def wait(self, handles, timeout: float):
        ready, _ = self.ray.wait(list(handles), num_returns=1, timeout=timeout)
        return [(h, _outcome(lambda h=h: self.ray.get(h))) for h in ready]

    def replace(self, name: str) -> dict[str, Any]:
        old = self.actors.pop(name, None)
        if old is not None:
            self.ray.kill(old, no_restart=True)
            # Its server would outlive it: stopped here when it ran on this machine (see kill_orphan_servers).
            kill_orphan_servers(self.configs[name].work_dir, name)
        return self.ray.get(self._new(name))

    def close(self) -> None:
        stops = [a.stop.remote() for a in self.actors.values()]
        try:
            self.ray.get(stops, timeout=60)
        except Exception as e:  # noqa: BLE001 - an actor that is gone has nothing left to stop
            log.warning("stopping workers: %s", e)
        for a in self.actors.values():
            self.ray.kill(a, no_restart=True)


class _RayWorker:
    """The Ray actor: a BatchWorker imported from the scripts folder on the node the actor lands on."""

    def __init__(self, name: str, scripts_dir: str, config: dict[str, Any]):
        sys.path.insert(0, scripts_dir)
        import vp_pack  # noqa: F401  (registers the package 'videopainter' in this worker process)
        from videopainter.vp_headless import batch_worker

        self.worker = batch_worker.BatchWorker(name, batch_worker.worker_config_from(config))

    def start(self) -> dict[str, Any]:
        return self.worker.start()

    def run(self, job: dict[str, Any], attempt: int) -> dict[str, Any]:
        from videopainter.vp_headless import batch_jobs

        return self.worker.run(batch_jobs.Job(**job), attempt)

    def stop(self) -> None:
        self.worker.stop()


# Ray reads this once, when it is first imported: "0" makes it treat the machine as single-node, so a local
# instance (gcs_server, raylet, agents, workers) binds and connects on 127.0.0.1 only instead of the machine's
# outward address and all interfaces.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray(local: bool):
    """The one place Ray is imported. ``local``: a local instance will be started (no ``--address``), so the
    environment is set for it first (loopback only, no usage stats): setting it after Ray's first import does
    nothing, which is how the driver's early import once left the local instance listening on every interface."""
    if local:
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        os.environ[LOOPBACK_ENV] = "0"
    try:
        import ray
        from ray._private import ray_constants
    except ImportError:
        raise ValueError(f"Ray is not installed: `.venv/bin/pip install '{RAY_PIN}'`, or run on this machine with "
                         f"--local") from None
    if local and ray_constants.ENABLE_RAY_CLUSTER:
        raise ValueError(f"Ray was imported in this process before {LOOPBACK_ENV}=0 was set, so a local instance "
                         "would listen on every interface; import it through vp_headless.batch.import_ray only")
    return ray


# ------------------------------------------------------------------------------------------------- the run


@dataclass
class Tally:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    per_worker: dict[str, dict[str, float]] = field(default_factory=lambda: collections.defaultdict(
        lambda: {"done": 0, "failed": 0, "died": 0, "seconds": 0.0}))
    failures: list[tuple[str, str]] = field(default_factory=list)


class JobLog:
    """Append-only JSONL, one object a line, flushed at once (a killed run keeps every line it wrote)."""

    def __init__(self, path: Path, run_id: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.run_id = run_id

    def write(self, event: str, **data: Any) -> None:
        self.file.write(json.dumps({"time": round(time.time(), 3), "run": self.run_id, "event": event, **data},
                                   default=str) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class Progress:
    """One tqdm bar over the jobs to run: done / failed / running in the postfix, tqdm's ETA."""

    def __init__(self, total: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="job", desc="vp_batch", disable=not enabled, dynamic_ncols=True,
                        file=sys.stderr)

        self.last = ""

    def show(self, tally: Tally, running: int, advance: int = 0) -> None:
        text = f"done {tally.done}, failed {tally.failed}, running {running}, retried {tally.retried}"
        if text != self.last:
            self.last = text
            self.bar.set_postfix_str(text, refresh=not advance)
        if advance:
            self.bar.update(advance)

    def close(self) -> None:
        self.bar.close()


def schedule(backend, names: list[str], jobs: list[bj.Job], joblog: JobLog, tally: Tally, progress: Progress,
             max_attempts: int, server_of: dict[str, dict[str, Any]]) -> None:
    """Hand jobs to idle workers until every job is done or failed. A job whose server or worker died goes back
    into the queue (avoiding that worker while another one is there) until it has had ``max_attempts`` tries."""
    pending = collections.deque((job, 1, frozenset()) for job in jobs)
    inflight: dict[Any, tuple[bj.Job, int, frozenset, str]] = {}
    idle = list(names)
    while pending or inflight:
        for name in list(idle):
            pick = next((i for i, (_, _, avoid) in enumerate(pending)
                         if name not in avoid or all(n in avoid for n in names)), None)
            if pick is None:
                continue
            job, attempt, avoid = pending[pick]
            del pending[pick]
            idle.remove(name)
            inflight[backend.submit(name, job, attempt)] = (job, attempt, avoid, name)
            joblog.write("dispatch", job=job.id, worker=name, attempt=attempt, **server_of.get(name, {}))
        progress.show(tally, len(inflight))
        for handle, (result, error) in backend.wait(inflight.keys(), timeout=0.5):
            job, attempt, avoid, name = inflight.pop(handle)
            if error is not None:  # the worker itself (the Ray actor) is gone
                result = {"job_id": job.id, "outcome": SERVER_DIED, "worker": name, "seconds": None,
                          "attempt": attempt, "error": f"worker lost: {type(error).__name__}: {error}"}
                try:
                    server_of[name] = _server_fields(backend.replace(name))
                    joblog.write("worker_replaced", worker=name, **server_of[name])
                except Exception as e:  # noqa: BLE001 - without this worker the others go on
                    joblog.write("worker_lost", worker=name, error=str(e))
                    names.remove(name)
                    name = None
            elif result.get("new_server_pid"):
                server_of[name] = {**server_of.get(name, {}), "server_pid": result["new_server_pid"]}
                joblog.write("server_restarted", worker=name, server_pid=result["new_server_pid"])
            if name is not None:
                idle.append(name)
            advance = _record(result, joblog, tally)
            if result["outcome"] == SERVER_DIED:
                if attempt < max_attempts and names:
                    tally.retried += 1
                    pending.appendleft((job, attempt + 1, avoid | {result["worker"]}))
                else:
                    advance = _record({**result, "outcome": FAILED, "error": f"gave up after {attempt} attempt(s): "
                                       f"{result.get('error')}"}, joblog, tally)
            progress.show(tally, len(inflight), advance)
        if not names:
            raise RuntimeError("every worker was lost; see the log")


def _record(result: dict[str, Any], joblog: JobLog, tally: Tally) -> int:
    outcome, worker = result["outcome"], result["worker"]
    joblog.write("job", job=result["job_id"], worker=worker, outcome=outcome, seconds=result.get("seconds"),
                 attempt=result.get("attempt"), error=result.get("error"), node=result.get("node"),
                 server_pid=result.get("server_pid"), info=result.get("info") or {})
    stats = tally.per_worker[worker]
    stats["seconds"] += result.get("seconds") or 0.0
    if outcome == DONE:
        tally.done += 1
        stats["done"] += 1
        return 1
    if outcome == SKIPPED:
        tally.skipped += 1
        return 1
    if outcome == FAILED:
        tally.failed += 1
        stats["failed"] += 1
        tally.failures.append((result["job_id"], str(result.get("error"))))
        return 1
    stats["died"] += 1
    return 0


def _server_fields(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info.get(k) for k in ("host", "url", "server_pid", "cuda_visible_devices")}


def summary_table(tally: Tally, wall: float) -> str:
    rows = [("worker", "done", "failed", "server died", "busy s", "s/job")]
    for name, s in sorted(tally.per_worker.items()):
        if name == "-":  # jobs skipped before any worker started
            continue
        n = s["done"] + s["failed"]
        rows.append((name, str(int(s["done"])), str(int(s["failed"])), str(int(s["died"])), f"{s['seconds']:.1f}",
                     f"{s['seconds'] / n:.1f}" if n else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ran = tally.done + tally.failed
    lines.append(f"{tally.done} done, {tally.skipped} skipped, {tally.failed} failed, {tally.retried} retried in "
                 f"{wall:.1f} s" + (f" ({60 * tally.done / wall:.2f} jobs/min)" if wall > 0 and ran else ""))
    for job_id, error in tally.failures:
        lines.append(f"failed {job_id}: {error.splitlines()[0] if error else '?'}")
    return "\n".join(lines)


def worker_configs(args, n: int, gpu_ids: list[str] | None, work_dir: Path, plan: Plan) -> dict[str, WorkerConfig]:
    configs = {}
    for i in range(n):
        env: dict[str, str] = {}
        if gpu_ids is not None and args.local:
            env["CUDA_VISIBLE_DEVICES"] = gpu_ids[i]
        if gpu_ids is None:
            threads = args.threads or (max(1, (os.cpu_count() or 1) // n) if args.local else args.cpus_per_worker)
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        configs[f"w{i}"] = WorkerConfig(
            models_dir=str(args.models_dir.resolve()), work_dir=str(work_dir), task=args.task,
            task_options=plan.task_options, cpu=gpu_ids is None, env=env, server_args=list(args.server_arg),
            batch_key=plan.batch_key, verify_hashes=args.verify_hashes)
    return configs


def start_ray(args):
    """Connect to ``--address`` or start a local Ray instance (loopback only, no dashboard, no usage stats)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray(local=args.address is None)
    # The actors import scripts/vp_pack.py from this folder (the repo must be at the same path on every node, like
    # the models).
    runtime_env = {"env_vars": {"PYTHONPATH": str(SCRIPTS)}}
    if args.address is None:
        n = args.workers or 1
        ray.init(num_cpus=n * args.cpus_per_worker, num_gpus=0 if args.cpu else None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False, runtime_env=runtime_env)
    else:
        ray.init(address=args.address, log_to_driver=False, configure_logging=False, runtime_env=runtime_env)
    return ray


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.local and args.address:
            raise ValueError("--local and --address exclude each other")
        if args.gpus and not args.local:
            raise ValueError("--gpus is for --local; on Ray the cluster's GPUs are used (one worker each)")
        if (args.workers is not None and args.workers < 1) or args.max_attempts < 1:
            raise ValueError("--workers and --max-attempts must be at least 1")
        plan = plan_jobs(args)
        if not args.local:
            import_ray(local=args.address is None)  # before any work: a missing Ray is a usage error with the remedy
    except (OSError, ValueError, cc.OverrideError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE

    run_id = uuid.uuid4().hex[:12]
    joblog = JobLog(args.log or args.output_dir / "vp_batch_log.jsonl", run_id)
    tally = Tally()
    complete = [bj.is_done(job, plan.batch_key, args.verify_hashes) for job in plan.jobs]
    todo = [job for job, done in zip(plan.jobs, complete) if not done]
    joblog.write("run_start", task=args.task, jobs=len(plan.jobs), to_run=len(todo),
                 argv=sys.argv[1:] if argv is None else argv, host=socket.gethostname())
    for job, done in zip(plan.jobs, complete):
        if done:
            _record({"job_id": job.id, "outcome": SKIPPED, "worker": "-", "seconds": 0.0}, joblog, tally)
    t0 = time.monotonic()
    backend = ray = None
    work_dir = Path(tempfile.mkdtemp(prefix="vp_batch_"))
    progress = Progress(len(todo), enabled=not args.no_progress and bool(todo))
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt) if _main_thread() else None
    try:
        if todo:
            backend, names = _make_backend(args, len(todo), work_dir, plan)
            ray = getattr(backend, "ray", None)
            infos = backend.start_all()
            server_of = {}
            for name, info in zip(names, infos):
                server_of[name] = _server_fields(info)
                joblog.write("worker_started", worker=name, start_seconds=info.get("start_seconds"), **server_of[name])
            schedule(backend, names, todo, joblog, tally, progress, args.max_attempts, server_of)
        if plan.finish is not None:
            plan.finish(plan.jobs)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the workers (finished jobs are kept; a rerun skips them)", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a broken cluster or worker start: say it, clean up, exit 1
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        progress.close()
        wall = time.monotonic() - t0
        if backend is not None:
            backend.close()
        if ray is not None and args.address is None:
            ray.shutdown()
        for pid in kill_orphan_servers(work_dir):
            log.warning("stopped a server a lost worker left running (pid %d)", pid)
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)
        joblog.write("run_end", done=tally.done, skipped=tally.skipped, failed=tally.failed, retried=tally.retried,
                     seconds=round(wall, 3))
        joblog.close()
        print(summary_table(tally, wall), file=sys.stderr)
    return EXIT_FAILED if tally.failed else EXIT_OK


def _make_backend(args, n_jobs: int, work_dir: Path, plan: Plan):
    if args.local:
        gpu_ids = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus and not args.cpu else None
        n = len(gpu_ids) if gpu_ids else (args.workers or 1)
        configs = worker_configs(args, min(n, n_jobs), gpu_ids, work_dir, plan)
        return LocalBackend(configs), list(configs)
    ray = start_ray(args)
    gpus = 0 if args.cpu else int(ray.cluster_resources().get("GPU", 0))
    if gpus:
        n = min(args.workers or gpus, gpus)
        configs = worker_configs(args, min(n, n_jobs), [], work_dir, plan)
        options = {"num_gpus": 1, "num_cpus": args.cpus_per_worker}
    else:
        configs = worker_configs(args, min(args.workers or 1, n_jobs), None, work_dir, plan)
        options = {"num_cpus": args.cpus_per_worker}
    return RayBackend(ray, configs, options), list(configs)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()

