"""``vp_batch.py --task edit-pairs`` on a tiny synthetic dataset in the reference layout (VPBench/VPData folders,
an edit CSV like ``our_video_edit.csv``, ``all_masks.npz`` label maps), with the demo weights, on this machine.

Each pair must hold ``source.mp4`` and ``edited.mp4`` with the same number of frames (the frame-rate sampled clip)
and ``pair.json`` with exactly the reference's keys and the CSV's values. Runs before the e2e files that start the
session's shared server (one server alive here).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from videopainter.vp_headless import batch_jobs as bj
from videopainter.vp_headless import batch_tasks
from videopainter.vp_headless import comfy_client as cc
import make_sample_clip
from videopainter.vp_headless import batch as vp_batch

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

# One Videovo and one Pexels clip (their names decide the folder rules), 60 frames at 16 fps; frames 4..56 are
# used and sampled every int(16 // 8) = 2 frames: 26 frames per clip.
ROWS = [
    {"path": "000005000000.0.mp4", "mask_id": 2, "start_frame": 4, "end_frame": 56, "fps": 16,
     "caption": "A red square glides over a gradient.", "Edited_video_caption": "A blue ball glides over a gradient.",
     "Edited_image_caption": "a blue ball", "Editing_instruction": "Replace the red square with a blue ball"},
    {"path": "000000000123_852038.mp4", "mask_id": 2, "start_frame": 0, "end_frame": 52, "fps": 16,
     "caption": "A red square moves.", "Edited_video_caption": "A green cube moves.",
     "Edited_image_caption": "a green cube", "Editing_instruction": "Turn the square into a green cube"},
]
SAMPLED = 26


def frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def write_dataset(root: Path) -> tuple[Path, Path, Path]:
    video, square = make_sample_clip.sample_frames(frames=60, width=96, height=80)
    labels = np.where(square > 127, 2, 0).astype(np.uint8)
    labels[:, :8, :8] = 1  # another object in the label map: mask_id must select only label 2
    video_root, mask_root = root / "videovo" / "raw_video", root / "video_inpainting"
    for row in ROWS:
        clip, npz = batch_tasks.datasets().vpbench_paths(row["path"], video_root, mask_root)
        make_sample_clip.write_mp4(clip, video, fps=row["fps"])
        npz.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(npz, labels)
    csv_path = root / "our_video_edit.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    return csv_path, video_root, mask_root


def test_edit_pairs_write_source_edited_and_the_reference_json(tmp_path, models_dir):
    csv_path, video_root, mask_root = write_dataset(tmp_path / "data")
    out = tmp_path / "pairs"
    args = ["--task", "edit-pairs", "--csv", str(csv_path), "--video-root", str(video_root), "--mask-root",
            str(mask_root), "--output-dir", str(out), "--models-dir", str(models_dir), "--local", "--threads", "1",
            "--sets-file", str(REPO / "scripts" / "demo_sets" / "videopainter_edit.json"), "--set",
            "sampler.steps=2", "--no-progress"]
    jobs = batch_tasks.edit_pair_jobs(csv_path, out, batch_tasks.EDIT_WORKFLOW, video_root, mask_root)
    if batch_tasks.has_node(cc.load_workflow(batch_tasks.EDIT_WORKFLOW), "first_frame"):
        # FLUX Fill cannot run with tiny weights: first frames made elsewhere replace the node titled first_frame.
        frames = tmp_path / "first_frames"
        frames.mkdir()
        for job in jobs:
            Image.fromarray(make_sample_clip.sample_frames(frames=1, width=96, height=80)[0][0]).save(
                frames / f"{job.id}.png")
        args += ["--first-frames", str(frames)]
    assert vp_batch.main(args) == 0
    assert sorted(j.id for j in jobs) == sorted(d.name for d in out.iterdir() if d.is_dir())
    for job, row in zip(jobs, ROWS):
        folder = Path(job.output)
        pair = json.loads((folder / "pair.json").read_text())
        assert list(pair) == list(batch_tasks.PAIR_KEYS)
        assert pair["Original_video_caption"] == row["caption"]
        for key in ("path", "mask_id", "start_frame", "end_frame", "fps", "Edited_video_caption",
                    "Edited_image_caption", "Editing_instruction"):
            assert pair[key] == row[key], key
        assert frame_count(folder / "source.mp4") == frame_count(folder / "edited.mp4") == SAMPLED
        assert set(bj.read_marker(folder)["files"]) == {"source.mp4", "edited.mp4", "pair.json"}
        with av.open(str(folder / "source.mp4")) as c:  # the sampled clip, at the sampled rate
            assert c.streams.video[0].average_rate == 8
    # The rerun skips both pairs.
    assert vp_batch.main(args) == 0
    last = [json.loads(line) for line in (out / "vp_batch_log.jsonl").read_text().splitlines()][-3:-1]
    assert [r["outcome"] for r in last] == ["skipped", "skipped"]


def test_edit_pairs_csv_missing_a_column_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,mask_id,start_frame,end_frame,fps,video_inpainting_prompt,image_inpainting_prompt\n"
                   "x.0.mp4,1,0,49,24,a car,a car\n")
    rc = vp_batch.main(["--task", "edit-pairs", "--csv", str(bad), "--video-root", "v", "--mask-root", "m",
                        "--local", "--output-dir", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "not an edit CSV; --task edit-pairs needs the columns Edited_video_caption, Edited_image_caption, " \
           "Editing_instruction" in err, err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
