"""End-to-end fixtures: one real ComfyUI server (the pinned host, CPU) for the whole session, with this pack loaded.

The server gets a session temp dir as its base directory and another as its model folders (``extra_model_paths``:
videopainter, diffusion_models, vae, loras, text_encoders), so nothing outside the test's temp dirs is touched.
Tiny random demo weights are written there first when ``scripts/make_demo_models.py`` exists, and the sample clip
(``vp_sample.mp4`` + ``vp_sample_mask.mp4``) is put in the input folder, so every ``workflows/api/*.json`` can run.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

from videopainter.vp_headless import comfy_client as cc  # noqa: E402
import make_sample_clip  # noqa: E402

log = logging.getLogger(__name__)


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("models")
    maker = REPO / "scripts" / "make_demo_models.py"
    if maker.exists():
        subprocess.run([sys.executable, str(maker), str(models)], check=True, cwd=REPO)
    return models


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory) -> dict[str, Path]:
    video, mask = make_sample_clip.make_sample_clip(tmp_path_factory.mktemp("clip"))
    return {video.name: video, mask.name: mask}


@pytest.fixture(scope="session")
def server(tmp_path_factory, models_dir, sample_clip):
    base = tmp_path_factory.mktemp("comfy_base")
    t0 = time.monotonic()
    handle = cc.start_server(base, models_dir=models_dir)
    log.info("ComfyUI started in %.1f s (%s)", time.monotonic() - t0, handle.url)
    for name, path in sample_clip.items():
        cc.upload_input(handle, name, path)
    yield handle
    rc = handle.stop()
    assert rc == 0, f"ComfyUI exited with {rc} on SIGINT; log tail:\n{handle.log_tail()}"
