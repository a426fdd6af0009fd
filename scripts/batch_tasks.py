"""What one batch job does on a started ComfyUI server: the generic task, editing pairs, evaluation rows.

A task turns a Job into files in a staging folder (``BatchWorker`` commits them) using the client code of
``scripts/vp_run.py`` (``scripts/comfy_client.py``). ``run`` raises ``JobFailed`` for a node error or a refused graph;
any other exception is judged by the worker (a dead server means a retry elsewhere, else a failed job).
"""
from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import comfy_client as cc
from batch_jobs import Job, finish_jobs

log = logging.getLogger(__name__)

REPO = cc.REPO_ROOT
EDIT_WORKFLOW = REPO / "workflows" / "api" / "videopainter_edit.json"


class JobFailed(Exception):
    """The job ran and failed for a reason a retry will not fix (node error, validation error, bad input)."""

    def __init__(self, message: str, node: dict[str, str] | None = None):
        super().__init__(message)
        self.node = node


def build_prompt(job: Job, options: Mapping[str, Any]) -> dict[str, Any]:
    """The job's workflow with overrides applied in this order (later wins): batch ``--sets-file``s, the job's
    sets files, batch ``--set``s, the job's overrides."""
    prompt = cc.load_workflow(job.workflow)
    sets: dict[str, Any] = {}
    for path in [*options.get("sets_files", []), *job.sets_files]:
        sets.update(cc.load_sets_file(path))
    sets.update(options.get("sets", {}))
    sets.update(job.overrides)
    return cc.apply_overrides(prompt, sets)


def run_prompt(server: cc.ServerHandle, prompt: dict[str, Any], options: Mapping[str, Any]) -> cc.RunResult:
    """Submit and wait; a node error or a refused graph becomes JobFailed with the node's id, class and message."""
    try:
        result = cc.submit(server, prompt, timeout=options.get("job_timeout"))
    except cc.PromptValidationError as e:
        raise JobFailed(str(e)) from None
    if result.error is not None:
        err = result.error
        raise JobFailed(str(err), {"node_id": err.node_id, "node_type": err.node_type,
                                   "exception_type": err.exception_type, "message": err.exception_message.strip()})
    if not result.ok:
        raise JobFailed(f"prompt {result.prompt_id} was interrupted at node {result.interrupted_node}")
    return result


class GenericTask:
    """Upload the job's inputs, run its workflow, copy every output file (subfolders kept) to the staging folder."""

    name = "generic"

    def __init__(self, options: Mapping[str, Any]):
        self.options = dict(options)

    def run(self, job: Job, server: cc.ServerHandle, staging: Path) -> dict[str, Any]:
        for name, path in job.inputs.items():
            if not Path(path).is_file():
                raise JobFailed(f"input {name}={path}: file does not exist")
            cc.upload_input(server, name, path)
        result = run_prompt(server, build_prompt(job, self.options), self.options)
        files = cc.collect_outputs(server, result.history, staging)
        return {"files": len(files), "server_seconds": round(result.seconds, 3)}


# ------------------------------------------------------------------------------------------------- edit pairs

# Columns of the reference's edit CSVs (data/our_video_edit.csv, as read by evaluate/eval_edit.py and
# infer/edit_bench.py) that an editing pair needs; the original caption is the first of ORIGINAL_CAPTION present.
EDIT_COLUMNS = ("path", "mask_id", "start_frame", "end_frame", "fps",
                "Edited_video_caption", "Edited_image_caption", "Editing_instruction")
ORIGINAL_CAPTION = ("caption", "Original_video_caption", "video_inpainting_prompt")
PAIR_KEYS = ("path", "mask_id", "start_frame", "end_frame", "fps", "Original_video_caption",
             "Edited_video_caption", "Edited_image_caption", "Editing_instruction")
CLIP_NAME, MASK_NAME, FIRST_FRAME_NAME = "vp_sample.mp4", "vp_sample_mask.mp4", "vp_batch_first_frame.png"
SOURCE_SAVE_ID, SOURCE_VIDEO_ID = "vp_batch_source_save", "vp_batch_source_video"


def edit_pair_jobs(csv_path: str | os.PathLike, output_root: str | os.PathLike, workflow: str | os.PathLike,
                   sets_files: list[str] | None = None) -> list[Job]:
    """One job per row of an edit CSV in the reference layout; the id (and output folder) is
    ``<video stem>_m<mask_id>_<start>-<end>``, stable when rows are reordered."""
    import csv

    path = Path(csv_path)
    if not path.is_file():
        raise ValueError(f"edit CSV {path} does not exist")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in EDIT_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; the reference's edit CSV "
                             f"(our_video_edit.csv) has {', '.join(EDIT_COLUMNS)} and a caption column")
        rows = list(enumerate(reader, 2))
    numbered = []
    for line, row in rows:
        try:
            rec = {k: row[k] for k in EDIT_COLUMNS}
            for k in ("mask_id", "start_frame", "end_frame"):
                rec[k] = int(float(row[k]))
            rec["fps"] = int(float(row["fps"]))  # the reference's integer fps (int(meta_data['fps']))
        except (TypeError, ValueError):
            raise ValueError(f"{path}:{line}: mask_id, start_frame, end_frame and fps must be numbers; got "
                             f"{[row.get(k) for k in ('mask_id', 'start_frame', 'end_frame', 'fps')]}") from None
        rec["Original_video_caption"] = next((row[c] for c in ORIGINAL_CAPTION if row.get(c)), "")
        stem = Path(rec["path"]).name.split(".")[0]
        job_id = f"{stem}_m{rec['mask_id']}_{rec['start_frame']}-{rec['end_frame']}"
        numbered.append((line, Job(id=job_id, output=job_id, workflow=str(Path(workflow).resolve()),
                                   sets_files=list(sets_files or []), task="edit-pairs", row=rec)))
    return finish_jobs(numbered, output_root, str(path))


def reference_paths(video_root: str | os.PathLike, mask_root: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """The clip and its ``all_masks.npz`` for a CSV ``path``, by the reference's folder rules (VPBench/VPData):
    ``*.0.mp4`` is Videovo (``<video_root>/<base[:-3]>/<base>.0.mp4``, masks ``<mask_root>/videovo/<base>/``),
    other ``*.mp4`` is Pexels (``video_root`` with ``videovo`` -> ``pexels/pexels``, ``<base[:9]>/<base>.mp4``,
    masks ``<mask_root>/pexels/<base>/``)."""
    base = name.split(".")[0]
    if ".0.mp4" in name:
        return (Path(video_root) / base[:-3] / f"{base}.0.mp4",
                Path(mask_root) / "videovo" / base / "all_masks.npz")
    if name.endswith(".mp4"):
        return (Path(str(video_root).replace("videovo", "pexels/pexels")) / base[:9] / f"{base}.mp4",
                Path(mask_root) / "pexels" / base / "all_masks.npz")
    raise ValueError(f"CSV path {name!r}: expected a Videovo (*.0.mp4) or Pexels (*.mp4) clip name")


def write_clip_and_mask(video: Path, npz: Path, mask_id: int, start: int, end: int, fps: int, dest: Path) -> int:
    """Cut frames [start, end) of ``video`` and the label map ``== mask_id`` of the same frames into
    ``dest/vp_sample.mp4`` and ``dest/vp_sample_mask.mp4`` (white = the region to edit), both lossless RGB
    H.264 (libx264rgb, crf 0) at ``fps``, so the workflow's loaders read exactly the source pixels. Frames are
    streamed; returns the frame count."""
    import av
    import numpy as np

    for p, what in ((video, "clip"), (npz, "mask file")):
        if not p.is_file():
            raise JobFailed(f"{what} {p} does not exist (check --video-root / --mask-root)")
    masks = np.load(npz)["arr_0"]
    if end <= start or end > masks.shape[0]:
        raise JobFailed(f"{npz}: frames {start}..{end} are outside its {masks.shape[0]} mask frames")
    n = 0
    with av.open(str(video)) as src, _Writer(dest / CLIP_NAME, fps) as clip, _Writer(dest / MASK_NAME, fps) as mask:
        for i, frame in enumerate(src.decode(video=0)):
            if i >= end:
                break
            if i < start:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            label = masks[i]
            if label.shape != rgb.shape[:2]:
                raise JobFailed(f"{npz}: mask frame {i} is {label.shape[1]}x{label.shape[0]}, the clip is "
                                f"{rgb.shape[1]}x{rgb.shape[0]}")
            clip.write(rgb)
            mask.write(np.repeat(np.where(label == mask_id, 255, 0).astype(np.uint8)[..., None], 3, axis=2))
            n += 1
    if n != end - start:
        raise JobFailed(f"{video}: has {start + n} frames, the CSV asks for frames {start}..{end}")
    return n


class _Writer:
    """Lossless RGB H.264 writer (libx264rgb crf 0): decoded back to exactly the pixels written."""

    def __init__(self, path: Path, fps: int):
        self.path, self.fps, self.container, self.stream = path, fps, None, None

    def __enter__(self) -> _Writer:
        import av

        self.container = av.open(str(self.path), mode="w")
        return self

    def write(self, rgb) -> None:
        import av

        if self.stream is None:
            self.stream = self.container.add_stream("libx264rgb", rate=Fraction(self.fps))
            self.stream.width, self.stream.height = rgb.shape[1], rgb.shape[0]
            self.stream.pix_fmt = "rgb24"
            self.stream.options = {"crf": "0", "preset": "veryfast"}
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self.container.mux(packet)

    def __exit__(self, *exc: object) -> None:
        if self.stream is not None:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        self.container.close()


def add_source_save(prompt: dict[str, Any], encode_title: str = "encode") -> dict[str, Any]:
    """A copy of ``prompt`` that also saves the encoder's frame-rate sampled original frames (its ``frames`` and
    ``fps`` outputs, slots 1 and 3) as a video: the pair's source clip, frame for frame with the edited clip."""
    out = copy.deepcopy(prompt)
    enc = cc.find_node(out, encode_title)
    out[SOURCE_VIDEO_ID] = {"class_type": "CreateVideo", "_meta": {"title": "pair_source_video"},
                            "inputs": {"images": [enc, 1], "fps": [enc, 3]}}
    out[SOURCE_SAVE_ID] = {"class_type": "SaveVideo", "_meta": {"title": "pair_source_save"},
                           "inputs": {"video": [SOURCE_VIDEO_ID, 0], "filename_prefix": "vp_batch/source",
                                      "format": "auto", "codec": "auto"}}
    return out


def has_node(prompt: Mapping[str, Any], title: str) -> bool:
    try:
        cc.find_node(prompt, title)
        return True
    except cc.OverrideError:
        return False


class EditPairsTask:
    """The reference's edit_bench without a network service: captions and instruction from the CSV, frame 0
    through the workflow's first-frame path (or a provided first frame), the pair written as ``source.mp4``,
    ``edited.mp4`` and ``pair.json`` (the reference's keys)."""

    name = "edit-pairs"

    def __init__(self, options: Mapping[str, Any]):
        self.options = dict(options)
        for key in ("video_root", "mask_root"):
            if not self.options.get(key):
                raise ValueError(f"--task edit-pairs needs --{key.replace('_', '-')}")

    def prompt_for(self, job: Job, server: cc.ServerHandle) -> dict[str, Any]:
        row = job.row or {}
        prompt = build_prompt(job, self.options)
        sets = {"prompt.value": row["Edited_video_caption"]}
        if has_node(prompt, "first_frame_prompt"):
            sets["first_frame_prompt.value"] = row["Edited_image_caption"]
        prompt = cc.apply_overrides(prompt, sets)
        first_frames = self.options.get("first_frames")
        if first_frames:
            image = Path(first_frames) / f"{job.id}.png"
            if not image.is_file():
                raise JobFailed(f"--first-frames: {image} does not exist (one PNG per pair, named by its id)")
            if not has_node(prompt, "first_frame"):
                raise JobFailed(f"--first-frames given, but {job.workflow} has no node titled 'first_frame' to "
                                f"replace")
            cc.upload_input(server, FIRST_FRAME_NAME, image)
            prompt = cc.replace_first_frame(prompt, FIRST_FRAME_NAME)
        return add_source_save(prompt)

    def run(self, job: Job, server: cc.ServerHandle, staging: Path) -> dict[str, Any]:
        row = job.row or {}
        video, npz = reference_paths(self.options["video_root"], self.options["mask_root"], row["path"])
        with tempfile.TemporaryDirectory(prefix="vp_batch_inputs_") as tmp:
            frames = write_clip_and_mask(video, npz, row["mask_id"], row["start_frame"], row["end_frame"],
                                         row["fps"], Path(tmp))
            for name in (CLIP_NAME, MASK_NAME):
                cc.upload_input(server, name, Path(tmp) / name)
        result = run_prompt(server, self.prompt_for(job, server), self.options)
        written = []
        for node_id, _key, entry in cc.iter_output_files(result.history):
            rel = Path(entry.get("subfolder") or "") / entry["filename"]
            if node_id == SOURCE_SAVE_ID:
                target = staging / f"source{rel.suffix}"
            elif not any(w.name.startswith("edited") for w in written):
                target = staging / f"edited{rel.suffix}"
            else:  # a workflow with more outputs: keep them under their own names
                target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(server.output_dir / rel, target)
            written.append(target)
        if not any(w.name.startswith("source") for w in written) or not any(w.name.startswith("edited")
                                                                           for w in written):
            raise JobFailed(f"the workflow saved {[w.name for w in written]}; an edit pair needs the edited clip "
                            f"(a SaveVideo) and the source clip")
        (staging / "pair.json").write_text(json.dumps({k: row[k] for k in PAIR_KEYS}, indent=4, ensure_ascii=False)
                                           + "\n")
        return {"source_frames": frames}


TASKS = {GenericTask.name: GenericTask, EditPairsTask.name: EditPairsTask}


def make_task(name: str, options: Mapping[str, Any]):
    if name == "eval":  # imports scripts/vp_eval.py (issue #19) only when asked for
        from batch_eval import EvalTask

        return EvalTask(options)
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name](options)
