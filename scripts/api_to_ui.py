"""Write the UI (litegraph) twin of an API-format workflow, using the real host's /object_info for widget order.

    .venv/bin/python scripts/api_to_ui.py workflows/api/NAME.json [--models-dir DIR]   -> workflows/NAME.json

The API file is the source of truth; the UI file is generated so the two never disagree (tests check they agree).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_client as cc  # noqa: E402

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


def convert(api: dict, object_info: dict, title: str) -> dict:
    nodes, links = [], []
    ids = sorted(api, key=int)
    out_links: dict[tuple[str, int], list[int]] = {}
    depth: dict[str, int] = {}

    def level(nid: str) -> int:
        if nid not in depth:
            ups = [v[0] for v in api[nid]["inputs"].values() if _is_link(v)]
            depth[nid] = 1 + max((level(u) for u in ups), default=-1)
        return depth[nid]

    rows: dict[int, int] = {}
    for order, nid in enumerate(ids):
        node = api[nid]
        info = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, kind, opts in _inputs(info):
            value = node["inputs"].get(name, opts.get("default"))
            is_widget = kind in WIDGET_TYPES
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
        col = level(nid)
        row = rows.get(col, 0)
        rows[col] = row + 1
        nodes.append({
            "id": int(nid), "type": node["class_type"], "pos": [40 + 360 * col, 40 + 220 * row], "size": [320, 180],
            "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": [],
            "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets,
            "title": node.get("_meta", {}).get("title", node["class_type"]),
        })
        nodes[-1]["_outputs_info"] = info
    for n in nodes:
        info = n.pop("_outputs_info")
        n["outputs"] = [
            {"name": name, "type": typ, "links": out_links.get((str(n["id"]), i), []), "slot_index": i}
            for i, (name, typ) in enumerate(zip(info["output_name"], info["output"]))
        ]
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"videopainter/workflows/{title}")), "revision": 0, "last_node_id": max(int(i) for i in ids), "last_link_id": len(links),
        "nodes": nodes, "links": links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
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
