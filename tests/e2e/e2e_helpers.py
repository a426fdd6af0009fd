"""Small helpers shared by the e2e test modules."""
from __future__ import annotations

import io

import numpy as np
import requests
from PIL import Image

from videopainter.vp_headless import comfy_client as cc


def preview_pixels(server: cc.ServerHandle, result: cc.RunResult, node_id: str = "20") -> list[np.ndarray]:
    """The RGB pixels of every image an output node (a Preview Image) showed in ``result``."""
    out = []
    for entry in result.outputs[node_id]["images"]:
        r = requests.get(server.url + "/view", params=entry, timeout=30)
        r.raise_for_status()
        out.append(np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")))
    return out
