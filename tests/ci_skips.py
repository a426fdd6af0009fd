"""Under ``CI=true`` a skipped test is a failure, unless its reason is on the short allow-list below: CI installs
everything the tests need (``scripts/quickstart.sh --install-only``: Node.js, Chromium, the pinned host; ``../shared``
beside the clone), so a skip there means a core check silently did not run.

A pytest plugin (used by ``tests/conftest.py``; ``-p ci_skips`` elsewhere). Skips outside CI stay skips.
"""
from __future__ import annotations

import os

import pytest

# (reason prefix, why the skip is legitimate in CI). Keep it short; every entry is a check CI cannot run.
ALLOWED_IN_CI: tuple[tuple[str, str], ...] = (
    ("needs a CUDA GPU", "GPU-only checks: CI machines have no accelerator (bench/ measures GPUs separately)"),
    ("this ComfyUI host lacks native CogVideoX", "core-interop checks: the 0.3.75 host has no core CogVideoX; .ci/run "
     "runs them on the 0.27.0 host"),
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    if any(reason.startswith(prefix) for prefix, _ in ALLOWED_IN_CI):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=true ({reason}): in CI a skip of a core test is a failure. Install what it needs "
        "(bash scripts/quickstart.sh --install-only), or, if it truly cannot run in CI, add its reason to "
        "ALLOWED_IN_CI in tests/ci_skips.py with why."
    )
