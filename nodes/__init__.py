"""Thin ComfyUI node classes, grouped by stage. Each ``execute`` validates, then calls one ``vp_core`` function."""
from __future__ import annotations

from . import checks, decode, encode, first_frame, id_state, loaders, metrics, parts, paths, preview, sampler, text, utils, video

paths.register()

NODE_LIST = [
    *loaders.NODES,
    *text.NODES,
    *encode.NODES,
    *sampler.NODES,
    *decode.NODES,
    *id_state.NODES,
    *utils.NODES,
    *first_frame.NODES,
    *metrics.NODES,
    *video.NODES,
    *parts.NODES,
    *preview.NODES,
]

for _node in NODE_LIST:  # every FLOAT widget of every node: finite and in range, before the prompt runs
    checks.guard_floats(_node)
