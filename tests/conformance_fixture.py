"""Where the conformance fixtures are (``../shared/conformance`` beside the repo, or ``$VP_CONFORMANCE_DIR``) and the
one guard for tests that read them. Put the guard on each test (or module) that READS the fixtures, never on tests
that do not: under ``CI=true`` a skip is a failure anyway (``tests/ci_skips.py``), so a missing fixture is seen."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(os.environ.get("VP_CONFORMANCE_DIR") or REPO.parent / "shared" / "conformance")


def needs_fixture(*parts: str) -> pytest.MarkDecorator:
    """Skip unless ``FIXTURE / parts`` exists (e.g. ``needs_fixture("cases", "any_length")``)."""
    path = FIXTURE.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"conformance fixture not found at {path} (../shared/conformance)")


def released_fixture():
    """A ``runner.Fixture`` on the conformance weights whose models are unloaded and unpatched afterwards; tests use
    it as ``fx = pytest.fixture(scope="module")(released_fixture)``."""
    import comfy.model_management as mm
    from videopainter.vp_core.conformance import runner

    fixture = runner.Fixture(FIXTURE)
    yield fixture
    mm.unload_all_models()
    for patcher in fixture._cache.values():
        if hasattr(patcher, "detach"):
            patcher.detach()
