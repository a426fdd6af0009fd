"""VideoPainter for ComfyUI: any-length, text-guided video inpainting on CogVideoX-5B-I2V.

Entrypoint only: the nodes live in ``nodes/``, the model and algorithm in ``vp_core/``.
"""
from comfy_api.v0_0_2 import ComfyExtension, io

from .nodes import NODE_LIST
from .vp_core.base import run_warnings

WEB_DIRECTORY = "./web"
run_warnings.install(__name__)  # only under a headless runner that asks for the pack's warnings (VP_WARNINGS_LOG)


class VideoPainterExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODE_LIST)


async def comfy_entrypoint() -> VideoPainterExtension:
    return VideoPainterExtension()
