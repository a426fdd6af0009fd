"""``vp_batch.py --task eval``: the evaluation runner's rows (scripts/vp_eval.py) as batch jobs on a warm worker,
the metrics CSV assembled at the end; its numbers equal a plain ``vp_eval.py`` run of the same dataset, and a rerun
skips every row. Uses vp_eval's own tiny synthetic VPBench layout and tiny metric networks (tests/e2e/test_vp_eval.py).
One server alive at a time; sorts before the files that start the session's shared server."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not (REPO / "scripts" / "vp_eval.py").exists(),
                                                  reason="needs scripts/vp_eval.py (issue #19)")]

NOT_COMPARED = {"Seconds"}  # wall time of each row's workflow


def read_table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in NOT_COMPARED} for row in csv.DictReader(f)]


def test_eval_rows_run_as_batch_jobs_and_match_vp_eval(tmp_path, models_dir, monkeypatch):
    from videopainter.vp_headless import batch as vp_batch
    from videopainter.vp_headless import evaluate as vp_eval
    from test_vp_eval import FAST, check_table, make_vpbench
    from videopainter.vp_core.evaluation.metrics import tiny

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    metrics = tiny.write_tiny_metric_models(tmp_path / "metric_models" / "videopainter" / "metrics")
    data = make_vpbench(tmp_path / "data")
    common = ["--dataset", "VPBench", "--csv", str(data["csv"]), "--video-root", str(data["video_root"]),
              "--mask-root", str(data["mask_root"]), "--metrics-dir", str(metrics), "--sets-file",
              str(REPO / "scripts" / "demo_sets" / "videopainter_inpaint.json"), *FAST]
    out = tmp_path / "batch_eval"
    batch = ["--task", "eval", "--eval-args", " ".join([*common, "--out", str(out)]), "--local", "--models-dir",
             str(models_dir), "--threads", "1", "--output-dir", str(tmp_path / "log"), "--no-progress"]
    assert vp_batch.main(batch) == 0
    check_table(out, "VPBench", 2)
    log = tmp_path / "log" / "vp_batch_log.jsonl"
    jobs = [json.loads(line) for line in log.read_text().splitlines() if '"event": "job"' in line]
    assert sorted(r["outcome"] for r in jobs) == ["done", "done"]

    # The same dataset through vp_eval.py alone (its own server, one thread like the batch worker).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    alone = tmp_path / "vp_eval_alone"
    assert vp_eval.main([*common, "--out", str(alone), "--models-dir", str(models_dir)]) == 0
    assert read_table(out / "VPBench_metrics.csv") == read_table(alone / "VPBench_metrics.csv")

    # A rerun skips both rows and writes the same table.
    before = (out / "VPBench_metrics.csv").read_text()
    assert vp_batch.main(batch) == 0
    jobs = [json.loads(line) for line in log.read_text().splitlines() if '"event": "job"' in line]
    assert [r["outcome"] for r in jobs[-2:]] == ["skipped", "skipped"]
    assert (out / "VPBench_metrics.csv").read_text() == before
