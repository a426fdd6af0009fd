"""vp_core.evaluation.datasets: the reference's VPBench folder rules and frame selection, and the DAVIS reader."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from videopainter.vp_core.evaluation import datasets


def test_vpbench_folder_rules():
    v, m = datasets.vpbench_paths("000000207786_8632822.0.mp4", "/d/videovo/raw_video", "/d/video_inpainting")
    assert str(v) == "/d/videovo/raw_video/000000207786_8632/000000207786_8632822.0.mp4"
    assert str(m) == "/d/video_inpainting/videovo/000000207786_8632822/all_masks.npz"
    v, m = datasets.vpbench_paths("1234567890_55.mp4", "/d/videovo/raw_video", "/d/video_inpainting")
    assert str(v) == "/d/pexels/pexels/raw_video/123456789/1234567890_55.mp4"
    assert str(m) == "/d/video_inpainting/pexels/1234567890_55/all_masks.npz"
    with pytest.raises(ValueError, match="mp4"):
        datasets.vpbench_paths("clip.avi", "/a", "/b")


@pytest.mark.parametrize("fps,name,step", [(30, "our_video_inpaint.csv", 3), (24, "x.csv", 3), (16, "x.csv", 2),
                                           (8, "x.csv", 1), (5, "x.csv", 1), (30, "our_video_edit_long.csv", 1),
                                           (30, "our_video_inpaint_long.csv", 3)])
def test_frame_rate_step(fps, name, step):
    assert datasets.step_for(name, fps) == step


def _write_vpbench(tmp_path, fps=16, start=3, end=25, mask_id=2, edit=False):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (30, 16, 24, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, (30, 16, 24)).astype(np.uint8)
    name = "000000000001_1234567.0.mp4"
    video, npz = datasets.vpbench_paths(name, tmp_path / "videovo", tmp_path / "masks")
    video.parent.mkdir(parents=True)
    npz.parent.mkdir(parents=True)
    datasets.write_video(video, frames, fps)  # lossless: decoded frames are these frames
    np.savez_compressed(npz, labels)
    cols = ["path", "mask_id", "fps", "start_frame", "end_frame"]
    cols += list(datasets.EDIT_CAPTIONS) if edit else list(datasets.INPAINT_CAPTIONS)
    path = tmp_path / ("our_video_edit.csv" if edit else "our_video_inpaint.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerow([name, mask_id, fps, start, end, "video caption", "region caption"] + (["make it red"] if edit else []))
    return path, frames, labels


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_vpbench_clip_with_a_display_rotation_is_read_upright(tmp_path, degrees):
    """A phone clip (frames stored sideways, a display matrix) is read as players show it, and its masks (made on
    the upright frames) line up; rgb24 stays exact (lossless H.264 RGB)."""
    import av

    path, _, _ = _write_vpbench(tmp_path)
    (row,) = datasets.vpbench_rows(path, tmp_path / "videovo", tmp_path / "masks")
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 256, (30, 16, 24, 3), dtype=np.uint8)
    shown = np.ascontiguousarray(np.rot90(stored, k=degrees // 90, axes=(1, 2)))
    with av.open(row["video"], "w") as c:  # as datasets.write_video, plus the display rotation
        s = c.add_stream("libx264rgb", rate=16)
        s.width, s.height, s.pix_fmt, s.options = 24, 16, "rgb24", {"qp": "0"}
        s.set_display_rotation(degrees)
        for f in stored:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    labels = rng.integers(0, 3, shown.shape[:3]).astype(np.uint8)
    np.savez_compressed(row["masks"], labels)
    got, holes = datasets.read_clip(row, max_frames=5)
    np.testing.assert_array_equal(got.numpy(), shown[3:25][::2][:5])
    np.testing.assert_array_equal(holes.numpy(), (labels[3:25][::2][:5] == 2) * 255)


def test_vpbench_clip_is_cut_like_the_reference(tmp_path):
    path, frames, labels = _write_vpbench(tmp_path)
    (row,) = datasets.vpbench_rows(path, tmp_path / "videovo", tmp_path / "masks")
    assert row["row_id"] == "000000000001_1234567.0.mp4" and row["step"] == 2 and not row["edit"]
    assert (row["caption"], row["region_caption"]) == ("video caption", "region caption")
    got, holes = datasets.read_clip(row, max_frames=5)
    want = frames[3:25][::2][:5]
    np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(holes.numpy(), (labels[3:25][::2][:5] == 2) * 255)
    assert len(datasets.read_clip(row, max_frames=None)[0]) == len(range(3, 25, 2))
    with pytest.raises(AssertionError):  # the check sees an off-by-one in the selection
        np.testing.assert_array_equal(got.numpy(), frames[4:26][::2][:5])


def test_vpbench_edit_csv_uses_the_edited_captions(tmp_path):
    path, _, _ = _write_vpbench(tmp_path, edit=True)
    (row,) = datasets.vpbench_rows(path, tmp_path / "videovo", tmp_path / "masks")
    assert row["edit"] and row["caption"] == "video caption" and row["instruction"] == "make it red"


def test_vpbench_errors_name_the_problem(tmp_path):
    path, _, _ = _write_vpbench(tmp_path)
    with pytest.raises(ValueError, match="lacks the column"):
        bad = tmp_path / "bad.csv"
        bad.write_text("path,fps\nx.mp4,8\n")
        datasets.vpbench_rows(bad, tmp_path, tmp_path)
    (row,) = datasets.vpbench_rows(path, tmp_path / "elsewhere", tmp_path / "masks")
    with pytest.raises(ValueError, match="does not exist"):
        datasets.read_clip(row)


def test_davis_reader_resizes_dilates_and_takes_captions_by_position(tmp_path):
    vroot, mroot = tmp_path / "JPEGImages_432_240", tmp_path / "test_masks"
    for name in ("b_second", "a_first"):
        (vroot / name).mkdir(parents=True)
        (mroot / name).mkdir(parents=True)
        for t in range(3):
            Image.fromarray(np.full((24, 40, 3), 100 + t, np.uint8)).save(vroot / name / f"{t:05d}.jpg", quality=100)
            m = np.zeros((24, 40), np.uint8)
            m[12, 20] = 255
            Image.fromarray(m).save(mroot / name / f"{t:05d}.png")
    cap = tmp_path / "davis_caption.csv"
    cap.write_text("Video_Index,Video_Caption,Masked_Target_Caption\n1,first video,first\n2,second video,second\n")
    rows = datasets.davis_rows(vroot, mroot, cap)
    assert [r["name"] for r in rows] == ["a_first", "b_second"]  # sorted; captions by that position
    assert rows[0]["caption"] == "first video" and rows[1]["region_caption"] == "second"
    frames, holes = datasets.read_clip(rows[0], size=(40, 24))
    assert frames.shape == (3, 24, 40, 3) and holes.shape == (3, 24, 40)
    assert abs(int(frames[1].float().mean()) - 101) <= 1
    yy, xx = np.mgrid[0:24, 0:40]
    diamond = (np.abs(yy - 12) + np.abs(xx - 20)) <= 4  # a 3x3 cross applied 4 times = L1 ball of radius 4
    np.testing.assert_array_equal(holes[0].numpy() > 0, diamond)
    big, big_holes = datasets.read_clip(rows[0], size=(80, 48))
    assert big.shape == (3, 48, 80, 3) and big_holes[0].sum() > holes[0].sum()


def test_the_sub_8_fps_rule_is_documented_where_we_differ():
    """Issue #26 item 10: the step for clips below 8 fps (the reference's is 0 and fails) is in the README."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    differ = readme.split("### Where we deliberately differ from the reference", 1)[1].split("\n### ", 1)[0]
    assert "`max(1, int(fps // 8))`" in differ and "below 8 fps" in differ
    assert datasets.step_for("x.csv", 7) == 1  # the rule the README states
