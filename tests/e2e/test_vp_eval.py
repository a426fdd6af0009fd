"""scripts/vp_eval.py end to end: tiny synthetic datasets in the exact VPBench layout (CSV + all_masks.npz + mp4,
Videovo and Pexels folder rules) and the DAVIS layout (JPEG folders, PNG masks, davis_caption.csv), the demo
weights on the session server, tiny random metric networks in the real folder layout. The CSV has the reference's
columns and an Average row, every number is finite, a second run from scratch gives the same numbers, and a run
into a finished folder skips every row."""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]

from videopainter.vp_headless import comfy_client as cc  # noqa: E402
from videopainter.vp_headless import evaluate as vp_eval  # noqa: E402

FRAMES = 9  # after frame-rate sampling; one 9-frame window
SIZE = (64, 48)  # source clips (W, H)
FAST = ["--set", "sampler.window_frames=9", "--set", "sampler.steps=2"]


def _clip(seed: int, n: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """A moving gradient with a moving square object (label 1) and a static patch (label 2)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames, labels = [], []
    for t in range(n):
        f = np.stack([(xx * 4 + t * 3) % 256, (yy * 5 + seed * 40) % 256, (xx + yy + t * 7) % 256], -1)
        lab = np.zeros((h, w), np.uint8)
        x0 = 8 + t % 20
        lab[12:28, x0:x0 + 14] = 1
        lab[h - 10:h - 2, 4:14] = 2
        f[lab == 1] = rng.integers(0, 255, 3)
        frames.append(f.astype(np.uint8))
        labels.append(lab)
    return np.stack(frames), np.stack(labels)


def make_vpbench(root: Path) -> dict[str, Path]:
    from videopainter.vp_core.evaluation import datasets

    video_root, mask_root = root / "videovo" / "raw_video", root / "video_inpainting"
    rows = [  # (path, mask_id, fps, start, end): fps 16 -> every 2nd frame; fps 8 -> every frame
        ("000000207786_8632822.0.mp4", 1, 16, 2, 2 + 2 * FRAMES),
        ("1234567890_55.mp4", 2, 8, 3, 3 + FRAMES),
    ]
    for i, (name, _mid, fps, _s, _e) in enumerate(rows):
        video, npz = datasets.vpbench_paths(name, video_root, mask_root)
        frames, labels = _clip(i, 40, *SIZE)
        video.parent.mkdir(parents=True, exist_ok=True)
        npz.parent.mkdir(parents=True, exist_ok=True)
        datasets.write_video(video, frames, fps, lossless=False)
        np.savez_compressed(npz, labels)
    assert (root / "pexels" / "pexels" / "raw_video" / "123456789" / "1234567890_55.mp4").is_file()
    assert (mask_root / "videovo" / "000000207786_8632822" / "all_masks.npz").is_file()
    csv_path = root / "our_video_inpaint.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "mask_id", "fps", "start_frame", "end_frame", "video_inpainting_prompt",
                    "image_inpainting_prompt"])
        for name, mid, fps, s, e in rows:
            w.writerow([name, mid, fps, s, e, "a gradient scene with a small square moving right.", "a square."])
    return {"csv": csv_path, "video_root": video_root, "mask_root": mask_root}


def make_davis(root: Path) -> dict[str, Path]:
    video_root, mask_root = root / "davis" / "JPEGImages_432_240", root / "davis" / "test_masks"
    names = ["bear", "camel"]
    for i, name in enumerate(names):
        frames, labels = _clip(10 + i, FRAMES, 54, 30)
        (video_root / name).mkdir(parents=True)
        (mask_root / name).mkdir(parents=True)
        for t in range(FRAMES):
            Image.fromarray(frames[t]).save(video_root / name / f"{t:05d}.jpg", quality=95)
            Image.fromarray(((labels[t] == 1) * 255).astype(np.uint8)).save(mask_root / name / f"{t:05d}.png")
    caption = root / "davis" / "davis_caption.csv"
    with open(caption, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Video_Index", "Video_Caption", "Masked_Target_Caption"])
        for i, name in enumerate(names):
            w.writerow([i + 1, f"a {name} walks across a field.", f"a {name}."])
    return {"video_root": video_root, "mask_root": mask_root, "caption_csv": caption}


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory) -> Path:
    from videopainter.vp_core.evaluation.metrics import tiny

    return tiny.write_tiny_metric_models(tmp_path_factory.mktemp("metric_models") / "videopainter" / "metrics")


def eval_argv(server, metrics_dir: Path, out: Path, args: list[str]) -> list[str]:
    return ["--server", server.url, "--metrics-dir", str(metrics_dir), "--out", str(out),
            "--sets-file", str(REPO / "scripts/demo_sets/videopainter_inpaint.json"), *FAST, *args]


def run_cli(argv: list[str]) -> subprocess.CompletedProcess:
    """The script as a user runs it, offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "vp_eval.py"), *argv], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_table(out: Path, dataset: str, n_rows: int) -> list[dict[str, str]]:
    table = read_csv(out / f"{dataset}_metrics.csv")
    assert tuple(table[0].keys()) == vp_eval.CSV_COLUMNS
    assert len(table) == n_rows + 1 and table[-1]["Video_Index"] == "Average"
    for row in table:
        for col in vp_eval.METRIC_COLUMNS:
            assert math.isfinite(float(row[col])), (col, row[col])
        assert int(row["Frames"]) >= FRAMES if row is not table[-1] else True
    assert math.isfinite(float(table[-1]["FID_Score"]))
    assert all(r["FID_Score"] == "" for r in table[:-1])
    summary = json.loads((out / f"{dataset}_metrics.json").read_text())
    assert summary["videos"] == n_rows and math.isfinite(summary["average"]["vfid"])
    return table


def _numbers(table):
    return [[r[c] for c in (*vp_eval.METRIC_COLUMNS, "FID_Score")] for r in table]


@pytest.mark.parametrize("dataset", ["VPBench", "davis"])
def test_vp_eval_writes_the_reference_table_reproducibly_and_resumes(server, metrics_dir, tmp_path, dataset,
                                                                      monkeypatch, caplog, capsys):
    if dataset == "VPBench":
        d = make_vpbench(tmp_path / "data")
        args = ["--dataset", "VPBench", "--csv", str(d["csv"]), "--video-root", str(d["video_root"]),
                "--mask-root", str(d["mask_root"]), "--dilate", "8", "--replace-gt", "on"]
    else:
        d = make_davis(tmp_path / "data")
        args = ["--dataset", "davis", "--video-root", str(d["video_root"]), "--mask-root", str(d["mask_root"]),
                "--caption-csv", str(d["caption_csv"]), "--width", "80", "--height", "96", "--dilate", "0",
                "--replace-gt", "off", "--mode", "background"]
    first = tmp_path / "run1"
    run_cli(eval_argv(server, metrics_dir, first, args))
    table = check_table(first, dataset, 2)
    assert all(int(r["Frames"]) == FRAMES for r in table[:-1])
    # the rest in-process (the script is a module with main()): the same code without re-importing torch
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    second = tmp_path / "run2"
    assert vp_eval.main(eval_argv(server, metrics_dir, second, args)) == 0
    assert _numbers(check_table(second, dataset, 2)) == _numbers(table)
    before = (first / f"{dataset}_metrics.csv").read_text()
    with caplog.at_level(logging.INFO, logger="vp_eval"):
        assert vp_eval.main(eval_argv(server, metrics_dir, first, args)) == 0
    assert "2 already done" in caplog.text and "0 to run" in caplog.text
    assert (first / f"{dataset}_metrics.csv").read_text() == before
    # another setting into the same folder is refused, not mixed in
    assert vp_eval.main(eval_argv(server, metrics_dir, first, [*args, "--seed", "7"])) == 2
    assert "another setting" in capsys.readouterr().err


def test_vp_eval_missing_metric_model_fails_before_any_clip(server, tmp_path, capsys):
    d = make_davis(tmp_path / "data")
    rc = vp_eval.main(["--server", server.url, "--metrics-dir", str(tmp_path / "nothing"), "--out",
                       str(tmp_path / "out"), "--dataset", "davis", "--video-root", str(d["video_root"]),
                       "--mask-root", str(d["mask_root"]), "--caption-csv", str(d["caption_csv"])])
    err = capsys.readouterr().err
    assert rc == 2
    assert "clip-vit-large-patch14" in err and "hf download" in err
    assert not (tmp_path / "out" / "davis_metrics.csv").exists()


def test_vp_eval_source_geometry_scores_every_source_frame_at_source_size(server, metrics_dir, tmp_path):
    """--geometry source (issue 25 item 4): the workflow runs at output_rate 'source' and every source frame of the
    cut (18 at 16 fps with step 2, 9 at 8 fps) is scored at the source's 64x48; the table and the summary say so."""
    d = make_vpbench(tmp_path / "data")
    args = ["--dataset", "VPBench", "--csv", str(d["csv"]), "--video-root", str(d["video_root"]),
            "--mask-root", str(d["mask_root"]), "--dilate", "8", "--geometry", "source"]
    out = tmp_path / "source"
    proc = run_cli(eval_argv(server, metrics_dir, out, args))
    table = check_table(out, "VPBench", 2)
    assert [int(r["Frames"]) for r in table] == [2 * FRAMES, FRAMES, 3 * FRAMES]
    assert {(r["Geometry"], r["Size"]) for r in table} == {("source", f"{SIZE[0]}x{SIZE[1]}")}
    summary = json.loads((out / "VPBench_metrics.json").read_text())
    assert (summary["geometry"], summary["sizes"], summary["frames"]) == ("source", ["64x48"], 3 * FRAMES)
    assert '"geometry": "source"' in proc.stdout
    # the reference geometry's rows are refused in that folder (never mixed)
    assert vp_eval.main(eval_argv(server, metrics_dir, out, args[:-2])) == 2
