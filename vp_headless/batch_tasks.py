"""What one batch job does on a started ComfyUI server: the generic task, editing pairs, evaluation rows.

A task turns a Job into files in a staging folder (``BatchWorker`` commits them) using the client code of
``scripts/vp_run.py`` (``vp_headless/comfy_client.py``). ``run`` raises ``JobFailed`` for a node error or a refused graph;
any other exception is judged by the worker (a dead server means a retry elsewhere, else a failed job).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import comfy_client as cc
from .batch_jobs import Job, JobFailed, finish_jobs

log = logging.getLogger(__name__)

REPO = cc.REPO_ROOT
EDIT_WORKFLOW = REPO / "workflows" / "api" / "videopainter_edit.json"


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


def _validation_failed(e: "cc.PromptValidationError") -> JobFailed:
    """A refused graph as JobFailed whose first line (the batch summary's) and ``node`` field name the first failing
    node, its class and the input (the old first line was only "prompt failed validation:")."""
    for nid, info in e.node_errors.items():
        for err in info.get("errors", []):
            node = {"node_id": str(nid), "node_type": info.get("class_type", "?"),
                    "input": err.get("extra_info", {}).get("input_name"), "exception_type": "validation",
                    "message": f"{err.get('message', err.get('type', 'invalid'))}"
                               + (f": {err['details']}" if err.get("details") else "")}
            where = f"node {node['node_id']} ({node['node_type']})" + (f", input {node['input']!r}" if node["input"] else "")
            return JobFailed(f"prompt failed validation at {where}: {node['message']}\n{e}", node)
    return JobFailed(str(e).replace(":\n  ", ": ", 1))


def run_prompt(server: cc.ServerHandle, prompt: dict[str, Any], options: Mapping[str, Any]) -> cc.RunResult:
    """Submit and wait; a node error or a refused graph becomes JobFailed with the node's id, class and message."""
    try:
        result = cc.submit(server, prompt, timeout=options.get("job_timeout"))
    except cc.PromptValidationError as e:
        raise _validation_failed(e) from None
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

# The pair's JSON: the reference's keys (infer/edit_bench.py), values from the CSV row.
PAIR_KEYS = ("path", "mask_id", "start_frame", "end_frame", "fps", "Original_video_caption",
             "Edited_video_caption", "Edited_image_caption", "Editing_instruction")
ORIGINAL_CAPTION = ("caption", "Original_video_caption", "video_inpainting_prompt")  # first one present
CLIP_NAME, MASK_NAME, FIRST_FRAME_NAME = "vp_sample.mp4", "vp_sample_mask.mp4", "vp_batch_first_frame.png"


def datasets():
    """``vp_core.evaluation.datasets`` (the reference's CSV, folder rules, cut and frame-rate sampling), imported on
    first use (it imports torch)."""
    from ..vp_core.evaluation import datasets

    return datasets


def edit_pair_jobs(csv_path: str | os.PathLike, output_root: str | os.PathLike, workflow: str | os.PathLike,
                   video_root: str | os.PathLike, mask_root: str | os.PathLike,
                   max_frames: int | None = 49) -> list[Job]:
    """One job per row of an edit CSV in the reference layout (read by ``vp_core.evaluation.datasets.vpbench_rows``); the id
    (and output folder) is ``<video stem>_m<mask_id>_<start>-<end>``, stable when rows are reordered."""
    import csv

    ds = datasets()
    rows = ds.vpbench_rows(csv_path, video_root, mask_root)
    if rows and not rows[0]["edit"]:
        raise ValueError(f"{csv_path}: not an edit CSV; --task edit-pairs needs the columns "
                         f"{', '.join(ds.EDIT_CAPTIONS)} (the reference's our_video_edit.csv layout)")
    with open(csv_path, newline="", encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    numbered = []
    for i, (row, line) in enumerate(zip(rows, lines)):
        pair = {"path": line["path"], "mask_id": row["mask_id"], "start_frame": row["start_frame"],
                "end_frame": row["end_frame"], "fps": row["fps"],
                "Original_video_caption": next((line[c] for c in ORIGINAL_CAPTION if line.get(c)), ""),
                "Edited_video_caption": row["caption"], "Edited_image_caption": row["region_caption"],
                "Editing_instruction": row["instruction"]}
        stem = Path(line["path"]).name.split(".")[0]
        job_id = f"{stem}_m{row['mask_id']}_{row['start_frame']}-{row['end_frame']}"
        numbered.append((i + 2, Job(id=job_id, output=job_id, workflow=str(Path(workflow).resolve()),
                                    task="edit-pairs", row={"pair": pair, "clip": row, "max_frames": max_frames})))
    return finish_jobs(numbered, output_root, str(csv_path))


def has_node(prompt: Mapping[str, Any], title: str) -> bool:
    try:
        cc.find_node(prompt, title)
        return True
    except cc.OverrideError:
        return False


class EditPairsTask:
    """The reference's edit_bench without a network service: captions and instruction from the CSV, the clip cut and
    frame-rate sampled as the reference does (``vp_core.evaluation.datasets.read_clip``), frame 0 through the workflow's
    first-frame path (or a provided first frame), the pair written as ``source.mp4`` (that clip), ``edited.mp4``
    and ``pair.json`` (the reference's keys)."""

    name = "edit-pairs"

    def __init__(self, options: Mapping[str, Any]):
        self.options = dict(options)

    def prompt_for(self, job: Job, server: cc.ServerHandle, fps: float) -> dict[str, Any]:
        pair = job.row["pair"]
        prompt = build_prompt(job, self.options)
        # The clip is uploaded already frame-rate sampled: the encoder keeps every frame (step 1).
        sets = {"prompt.value": pair["Edited_video_caption"], "encode.target_fps": float(fps)}
        if has_node(prompt, "first_frame_prompt"):
            sets["first_frame_prompt.value"] = pair["Edited_image_caption"]
        prompt = cc.apply_overrides(prompt, sets)
        for node in prompt.values():  # the pair is the sampled clip (the reference's), whatever the encoder's default
            if node.get("class_type") == "VideoPainterEncode":
                node["inputs"]["output_rate"] = "sampled"
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
        return prompt

    def run(self, job: Job, server: cc.ServerHandle, staging: Path) -> dict[str, Any]:
        ds = datasets()
        clip = job.row["clip"]
        try:
            frames, holes = ds.read_clip(clip, job.row["max_frames"])
        except ValueError as e:
            raise JobFailed(str(e)) from None
        fps = ds.TARGET_FPS if clip["step"] > 1 else clip["fps"]  # the sampled clip's rate (as vp_eval)
        source = ds.write_video(staging / "source.mp4", frames, fps)  # lossless: exactly the frames the model saw
        with tempfile.TemporaryDirectory(prefix="vp_batch_inputs_") as tmp:
            mask = ds.write_video(Path(tmp) / MASK_NAME, holes[..., None].expand(-1, -1, -1, 3), fps)
            cc.upload_input(server, CLIP_NAME, source)
            cc.upload_input(server, MASK_NAME, mask)
        result = run_prompt(server, self.prompt_for(job, server, fps), self.options)
        videos = [Path(e.get("subfolder") or "") / e["filename"] for _n, _k, e in cc.iter_output_files(result.history)]
        if len(videos) != 1:
            raise JobFailed(f"the workflow saved {[str(v) for v in videos]}; an edit pair needs exactly one output "
                            f"file (the edited clip)")
        shutil.copyfile(server.output_dir / videos[0], staging / f"edited{videos[0].suffix}")
        (staging / "pair.json").write_text(json.dumps(job.row["pair"], indent=4, ensure_ascii=False) + "\n")
        return {"frames": int(frames.shape[0]), "fps": fps}


TASKS = {GenericTask.name: GenericTask, EditPairsTask.name: EditPairsTask}


def make_task(name: str, options: Mapping[str, Any]):
    if name == "eval":  # imports scripts/vp_eval.py (issue #19) only when asked for
        from .batch_eval import EvalTask

        return EvalTask(options)
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name](options)
