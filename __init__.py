"""VideoPainter for ComfyUI: any-length, text-guided video inpainting on CogVideoX-5B-I2V.

Entrypoint only: the nodes live in ``nodes/``, the model and algorithm in ``vp_core/``.
"""
from comfy_api.v0_0_2 import ComfyExtension, io

from .nodes import NODE_LIST

WEB_DIRECTORY = "./web"


class VideoPainterExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODE_LIST)


async def comfy_entrypoint() -> VideoPainterExtension:
    return VideoPainterExtension()
