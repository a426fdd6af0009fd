"""The example inpainting workflow on the in-memory IMAGE/MASK path, as it was before the streaming path: the
reliability matrix feeds IMAGE batches cut with Image From Batch, and the streaming e2e test compares with it.

Same ids and titles as the old workflow: 10/12 ``video_components``/``mask_components`` (Get Video Components),
13 ``mask_to_mask`` (red channel), 17 ``decode`` / 18 ``composite`` (IMAGE nodes), 19 ``create_video``, 20 ``save``.
"""
from __future__ import annotations

import copy


def image_path(prompt: dict) -> dict:
    p = copy.deepcopy(prompt)
    p["10"] = {"class_type": "GetVideoComponents", "_meta": {"title": "video_components"}, "inputs": {"video": ["9", 0]}}
    p["12"] = {"class_type": "GetVideoComponents", "_meta": {"title": "mask_components"}, "inputs": {"video": ["11", 0]}}
    p["13"] = {"class_type": "ImageToMask", "_meta": {"title": "mask_to_mask"},
               "inputs": {"image": ["12", 0], "channel": p["14"]["inputs"].get("mask_channel", "red")}}
    enc = p["14"]["inputs"]
    enc.update(video=["10", 0], mask=["13", 0], source_fps=["10", 2])
    dec, comp = p["17"]["inputs"], p["18"]["inputs"]
    p["17"] = {"class_type": "VideoPainterDecode", "_meta": {"title": "decode"},
               "inputs": {"vae": dec["vae"], "latent": dec["latent"], "tiling": dec["tiling"]}}
    p["18"] = {"class_type": "VideoPainterComposite", "_meta": {"title": "composite"},
               "inputs": {"original": ["14", 1], "generated": ["17", 0], "mask": ["14", 2], "dilate": comp["dilate"],
                          "feather": comp["feather"]}}
    p["19"] = {"class_type": "CreateVideo", "_meta": {"title": "create_video"}, "inputs": {"images": ["18", 0], "fps": ["14", 3]}}
    p["20"]["inputs"]["video"] = ["19", 0]
    return p
