"""Under CI=true a skipped test fails (unless its reason is allowed), checked on a throw-away test file run by a
pytest subprocess with only the ``ci_skips`` plugin."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci_skips import ALLOWED_IN_CI

TESTS = Path(__file__).resolve().parent
SAMPLE = f'''
import pytest

def test_runs():
    pass

def test_skips():
    pytest.skip("needs Node.js")

@pytest.mark.skipif(True, reason="fixture missing")
def test_marked():
    pass

def test_allowed():
    pytest.skip("{ALLOWED_IN_CI[0][0]} (none here)")
'''


def run_sample(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "ci_skips", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_skips_fail_under_ci_except_the_allowed_ones(tmp_path):
    done = run_sample(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    # a skip in the test body fails; a skip mark (set-up phase) is reported as an error: both fail the run
    assert "1 failed, 1 passed, 1 skipped, 1 error" in done.stdout, done.stdout
    assert "skipped under CI=true (needs Node.js): in CI a skip of a core test is a failure" in done.stdout
    assert "skipped under CI=true (fixture missing)" in done.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_skips_stay_skips_outside_ci(tmp_path, ci):
    done = run_sample(tmp_path, ci)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 3 skipped" in done.stdout, done.stdout


def test_no_absolute_machine_paths_in_the_tree():
    """Defaults such as the fixture folder are repo-relative (``../shared/conformance``) or come from an env var."""
    repo = TESTS.parent
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=repo, capture_output=True, text=True,
                           check=True).stdout.split()
    roots = ["/" + name + "/" for name in ("work", "root", "home")]  # spelled so this file does not match itself
    found = []
    for name in files:
        path = repo / name
        if path.suffix in (".png", ".jpg", ".mp4", ".safetensors") or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        found += [f"{name}: {root}" for root in roots if root in text]
    assert found == []
