"""Helpers shared by the node tests (a plain module: ``conftest`` is not importable by name across test dirs)."""
from __future__ import annotations

SECOND_STYLE_LORA = "videopainter_demo_style_b.safetensors"
CLIP_FRAMES, CLIP_FPS = 40, 16.0  # down-sampled to 8 fps by the Encode node: 20 frames, two 17-frame windows


def node_kwargs(node_cls, **given):
    """The node's schema defaults overridden by ``given``: calls keep working when inputs with defaults are added."""
    kwargs = {i.id: i.default for i in node_cls.define_schema().inputs if getattr(i, "default", None) is not None}
    kwargs.update(given)
    return kwargs


def run(node_cls, **given):
    """``node_cls.execute`` with schema defaults; returns the outputs tuple."""
    return node_cls.execute(**node_kwargs(node_cls, **given)).result


class FileVideo:
    """The part of core's VIDEO the pack reads: a file to stream from (``get_stream_source``)."""

    def __init__(self, path):
        self.path = str(path)

    def get_stream_source(self):
        return self.path
