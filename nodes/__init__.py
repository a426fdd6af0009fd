"""Thin ComfyUI node classes, grouped by stage. Each ``execute`` validates, then calls one ``vp_core`` function."""
from __future__ import annotations

from . import decode, encode, id_state, loaders, paths, preview, sampler, text, utils

paths.register()

NODE_LIST = [
    *loaders.NODES,
    *text.NODES,
    *encode.NODES,
    *sampler.NODES,
    *decode.NODES,
    *id_state.NODES,
    *utils.NODES,
    *preview.NODES,
]
