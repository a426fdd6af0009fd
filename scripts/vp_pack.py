"""Makes this repository importable as the package ``videopainter`` for the commands in ``scripts/``, the tests and
the benchmarks, without running the pack's root ``__init__`` (that one only builds ComfyUI's extension).

ComfyUI imports the pack as a package of its own (the folder under ``custom_nodes/``), so the pack's modules import
each other relatively. Outside ComfyUI the same relative imports resolve under the name registered here:
``from videopainter.vp_core.pipeline import windows``, ``from videopainter.vp_headless import comfy_client``. The
repository itself is never put on ``sys.path``: its ``nodes/`` would shadow ComfyUI's ``nodes`` module.

A command in ``scripts/`` (its own folder is ``sys.path[0]``) writes ``import vp_pack`` first; the tests and the
benchmarks get ``scripts/`` from their configuration (pytest's ``pythonpath``, ``bench/run.sh``). Standard library
only.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "videopainter"


def register() -> types.ModuleType:
    """The package ``videopainter`` over this repository (registered once per process)."""
    package = sys.modules.get(PACKAGE)
    if package is None:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(REPO)]
        package.__file__ = str(REPO / "__init__.py")
        sys.modules[PACKAGE] = package
    return package


register()
