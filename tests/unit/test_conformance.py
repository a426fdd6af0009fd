"""The conformance runner (``python -m vp_core.conformance``) as CI runs it: all seven set-A cases within 1e-4 (the
training-step cases within 1e-4 of each tensor's largest magnitude), and
an exit status that really fails when an expected tensor is off.

The runner is run as a subprocess from the repo root, exactly as documented (its own ComfyUI set-up, CPU, fp32).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from conformance_fixture import FIXTURE, REPO, needs_fixture

CASES = ("forward_branch", "forward_id_resample", "pipeline_window_ddim", "pipeline_window_dpm", "any_length",
         "train_branch_step", "train_id_lora_step")
ATOL = 1e-4

pytestmark = needs_fixture("cases")  # every test here reads the fixtures


def run_runner(fixture: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vp_core.conformance", str(fixture), *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


def parse(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON on stdout (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1])


@pytest.mark.slow
def test_all_cases_pass_within_atol():
    proc = run_runner(FIXTURE, "--json")
    report = parse(proc)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert report["passed"] is True
    assert sorted(report["cases"]) == sorted(CASES)
    for case, tensors in report["cases"].items():
        expected = load_file(str(FIXTURE / "cases" / case / "expected.safetensors"))
        compared = {k for k in expected if not k.startswith("rng_draw_")}
        assert set(tensors) == compared, f"{case}: compared {sorted(tensors)}, expected file has {sorted(compared)}"
        for name, r in tensors.items():
            limit = ATOL * r["max_abs_ref"] if case.startswith("train_") else ATOL
            assert r["max_abs_err"] <= limit, f"{case}/{name}: {r}"
            # the ID-LoRA step applies noised-image dropout: its image latents are all zero by construction
            zero_ok = (case, name) == ("train_id_lora_step", "image_latents")
            assert r["max_abs_ref"] > 0 or zero_ok, f"{case}/{name}: compared against an all-zero reference"


@pytest.fixture
def perturbed_fixture(tmp_path) -> tuple[Path, str]:
    """forward_branch only, with 1e-2 added to one expected tensor (files copied, the fixture is read-only)."""
    root = tmp_path / "conformance"
    for part in ("cogvideox", "branch", "id_lora", "cases/forward_branch"):
        shutil.copytree(FIXTURE / part, root / part, copy_function=shutil.copyfile)
    expected_path = root / "cases" / "forward_branch" / "expected.safetensors"
    expected = load_file(str(expected_path))
    tensor = "noise_pred_mask_add"
    expected[tensor] = expected[tensor] + 1e-2
    expected_path.unlink()
    save_file(expected, str(expected_path))
    return root, tensor


def test_runner_fails_on_a_perturbed_expected_file(perturbed_fixture):
    root, tensor = perturbed_fixture
    proc = run_runner(root, "--case", "forward_branch", "--json")
    report = parse(proc)
    assert proc.returncode == 1, proc.stderr[-4000:]
    assert report["passed"] is False
    case = report["cases"]["forward_branch"]
    assert 1e-2 - ATOL <= case[tensor]["max_abs_err"] <= 1e-2 + ATOL
    # only the perturbed tensor fails: the others still match
    assert all(r["max_abs_err"] <= ATOL for name, r in case.items() if name != tensor)
    # the table output says FAILED too
    table = run_runner(root, "--case", "forward_branch")
    assert table.returncode == 1 and "FAILED" in table.stdout and "FAIL" in table.stdout.split(tensor, 1)[1].splitlines()[0]


def test_runner_refuses_an_unknown_case():
    proc = run_runner(FIXTURE, "--case", "no_such_case", "--json")
    assert proc.returncode == 2
    assert "no such case" in proc.stderr and "no_such_case" in proc.stderr
