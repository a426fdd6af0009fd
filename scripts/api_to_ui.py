"""Write the UI (litegraph) twin of an API-format workflow, using the real host's /object_info for widget order.

    .venv/bin/python scripts/api_to_ui.py workflows/api/NAME.json [--models-dir DIR]   -> workflows/NAME.json

The API file is the source of truth; the UI file is generated so the two never disagree (tests check they agree).
The UI file also gets what a shared workflow needs and the API format cannot hold: a group per stage (models,
inputs, first frame, sampling, output; from each node's class and title), a left-to-right layout, and a Note
saying which model files to download and where they go.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import uuid
from pathlib import Path

import requests

import vp_pack  # noqa: F401  (registers this repository as the package 'videopainter')
from videopainter.vp_headless import comfy_client as cc

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _is_link(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)


def _inputs(info: dict) -> list[tuple[str, str, dict]]:
    order = info.get("input_order") or {}
    out = []
    for group in ("required", "optional"):
        spec = info["input"].get(group, {})
        for name in order.get(group, list(spec)):
            typ, opts = spec[name][0], (spec[name][1] if len(spec[name]) > 1 else {})
            kind = "COMBO" if isinstance(typ, list) else typ
            out.append((name, kind, opts))
    return out


# ---------------------------------------------------------------------------------------------------- layout
# Stages, left to right; each becomes a group. A node's stage comes from its title and class (so nodes other
# workflows add land somewhere sensible), else from the latest stage among the nodes that feed it.
STAGES = ("models", "inputs", "first frame", "sampling", "output")
STAGE_COLORS = {"models": "#3f5159", "inputs": "#3f593f", "first frame": "#59513f", "sampling": "#3f3f59",
                "output": "#593f51"}
STAGE_TITLES = {"models": "1. Models", "inputs": "2. Video, mask and prompt", "first frame": "3. First frame",
                "sampling": "4. Sampling", "output": "5. Output"}
NODE_W, COL_GAP, ROW_GAP, GROUP_PAD, GROUP_HEAD = 320, 60, 50, 20, 80  # a node title sits 30 px above its pos
NOTE_ID = 79  # UI-only Note (workflow node ids 70-79 belong to this generator)
NOTE_W, NOTE_H = 420, 300
# The view a workflow opens at (graph units before the 0.75 zoom): the first group clears the front end's side bar
# and its tab and menu bars, so the Note is the first thing seen.
OPEN_OFFSET = (110, 170)

# What each loader needs on disk (README "Models"); {input} is replaced by that input's value in the workflow.
DOWNLOADS = {
    "VideoPainterBackboneLoader": "CogVideoX-5b-I2V diffusers folder (~20 GB) -> models/videopainter/{model_folder}/\n"
                                  "  hf download THUDM/CogVideoX-5b-I2V --local-dir models/videopainter/CogVideoX-5b-I2V\n"
                                  "  (a copy under models/CogVideo or models/diffusers is found too)",
    "VideoPainterTextEncoderLoader": "T5 text encoder: the text_encoder/ and tokenizer/ of that folder ({folder})",
    "VideoPainterBranchLoader": "VideoPainter branch -> models/videopainter/{branch_folder}/",
    "VideoPainterApplyIDLora": "VideoPainter ID LoRA -> models/{lora_name}\n"
                               "  hf download TencentARC/VideoPainter --include 'VideoPainter/*' --include 'VideoPainterID/*' "
                               "--local-dir models/videopainter",
    "VideoPainterStyleLora": "a CogVideoX-5b-I2V LoRA -> models/{lora_name}",
    "UNETLoader": "{unet_name} -> models/diffusion_models/ (FLUX.1 Fill [dev]: black-forest-labs/FLUX.1-Fill-dev)",
    "DualCLIPLoader": "{clip_name1} and {clip_name2} -> models/text_encoders/",
    "CLIPLoader": "{clip_name} -> models/text_encoders/",
    "VAELoader": "{vae_name} -> models/vae/",
}


# Words a readable title spells their own way (the rest: first word capitalised, "_" as spaces).
TITLE_WORDS = {"id": "ID", "lora": "LoRA", "flux": "FLUX", "vae": "VAE"}


def readable_title(handle: str) -> str:
    """The title a node shows in the UI for its API handle: ``id_lora`` -> ``ID LoRA``, ``apply_branch`` ->
    ``Apply branch``, ``sampler_part1`` -> ``Sampler part 1``. The API files keep the handles (``vp_run.py --set``);
    ``find_node`` compares titles with ``title_key`` (case, spaces and underscores ignored), so both spellings find
    the node, in the API file and in a workflow exported from the UI."""
    words = re.sub(r"([a-z])(\d+)$", r"\1 \2", handle.replace("_", " ")).split()
    words = [TITLE_WORDS.get(w.lower(), w) for w in words]
    if words and words[0] == words[0].lower():
        words[0] = words[0][:1].upper() + words[0][1:]
    out = " ".join(words)
    if cc.title_key(out) != cc.title_key(handle):
        raise ValueError(f"readable title {out!r} does not match its handle {handle!r} (title_key)")
    return out


# Nodes that show an image or video on the canvas: room for it, so the front end need not grow them over others.
MEDIA_NODES = ("PreviewImage", "SaveImage", "LoadImage", "LoadVideo", "SaveVideo")


def stage_of(class_type: str, title: str) -> str | None:
    t, c = title.lower(), class_type.lower()
    if t.startswith("flux") or "first_frame" in t or "firstframe" in c:
        return "first frame"
    if "loader" in c or "lora" in c or "applybranch" in c:
        return "models"
    if "sampler" in c or t == "seed" or "idstate" in c or "joinlatents" in c or "windowplan" in c:
        return "sampling"
    if any(k in c for k in ("decode", "composite", "createvideo", "save")):
        return "output"
    if any(k in c for k in ("loadvideo", "loadimage", "getvideocomponents", "mask", "imagefrombatch", "encode")) \
            or c.startswith("primitivestring"):
        return "inputs"
    return None


def needs_models(api: dict) -> bool:
    return any(node["class_type"] in DOWNLOADS for node in api.values())


def note_text(api: dict, object_info: dict) -> str:
    lines = []
    for nid in sorted(api, key=int):
        node = api[nid]
        template = DOWNLOADS.get(node["class_type"])
        if template:
            line = template.format_map({k: v for k, v in node["inputs"].items() if isinstance(v, (str, int, float))})
            if line not in lines:
                lines.append(line)
    if not lines:  # what the workflow's own nodes say they do (their descriptions), then how to use it
        about = [f"{object_info[api[n]['class_type']].get('display_name') or api[n]['class_type']}: "
                 f"{object_info[api[n]['class_type']].get('description', '').strip()}" for n in sorted(api, key=int)]
        return ("This workflow needs no model files.\n\n" + "\n\n".join(about) +
                "\n\nSet the inputs on the node and queue; the result shows on the node.")
    return ("Models this workflow needs (paths under ComfyUI/models/):\n\n- " + "\n- ".join(lines) +
            "\n\nThen load your video and mask in group 2, check the magenta mask preview, write the prompt, "
            "and queue.")


def node_height(n_sockets: int, widgets: list, multiline: bool, preview: bool) -> int:
    return 40 + 22 * n_sockets + 26 * len(widgets) + (70 if multiline else 0) + (300 if preview else 0)


def layout(api: dict, nodes: list[dict]) -> list[dict]:
    """Positions nodes stage by stage (left to right), each stage in columns by its internal dependency depth, each
    column ordered by where its inputs come from (fewer crossing wires); returns the groups."""
    by_id = {str(n["id"]): n for n in nodes}
    ups = {nid: [v[0] for v in api[nid]["inputs"].values() if _is_link(v)] for nid in api}
    stage: dict[str, str] = {}

    def resolve(nid: str) -> str:
        if nid not in stage:
            own = stage_of(api[nid]["class_type"], api[nid].get("_meta", {}).get("title", ""))
            upstream = [resolve(u) for u in ups[nid]]
            stage[nid] = own or (max(upstream, key=STAGES.index) if upstream else "inputs")
        return stage[nid]

    for nid in api:
        resolve(nid)
    depth: dict[str, int] = {}

    def level(nid: str) -> int:
        if nid not in depth:
            same = [u for u in ups[nid] if stage[u] == stage[nid]]
            depth[nid] = 1 + max((level(u) for u in same), default=-1)
        return depth[nid]

    groups, x, row_of = [], 40, {}
    for st in STAGES:
        members = sorted((nid for nid in api if stage[nid] == st), key=int)
        if not members and not (st == "models"):
            continue
        columns: dict[int, list[str]] = {}
        for nid in members:
            columns.setdefault(level(nid), []).append(nid)
        top = 40 + GROUP_HEAD
        y_max, col_x = top, x + GROUP_PAD
        if st == "models":
            note = by_id[str(NOTE_ID)]
            note["pos"] = [col_x, top]
            if not members:  # nothing to load: the Note stands alone, no "1. Models" group around it
                x = col_x + NOTE_W + COL_GAP
                continue
            y_max = top + NOTE_H
            col_x += NOTE_W + COL_GAP
        for col in sorted(columns):
            # barycentre of the rows of the nodes feeding each one: keeps wires roughly horizontal
            ordered = sorted(columns[col], key=lambda n: (
                sum(row_of.get(u, 0.0) for u in ups[n]) / len(ups[n]) if ups[n] else 0.0, int(n)))
            y = top
            for nid in ordered:
                node = by_id[nid]
                node["pos"] = [col_x, y]
                row_of[nid] = y
                y += node["size"][1] + ROW_GAP
            y_max = max(y_max, y)
            col_x += NODE_W + COL_GAP
        width = col_x - COL_GAP + GROUP_PAD - x
        groups.append({"id": len(groups) + 1, "title": STAGE_TITLES[st], "bounding": [x, 40, width, y_max - 40],
                       "color": STAGE_COLORS[st], "font_size": 24, "flags": {}})
        x += width + COL_GAP
    return groups


def convert(api: dict, object_info: dict, title: str) -> dict:
    nodes, links = [], []
    ids = sorted(api, key=int)
    out_links: dict[tuple[str, int], list[int]] = {}
    for order, nid in enumerate(ids):
        node = api[nid]
        info = object_info[node["class_type"]]
        inputs, widgets = [], []
        multiline = False
        for name, kind, opts in _inputs(info):
            value = node["inputs"].get(name, opts.get("default"))
            is_widget = kind in WIDGET_TYPES
            multiline = multiline or (is_widget and bool(opts.get("multiline")))
            if _is_link(value):
                link_id = len(links) + 1
                src, slot = value
                links.append([link_id, int(src), slot, int(nid), len(inputs), object_info[api[src]["class_type"]]["output"][slot]])
                out_links.setdefault((src, slot), []).append(link_id)
                entry = {"name": name, "type": kind if kind != "COMBO" else "COMBO", "link": link_id}
                if is_widget:
                    entry["widget"] = {"name": name}
                    widgets.append(opts.get("default", "" if kind == "STRING" else 0))
                    if opts.get("control_after_generate"):  # the front end keeps this slot for linked seeds too
                        widgets.append("fixed")
                inputs.append(entry)
            elif is_widget:
                widgets.append(value)
                if opts.get("control_after_generate"):
                    widgets.append("fixed")
            elif name in node["inputs"]:
                raise ValueError(f"node {nid}: non-widget input {name} must be a link")
        sockets = max(sum(1 for i in inputs if "widget" not in i), len(info["output"]))
        height = node_height(sockets, widgets, multiline, node["class_type"] in MEDIA_NODES)
        nodes.append({
            "id": int(nid), "type": node["class_type"], "pos": [0, 0], "size": [NODE_W, height],
            "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": [],
            "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets,
            "title": readable_title(node["_meta"]["title"]) if node.get("_meta", {}).get("title") else node["class_type"],
        })
        nodes[-1]["_outputs_info"] = info
    for n in nodes:
        info = n.pop("_outputs_info")
        n["outputs"] = [
            {"name": name, "type": typ, "links": out_links.get((str(n["id"]), i), []), "slot_index": i}
            for i, (name, typ) in enumerate(zip(info["output_name"], info["output"]))
        ]
    if str(NOTE_ID) in api:
        raise ValueError(f"node id {NOTE_ID} is the generated Note's; renumber that node in the API workflow")
    nodes.insert(0, {
        "id": NOTE_ID, "type": "Note", "pos": [0, 0], "size": [NOTE_W, NOTE_H], "flags": {}, "order": len(ids),
        "mode": 0, "inputs": [], "outputs": [], "properties": {"text": ""}, "widgets_values": [note_text(api, object_info)],
        "title": "Read me: models" if needs_models(api) else "Read me", "color": "#432", "bgcolor": "#653",
    })
    groups = layout(api, nodes)
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"videopainter/workflows/{title}")), "revision": 0,
        "last_node_id": max(NOTE_ID, *(int(i) for i in ids)), "last_link_id": len(links),
        "nodes": nodes, "links": links, "groups": groups, "config": {}, "extra": {"ds": {"scale": 0.75, "offset": list(OPEN_OFFSET)}},
        "version": 0.4,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("api_workflows", nargs="+", type=Path)
    ap.add_argument("--models-dir", type=Path, default=cc.REPO_ROOT / "models")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, cc.start_server(tmp, models_dir=args.models_dir) as server:
        object_info = requests.get(server.url + "/object_info", timeout=60).json()
        for path in args.api_workflows:
            ui = convert(json.loads(path.read_text()), object_info, path.stem)
            target = path.parent.parent / path.name
            cc.atomic.write_text(target, json.dumps(ui, indent=2) + "\n")
            print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
