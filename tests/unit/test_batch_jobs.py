"""vp_headless/batch_jobs.py without a server: job lists, the done marker ("complete"), atomic commits, and
vp_batch's scheduler on fake workers."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

from videopainter.vp_headless import batch_jobs as bj  # noqa: E402
from videopainter.vp_headless import batch as vp_batch  # noqa: E402

WORKFLOW = REPO / "workflows" / "api" / "window_plan.json"


def test_jsonl_and_csv_give_the_same_job(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"x")
    (tmp_path / "jobs.jsonl").write_text(json.dumps({
        "id": "a", "workflow": str(WORKFLOW), "inputs": {"vp_sample.mp4": "clip.mp4"},
        "overrides": {"window_plan.total_frames": 97, "prompt.value": "a car"}}) + "\n")
    (tmp_path / "jobs.csv").write_text("id,workflow,input:vp_sample.mp4,set:window_plan.total_frames,set:prompt.value\n"
                                       f"a,{WORKFLOW},clip.mp4,97,a car\n")
    (a,) = bj.load_jobs(tmp_path / "jobs.jsonl", tmp_path / "out")
    (b,) = bj.load_jobs(tmp_path / "jobs.csv", tmp_path / "out")
    assert a == b
    assert a.inputs == {"vp_sample.mp4": str(tmp_path / "clip.mp4")}  # relative to the job list
    assert a.output == str(tmp_path / "out" / "a")
    assert a.overrides == {"window_plan.total_frames": 97, "prompt.value": "a car"}


@pytest.mark.parametrize(("lines", "message"), [
    ([{"id": "a"}], "jobs.jsonl:1: no workflow"),
    ([{"workflow": "w.json", "output": "x"}, {"workflow": "w.json", "output": "x"}],
     "jobs.jsonl:2: id 'x' is also used by the job on line 1"),
    ([{"workflow": "w.json", "prompt": "a"}], "jobs.jsonl:1: unknown field(s) prompt"),
    ([{"workflow": "w.json", "id": "a/b"}], "job id 'a/b' may only hold"),
    ([{"workflow": "w.json", "inputs": ["a"]}], "jobs.jsonl:1: inputs must be a JSON object"),
])
def test_bad_job_lists_name_the_line(tmp_path, lines, message):
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(ValueError) as e:
        bj.load_jobs(path, tmp_path)
    assert message in str(e.value)


def committed(tmp_path, files: dict[str, bytes]) -> tuple[bj.Job, str]:
    job = bj.Job(id="j", output=str(tmp_path / "j"), workflow=str(WORKFLOW))
    key = bj.job_key(job)
    staging = bj.new_staging(job.output)
    for rel, data in files.items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_bytes(data)
    bj.commit_outputs(staging, job.output, {"job_id": job.id, "key": key})
    return job, key


def test_complete_means_marker_key_and_every_file_whole(tmp_path):
    job, key = committed(tmp_path, {"a.png": b"12345", "sub/b.txt": b"hi"})
    out = Path(job.output)
    assert not list(out.glob(bj.STAGING_PREFIX + "*"))
    assert bj.is_complete(job, key) and bj.is_complete(job, key, verify_hashes=True)
    assert not bj.is_complete(job, "another key")  # the job changed (overrides, workflow, inputs)
    (out / "a.png").write_bytes(b"54321")  # same size, other bytes: only the hash check sees it
    assert bj.is_complete(job, key) and not bj.is_complete(job, key, verify_hashes=True)
    (out / "a.png").write_bytes(b"1234")  # truncated
    assert not bj.is_complete(job, key)
    (out / "a.png").unlink()
    assert not bj.is_complete(job, key)


def test_no_marker_no_completion_and_a_new_commit_replaces_the_marker(tmp_path):
    job = bj.Job(id="j", output=str(tmp_path / "j"), workflow=str(WORKFLOW))
    assert not bj.is_complete(job, bj.job_key(job))
    (Path(job.output)).mkdir()
    (Path(job.output) / bj.DONE_MARKER).write_text("{not json")
    assert not bj.is_complete(job, bj.job_key(job))
    job, key = committed(tmp_path, {"a.txt": b"1"})
    assert bj.read_marker(job.output)["files"] == {"a.txt": {"bytes": 1, "sha256": bj.sha256_file(Path(job.output) /
                                                                                                "a.txt")}}


def test_job_key_follows_overrides_workflow_and_inputs(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"abc")
    job = bj.Job(id="j", output=str(tmp_path), workflow=str(WORKFLOW), inputs={"vp_sample.mp4": str(clip)},
                 overrides={"seed.value": 1})
    key = bj.job_key(job)
    assert bj.job_key(job) == key
    assert bj.job_key(bj.Job(**{**job.to_dict(), "overrides": {"seed.value": 2}})) != key
    assert bj.job_key(job, {"sets": {"sampler.steps": 2}}) != key
    clip.write_bytes(b"abcd")
    assert bj.job_key(job) != key


# ------------------------------------------------------------------------------------------ the scheduler


class FakeBackend:
    """Runs jobs synchronously; ``script`` maps (job id, attempt) to an outcome or to an exception (worker lost)."""

    def __init__(self, script):
        self.script, self.calls, self.replaced = script, [], []
        self.ready = []

    def submit(self, name, job, attempt):
        self.calls.append((job.id, attempt, name))
        handle = object()
        what = self.script.get((job.id, attempt), "done")
        if isinstance(what, Exception):
            self.ready.append((handle, (None, what)))
        else:
            self.ready.append((handle, ({"job_id": job.id, "outcome": what, "worker": name, "seconds": 1.0,
                                         "attempt": attempt, "error": None if what == "done" else what}, None)))
        return handle

    def wait(self, handles, timeout):
        out, self.ready = self.ready[:1], self.ready[1:]
        return out

    def replace(self, name):
        self.replaced.append(name)
        return {"server_pid": 1}


def run_schedule(tmp_path, script, jobs=("a", "b", "c"), workers=("w0", "w1"), max_attempts=3):
    backend = FakeBackend(script)
    tally = vp_batch.Tally()
    log = vp_batch.JobLog(tmp_path / "log.jsonl", "r")
    progress = vp_batch.Progress(len(jobs), enabled=False)
    vp_batch.schedule(backend, list(workers), [bj.Job(id=j, output=str(tmp_path / j)) for j in jobs], log, tally,
                      progress, max_attempts, {})
    log.close()
    return backend, tally


def test_a_job_whose_server_died_is_retried_on_another_worker(tmp_path):
    backend, tally = run_schedule(tmp_path, {("a", 1): "server_died"})
    first, retry = [c for c in backend.calls if c[0] == "a"]
    assert retry[1] == 2 and retry[2] != first[2]
    assert (tally.done, tally.failed, tally.retried) == (3, 0, 1)


def test_retries_are_bounded_and_node_errors_are_not_retried(tmp_path):
    backend, tally = run_schedule(tmp_path, {("a", 1): "server_died", ("a", 2): "server_died", ("b", 1): "failed"},
                                  max_attempts=2)
    assert [c[1] for c in backend.calls if c[0] == "a"] == [1, 2]
    assert [c[1] for c in backend.calls if c[0] == "b"] == [1]
    assert (tally.done, tally.failed) == (1, 2)
    assert "gave up after 2 attempt(s)" in dict(tally.failures)["a"]


def test_a_lost_worker_is_replaced_and_its_job_retried(tmp_path):
    backend, tally = run_schedule(tmp_path, {("b", 1): RuntimeError("actor died")})
    assert backend.replaced == ["w1"]
    assert (tally.done, tally.failed, tally.retried) == (3, 0, 1)


def test_workers_apply_the_drivers_verify_hashes(tmp_path):
    """Issue #26 item 12: a job whose output was changed at the same size is dispatched under --verify-hashes; the
    worker used to call is_complete without the hash check and report it skipped (exit 0, a marker whose SHA-256
    does not match). The rule is one function (bj.is_done) and the setting travels in WorkerConfig."""
    from videopainter.vp_headless import batch_worker as bw

    job, _ = committed(tmp_path, {"a.png": b"12345"})
    (Path(job.output) / "a.png").write_bytes(b"54321")  # tampered, same size
    args = vp_batch.build_parser().parse_args(["--local", "--verify-hashes", "--models-dir", str(tmp_path)])
    plan = vp_batch.Plan([job], {}, {}, None)
    (config,) = vp_batch.worker_configs(args, 1, None, tmp_path, plan).values()
    assert config.verify_hashes and bw.WorkerConfig(**bw.asdict(config)) == config  # travels to a Ray actor
    assert not bj.is_done(job, plan.batch_key, verify_hashes=True) and bj.is_done(job, plan.batch_key)

    class Started(Exception):
        pass

    def start(self):
        raise Started

    worker = bw.BatchWorker("w0", config)
    worker.start = start.__get__(worker)
    with pytest.raises(Started):  # not skipped: the worker goes on to run it
        worker.run(job)
    lenient = bw.BatchWorker("w1", bw.WorkerConfig(**{**bw.asdict(config), "verify_hashes": False}))
    assert lenient.run(job)["outcome"] == bw.SKIPPED


def test_a_validation_failure_names_node_class_and_input_in_the_summary(monkeypatch):
    """Issue #26 item 13: the summary showed "prompt failed validation (...)" with no node or input (node null)."""
    from videopainter.vp_headless import batch_tasks
    from videopainter.vp_headless import comfy_client as cc

    node_errors = {"16": {"class_type": "VideoPainterSampler", "errors": [
        {"type": "custom_validation_failed", "message": "Custom validation failed for node",
         "details": "cfg - cfg: expected a finite number between 0 and 30; got nan", "extra_info": {"input_name": "cfg"}}]}}

    def refuse(*_a, **_k):
        raise cc.PromptValidationError({"type": "prompt_outputs_failed_validation"}, node_errors)

    monkeypatch.setattr(cc, "submit", refuse)
    with pytest.raises(bj.JobFailed) as e:
        batch_tasks.run_prompt(None, {}, {})
    first = str(e.value).splitlines()[0]
    assert first == ("prompt failed validation at node 16 (VideoPainterSampler), input 'cfg': Custom validation failed "
                     "for node: cfg - cfg: expected a finite number between 0 and 30; got nan")
    assert e.value.node["node_id"] == "16" and e.value.node["node_type"] == "VideoPainterSampler"
    assert e.value.node["input"] == "cfg"
    tally = vp_batch.Tally()
    tally.failures.append(("job1", str(e.value)))
    assert f"failed job1: {first}" in vp_batch.summary_table(tally, 1.0)


def test_the_readme_reproducibility_advice_compares_lossless_frames():
    """Issue #26 item 13: "compare decoded frames" of SaveVideo output does not hold (x264 is lossy and not stable)."""
    readme = (REPO / "README.md").read_text()
    advice = readme.split("CPU results are bit-reproducible only at equal thread counts", 1)[1].split("\n\n", 1)[0]
    assert "compare decoded frames" not in advice
    assert "`GetVideoComponents` -> `SaveImage`" in advice and "--disable-metadata" in advice
    assert "sha256" in advice and bj.sha256_file  # the markers record what the advice says to compare
