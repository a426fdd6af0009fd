"""Batch jobs for ``scripts/vp_batch.py``: the job list (CSV or JSONL), what "complete" means, atomic writes.

A job is one workflow run: an API workflow, input files uploaded under the names the workflow's loaders use
(``vp_sample.mp4``, ``vp_sample_mask.mp4``, as ``vp_run.py --input`` does), ``--set``-style overrides
(``TITLE.INPUT: value``) and an output folder. Nothing here knows the inner wiring of a workflow.

A job is complete when its output folder holds ``vp_batch_done.json`` (the done marker) whose ``key`` matches the
job as it is now (workflow content, overrides, input paths and sizes, task row) and every file the marker lists
exists with the size it records (and, with ``verify_hashes``, the SHA-256). Outputs are committed in this order:
the old marker is removed, each file is renamed from a staging folder inside the output folder into place, then
the marker is written to a temp name, flushed and renamed. A job cut anywhere in between therefore has no marker
and runs again.

Nothing here imports Ray, so the single-machine path works without it.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .comfy_client import parse_set_value  # CSV cells parse like --set values

DONE_MARKER = "vp_batch_done.json"
STAGING_PREFIX = ".vp_batch_staging-"
MARKER_VERSION = 1
# CSV job lists: one column per input / override, named like the --input and --set flags of vp_run.py.
INPUT_COLUMN, SET_COLUMN = "input:", "set:"


class JobFailed(Exception):
    """The job ran and failed for a reason a retry will not fix (node error, validation error, bad input)."""

    def __init__(self, message: str, node: dict[str, str] | None = None):
        super().__init__(message)
        self.node = node


@dataclass
class Job:
    """One unit of work. ``output`` is absolute; ``row`` carries a task's own data (an edit-pairs or eval row)."""

    id: str
    output: str
    workflow: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    sets_files: list[str] = field(default_factory=list)
    task: str = "generic"
    row: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------- job lists


def load_jobs(path: str | os.PathLike, output_root: str | os.PathLike) -> list[Job]:
    """Read a job list: ``.jsonl`` (one JSON object a line) or ``.csv``.

    JSONL keys: ``workflow`` (required), ``inputs`` ({NAME: PATH}), ``overrides`` ({"NODE.INPUT": value}),
    ``output`` (folder), ``sets_files`` ([FILE.json]), ``id``. CSV columns: ``workflow``, ``output``, ``id``,
    ``sets_files`` (``;``-separated), ``input:NAME`` (a path) and ``set:NODE.INPUT`` (parsed as JSON when it is
    valid JSON, like ``--set``). Relative paths (workflow, inputs, sets files) are relative to the job list's
    folder; ``output`` is relative to ``output_root`` and defaults to the job id. The id defaults to the output
    folder's name, else ``job-<line>``.

    Raises:
        ValueError: naming the file, the line and what is wrong (missing workflow, duplicate id or output...).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"job list {path} does not exist")
    if path.suffix.lower() == ".jsonl":
        raw = list(_read_jsonl(path))
    elif path.suffix.lower() == ".csv":
        raw = list(_read_csv(path))
    else:
        raise ValueError(f"job list {path}: expected a .csv or .jsonl file, got {path.suffix or 'no suffix'!r}")
    if not raw:
        raise ValueError(f"job list {path} has no jobs")
    return finish_jobs([(line, _job_from_record(rec, f"{path}:{line}", path.parent)) for line, rec in raw],
                       output_root, str(path))


def finish_jobs(numbered: list[tuple[int, Job]], output_root: str | os.PathLike, source: str) -> list[Job]:
    """Give every job an id and an absolute output folder, and refuse duplicates (two jobs, one folder)."""
    root = Path(output_root).resolve()
    jobs, by_id, by_out = [], {}, {}
    for line, job in numbered:
        if not job.id:
            job.id = Path(job.output).name if job.output else f"job-{line}"
        if not re.fullmatch(r"[A-Za-z0-9._-]+", job.id):
            raise ValueError(f"{source}:{line}: job id {job.id!r} may only hold letters, digits, '.', '_' and '-'")
        job.output = str((root / (job.output or job.id)).resolve())
        for seen, key, what in ((by_id, job.id, "id"), (by_out, job.output, "output folder")):
            if key in seen:
                raise ValueError(f"{source}:{line}: {what} {key!r} is also used by the job on line {seen[key]}")
            seen[key] = line
        jobs.append(job)
    return jobs


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    for line, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{line}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{path}:{line}: expected a JSON object, got {type(rec).__name__}")
        yield line, rec


def _read_csv(path: Path) -> Iterable[tuple[int, dict]]:
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), 2):
            rec: dict[str, Any] = {"inputs": {}, "overrides": {}}
            for col, value in row.items():
                if col is None or value is None or value == "":
                    continue
                if col.startswith(INPUT_COLUMN):
                    rec["inputs"][col[len(INPUT_COLUMN):]] = value
                elif col.startswith(SET_COLUMN):
                    rec["overrides"][col[len(SET_COLUMN):]] = parse_set_value(value)
                elif col == "sets_files":
                    rec["sets_files"] = [v for v in value.split(";") if v]
                else:
                    rec[col] = value
            yield line, rec


def _job_from_record(rec: Mapping[str, Any], where: str, base: Path) -> Job:
    known = {"id", "workflow", "inputs", "overrides", "output", "sets_files"}
    unknown = set(rec) - known
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; a job has {', '.join(sorted(known))}"
                         f" (CSV: also input:NAME and set:NODE.INPUT columns)")
    if not rec.get("workflow"):
        raise ValueError(f"{where}: no workflow (an API-format workflow JSON, e.g. workflows/api/videopainter_inpaint"
                         f".json)")
    for key, kind in (("inputs", dict), ("overrides", dict), ("sets_files", list)):
        if key in rec and not isinstance(rec[key], kind):
            raise ValueError(f"{where}: {key} must be a JSON {'object' if kind is dict else 'list'}")

    def resolve(p: str) -> str:
        return str((base / p).resolve()) if not Path(p).is_absolute() else p

    return Job(
        id=str(rec.get("id") or ""),
        output=str(rec.get("output") or ""),
        workflow=resolve(str(rec["workflow"])),
        inputs={str(k): resolve(str(v)) for k, v in (rec.get("inputs") or {}).items()},
        overrides=dict(rec.get("overrides") or {}),
        sets_files=[resolve(str(p)) for p in rec.get("sets_files") or []],
    )


# ------------------------------------------------------------------------------------------------- complete?


def job_key(job: Job, extra: Mapping[str, Any] | None = None) -> str:
    """A hash of everything that decides a job's outputs: task, workflow and sets-file contents, overrides,
    input paths and sizes, the task row, and ``extra`` (the batch-wide overrides and options)."""
    def content(p: str | None) -> str | None:
        return sha256_file(Path(p)) if p and Path(p).is_file() else p

    spec = {
        "task": job.task,
        "workflow": content(job.workflow),
        "sets_files": [content(p) for p in job.sets_files],
        "overrides": job.overrides,
        "inputs": {k: [v, Path(v).stat().st_size if Path(v).is_file() else None] for k, v in job.inputs.items()},
        "row": job.row,
        "extra": dict(extra or {}),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def read_marker(output: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(output) / DONE_MARKER
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("version") == MARKER_VERSION else None


def is_done(job: Job, batch_key: Mapping[str, Any] | None, verify_hashes: bool = False) -> bool:
    """The one rule for "this job is done, skip it", applied by the driver (which jobs to dispatch) and by every
    worker (a dispatched job it finds done is reported skipped) with the same run settings: the marker's key for
    this job and batch, every file whole, and with ``verify_hashes`` (``--verify-hashes``, carried to the workers
    in ``WorkerConfig``) every file's SHA-256."""
    return is_complete(job, job_key(job, batch_key), verify_hashes)


def is_complete(job: Job, key: str, verify_hashes: bool = False) -> bool:
    """True when the job's done marker matches ``key`` and every file it lists is there, whole."""
    marker = read_marker(job.output)
    if marker is None or marker.get("key") != key or not isinstance(marker.get("files"), dict):
        return False
    out = Path(job.output)
    for rel, info in marker["files"].items():
        f = out / rel
        if not f.is_file() or f.stat().st_size != info.get("bytes"):
            return False
        if verify_hashes and sha256_file(f) != info.get("sha256"):
            return False
    return True


# ------------------------------------------------------------------------------------------------- writing


def new_staging(output: str | os.PathLike) -> Path:
    """An empty staging folder inside ``output`` (same file system, so committing is a rename)."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    return staging


def commit_outputs(staging: Path, output: str | os.PathLike, marker: Mapping[str, Any]) -> dict[str, Any]:
    """Move every file of ``staging`` into ``output`` (same relative paths), then write the done marker.

    Returns the marker written (``marker`` plus ``version`` and ``files``: {rel: {bytes, sha256}}).
    """
    out = Path(output)
    (out / DONE_MARKER).unlink(missing_ok=True)
    files: dict[str, Any] = {}
    for src in sorted(p for p in staging.rglob("*") if p.is_file()):
        rel = src.relative_to(staging)
        files[rel.as_posix()] = {"bytes": src.stat().st_size, "sha256": sha256_file(src)}
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
    shutil.rmtree(staging, ignore_errors=True)
    full = {**marker, "version": MARKER_VERSION, "files": files}
    write_json_atomic(out / DONE_MARKER, full)
    return full


def discard_staging(output: str | os.PathLike) -> None:
    """Remove staging folders a killed run left behind in ``output``."""
    out = Path(output)
    if out.is_dir():
        for stale in out.glob(STAGING_PREFIX + "*"):
            shutil.rmtree(stale, ignore_errors=True)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON to a temp file in the same folder, flush and fsync it, then rename it into place."""
    write_bytes_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n").encode())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
