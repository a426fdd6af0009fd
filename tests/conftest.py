"""Shared test setup: ComfyUI importable on the CPU, and this pack importable as the package ``videopainter``.

ComfyUI is taken from ``$VP_COMFYUI_DIR``, else the pinned copy ``.comfyui/ComfyUI`` that ``scripts/quickstart.sh``
unpacks, else the ComfyUI this pack is installed in (``ComfyUI/custom_nodes/<pack>``). ``args.cpu`` has to be set
before ``comfy.model_management`` is first imported (its device probe runs at import), as ComfyUI's own
``tests-unit`` do; set ``VP_TEST_GPU=1`` to let ComfyUI pick the accelerator instead.

The pack is registered under the name ``videopainter`` without running its root ``__init__`` (that one only builds
the extension) by ``scripts/vp_pack.py`` (``scripts/`` is on pytest's ``pythonpath``, pyproject.toml), so tests write
``from videopainter.vp_core.checkpoints import text``, ``from videopainter.nodes import text`` and
``from videopainter.vp_headless import comfy_client`` and the pack's relative imports resolve as inside ComfyUI.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import vp_pack  # noqa: F401  (registers the package 'videopainter')

from videopainter.vp_core.base.hostenv import ensure_comfy  # the one place that finds ComfyUI

REPO = Path(__file__).resolve().parent.parent

ensure_comfy(cpu=os.environ.get("VP_TEST_GPU") != "1")

from ci_skips import pytest_runtest_makereport  # noqa: E402, F401  (under CI=true a skip is a failure)

class _RootAsDirectory:
    """Collect the repository root as a plain directory, not as a Python package.

    The root holds the pack's ``__init__.py``, so pytest would import it while setting up the root "package"; under a
    checkout folder whose name is no identifier (``wt-hosts``, ``videopainter-nodes``) its relative imports fail and
    every test errors. A registered plugin rather than a hook of this conftest: conftest hooks only see paths below
    their folder, and the root is collected from its parent.
    """

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        if Path(path).resolve() == REPO:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_configure(config):
    config.pluginmanager.register(_RootAsDirectory(), "videopainter-root-as-directory")
