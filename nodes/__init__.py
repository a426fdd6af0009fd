"""Thin ComfyUI node classes, grouped by stage. Each ``execute`` validates, then calls one ``vp_core`` function."""
from __future__ import annotations

from . import utils

NODE_LIST = [
    *utils.NODES,
]
