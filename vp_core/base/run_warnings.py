"""The pack's warnings during a headless run, kept apart from the host's log so the runner can print them at the end.

ComfyUI's log shows messages only (no level, no logger name), so a runner cannot tell the pack's warnings from the
host's lines there. When the runner starts the host with ``VP_WARNINGS_LOG=<file>`` in its environment, the pack's
entrypoint calls ``install`` and the pack's loggers also append their warnings to that file, one line each
(``LEVEL videopainter.module: message``); ``read`` gives them back. Without the variable nothing changes.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

ENV = "VP_WARNINGS_LOG"
FORMAT = "%(levelname)s %(vp_logger)s: %(message)s"
PACK_NAME = "videopainter"  # what the lines call the pack; under ComfyUI its module name is its folder's path


class _PackName(logging.Filter):
    """Names a record's logger from the pack down (``videopainter.vp_core.pipeline.preprocess``), not by the
    ``/tmp/.../custom_nodes/videopainter`` module path ComfyUI loads the pack under."""

    def __init__(self, root: str):
        super().__init__()
        self.root = root

    def filter(self, record: logging.LogRecord) -> bool:
        record.vp_logger = PACK_NAME + record.name[len(self.root):] if record.name.startswith(self.root) else record.name
        return True


def install(logger_name: str, environ: Mapping[str, str] = os.environ) -> logging.Handler | None:
    """Send ``logger_name``'s warnings (and its children's) to ``$VP_WARNINGS_LOG`` too; once per file."""
    path = environ.get(ENV)
    if not path:
        return None
    logger = logging.getLogger(logger_name)
    target = os.path.abspath(path)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == target:
            return handler
    # A live log is appended line by line while the host runs; atomic.py replaces whole files, which a log cannot use.
    handler = logging.FileHandler(target, mode="a", encoding="utf-8", delay=True)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_PackName(logger_name))
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    return handler


def read(path: str | os.PathLike) -> list[str]:
    """The warning lines written to ``path`` (``[]`` when there were none)."""
    p = Path(path)
    return [line for line in p.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()] if p.exists() else []
