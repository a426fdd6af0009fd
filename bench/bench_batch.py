"""Batch throughput: jobs per minute of ``scripts/vp_batch.py`` on a local Ray instance with 1 and with 2 CPU
workers, in one run, on the tiny demo weights (inpainting workflow, demo sizes, 2 steps, one seed per job).

    .venv/bin/python bench/bench_batch.py [--jobs 6] [--quick]

Reported: jobs/min over the jobs themselves (first dispatch to last result: servers are started once and kept
warm, so their start is a fixed cost, reported separately) for each worker count, and the ratio 2 workers / 1
worker. Each worker is one ComfyUI server with 1 thread (``--threads 1``); on a 2-core machine the ideal ratio is
2.0, less when other processes share the cores (the load average is recorded). Writes bench/results/batch.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
make_sample_clip = common.script("make_sample_clip")

INPAINT = REPO / "workflows" / "api" / "videopainter_inpaint.json"
SETS = REPO / "scripts" / "demo_sets" / "videopainter_inpaint.json"


def run_batch(jobs: Path, out: Path, models: Path, workers: int) -> dict:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "vp_batch.py"), str(jobs), "--workers", str(workers),
                        "--threads", "1", "--output-dir", str(out), "--models-dir", str(models), "--no-progress"],
                       capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"vp_batch exited {p.returncode}:\n{p.stderr[-3000:]}")
    log = [json.loads(line) for line in (out / "vp_batch_log.jsonl").read_text().splitlines()]
    done = [r for r in log if r["event"] == "job" and r["outcome"] == "done"]
    first = min(r["time"] for r in log if r["event"] == "dispatch")
    last = max(r["time"] for r in done)
    starts = [r["start_seconds"] for r in log if r["event"] == "worker_started"]
    return {"workers": workers, "jobs": len(done), "jobs_seconds": round(last - first, 2),
            "jobs_per_min": round(60 * len(done) / (last - first), 3), "wall_seconds_incl_start": round(wall, 1),
            "server_start_seconds": starts, "mean_job_seconds": round(sum(r["seconds"] for r in done) / len(done), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--quick", action="store_true", help="4 jobs")
    args = ap.parse_args()
    n = 4 if args.quick else args.jobs
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, str(REPO / "scripts" / "make_demo_models.py"), str(tmp / "models")],
                       check=True, capture_output=True)
        video, mask = make_sample_clip.make_sample_clip(tmp / "clip")
        jobs = tmp / "jobs.jsonl"
        jobs.write_text("".join(json.dumps({
            "id": f"seed{s}", "workflow": str(INPAINT), "sets_files": [str(SETS)],
            "inputs": {video.name: str(video), mask.name: str(mask)},
            "overrides": {"seed.value": s, "sampler.steps": 2}}) + "\n" for s in range(n)))
        results = [run_batch(jobs, tmp / f"out{w}", tmp / "models", w) for w in (1, 2)]
    ratio = results[1]["jobs_per_min"] / results[0]["jobs_per_min"]
    data = {"benchmark": "batch", "results": results, "ratio_2_over_1": round(ratio, 3), "cores": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "command": " ".join(["bench/bench_batch.py", *sys.argv[1:]]), "written": time.strftime("%Y-%m-%d %H:%M"),
            "written_epoch": time.time()}
    (BENCH / "results").mkdir(exist_ok=True)
    (BENCH / "results" / "batch.json").write_text(json.dumps(data, indent=2) + "\n")
    for r in results:
        print(f"{r['workers']} worker(s): {r['jobs']} jobs in {r['jobs_seconds']} s = {r['jobs_per_min']} jobs/min "
              f"(mean {r['mean_job_seconds']} s/job; server start {r['server_start_seconds']} s; "
              f"{r['wall_seconds_incl_start']} s with Ray and server start)")
    print(f"ratio 2 workers / 1 worker: {ratio:.2f} (ideal {min(2, os.cpu_count() or 1)}; {os.cpu_count()} cores, "
          f"load average before {data['load_average_before']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
