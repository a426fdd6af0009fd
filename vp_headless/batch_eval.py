"""``vp_batch.py --task eval``: the evaluation runner's rows (``scripts/vp_eval.py``, issue #19) as batch jobs.

Each row is one job, run with vp_eval's own per-row function (``evaluate_row(server, row, cfg)``) on a worker's
warm server; its result goes to ``<eval out>/batch/<row_id>/result.json`` (the ``{"setting", "result"}`` record
vp_eval keeps per row), and after the batch the CSV with the Average row and the JSON summary are assembled with
vp_eval's ``write_results`` into vp_eval's output folder. vp_eval is imported on first use only.
"""
from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import comfy_client as cc
from .batch_jobs import Job, JobFailed, finish_jobs, is_complete, job_key

RESULT = "result.json"


def import_vp_eval():
    try:
        from . import evaluate as vp_eval
    except ImportError as e:
        raise ValueError(f"--task eval needs scripts/vp_eval.py (the evaluation runner, issue #19): {e}") from None
    return vp_eval


def eval_argv(eval_args: str, models_dir: str | Path) -> list[str]:
    argv = shlex.split(eval_args)
    if "--models-dir" not in argv:  # the metric networks default to <models-dir>/videopainter/metrics
        argv += ["--models-dir", str(models_dir)]
    return argv


def parse(argv: list[str]):
    vp_eval = import_vp_eval()
    args = vp_eval.build_parser().parse_args(argv)
    if getattr(args, "server", None):
        raise ValueError("--eval-args: --server is not for the batch (every worker starts its own server)")
    return vp_eval, args


def plan(eval_args: str, models_dir: str | Path, batch_key: Mapping[str, Any]):
    """The jobs (one per dataset row), the task options, the key parts, and the function that writes the CSV."""
    argv = eval_argv(eval_args, models_dir)
    vp_eval, args = parse(argv)
    rows = vp_eval.load_rows(args)
    cfg = vp_eval.config_from_args(args, rows)
    out = Path(cfg.out_dir)
    jobs = finish_jobs([(i + 1, Job(id=row["row_id"], output=f"batch/{row['row_id']}", task="eval", row=row))
                        for i, row in enumerate(rows)], out, "eval rows")

    def finish(all_jobs: list[Job]) -> None:
        key = dict(batch_key)
        results = [json.loads((Path(j.output) / RESULT).read_text())["result"] for j in all_jobs
                   if is_complete(j, job_key(j, key))]
        if results:
            vp_eval.write_results(results, out, args.dataset)

    return jobs, {"eval_argv": argv}, {"eval_setting": cfg.setting()}, finish


class EvalTask:
    """One evaluation row on a warm server: vp_eval's ``evaluate_row``, its result written to the staging folder."""

    name = "eval"

    def __init__(self, options: Mapping[str, Any]):
        self.options = dict(options)
        self.vp_eval, self.args = parse(self.options["eval_argv"])

    def run(self, job: Job, server: cc.ServerHandle, staging: Path) -> dict[str, Any]:
        cfg = self.vp_eval.config_from_args(self.args, [job.row])
        try:
            result = self.vp_eval.evaluate_row(server, job.row, cfg)
        except cc.PromptExecutionError as e:
            err = e.result.error
            node = None if err is None else {"node_id": err.node_id, "node_type": err.node_type,
                                             "exception_type": err.exception_type, "message": err.exception_message}
            raise JobFailed(str(e), node) from None
        except cc.PromptValidationError as e:
            raise JobFailed(str(e)) from None
        (staging / RESULT).write_text(json.dumps({"setting": cfg.setting(), "result": result}) + "\n")
        return {"frames": result.get("frames"), "server_seconds": result.get("seconds")}
