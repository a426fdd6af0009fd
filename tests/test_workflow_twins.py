"""Every UI-format workflow (workflows/*.json) has an API-format twin (workflows/api/<same name>.json) with the same
nodes (ids and classes) and the same widget values, so the headless runs test what users load in the browser."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
# Nodes that exist only in the editor and are never exported to the API format.
UI_ONLY_TYPES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
# litegraph node modes: 0 always, 1 on event, 2 never (muted), 4 bypassed; muted/bypassed nodes are not exported.
NOT_EXPORTED_MODES = {2, 4}
# Values of the frontend-only "control_after_generate" widget that follows seeds; never sent to the server.
CONTROL_AFTER_GENERATE = {"fixed", "increment", "decrement", "randomize"}


def _key(value: Any) -> str:
    """Hashable, type-aware identity for a literal (so 1 and "1" differ, 1 and 1.0 do not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return json.dumps(value, sort_keys=True)
    return repr(float(value))


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _is_control_value(value: Any) -> bool:
    return isinstance(value, str) and value in CONTROL_AFTER_GENERATE


def ui_nodes(ui: dict) -> dict[str, tuple[str, Counter, int]]:
    """{node id: (type, widget values, number of widgets turned into linked inputs)} for exported UI nodes."""
    out = {}
    for node in ui["nodes"]:
        if node.get("type") in UI_ONLY_TYPES or node.get("mode", 0) in NOT_EXPORTED_MODES:
            continue
        values = node.get("widgets_values") or []
        if isinstance(values, dict):  # some packs store widgets by name
            values = list(values.values())
        linked_widgets = sum(1 for i in node.get("inputs") or [] if i.get("widget") and i.get("link") is not None)
        out[str(node["id"])] = (node["type"], Counter(_key(v) for v in values), linked_widgets)
    return out


def api_nodes(api: dict) -> dict[str, tuple[str, Counter]]:
    """{node id: (class_type, literal input values)}; linked inputs (``[node_id, slot]``) are not widget values."""
    return {
        nid: (node["class_type"], Counter(_key(v) for v in node.get("inputs", {}).values() if not _is_link(v)))
        for nid, node in api.items()
    }


def compare_twins(ui: dict, api: dict) -> list[str]:
    """Differences between a UI workflow and its API twin, as readable lines; [] when they agree."""
    problems = []
    u, a = ui_nodes(ui), api_nodes(api)
    u_classes, a_classes = Counter(t for t, _, _ in u.values()), Counter(c for c, _ in a.values())
    if u_classes != a_classes:
        problems.append(f"node classes differ: UI-only {dict(u_classes - a_classes)}, "
                        f"API-only {dict(a_classes - u_classes)}")
    for nid in sorted(set(u) ^ set(a)):
        problems.append(f"node id {nid} is only in the {'UI' if nid in u else 'API'} workflow")
    for nid in sorted(set(u) & set(a), key=str):
        (u_type, u_vals, linked), (a_type, a_vals) = u[nid], a[nid]
        if u_type != a_type:
            problems.append(f"node {nid}: class {u_type} in UI, {a_type} in API")
            continue
        missing = a_vals - u_vals  # every API literal must be a widget value in the UI
        if missing:
            problems.append(f"node {nid} ({a_type}): API values {sorted(missing)} not among UI widgets_values")
        extra = u_vals - a_vals
        # UI-only extras: control_after_generate values, and values of widgets converted to linked inputs.
        unexplained = sum(n for v, n in extra.items() if not _is_control_value(json.loads(v)))
        if unexplained > linked:
            problems.append(f"node {nid} ({a_type}): UI widgets_values {sorted(extra)} missing from API inputs")
    return problems


def _twin_pairs() -> list[tuple[Path, Path]]:
    return [(ui, WORKFLOWS / "api" / ui.name) for ui in sorted(WORKFLOWS.glob("*.json"))]


# ----------------------------------------------------------------------------------------------- the real files


@pytest.mark.parametrize("ui_path", [p for p, _ in _twin_pairs()] or [None], ids=lambda p: p.name if p else "none")
def test_ui_workflow_has_matching_api_twin(ui_path: Path | None):
    if ui_path is None:
        pytest.skip("no UI-format workflows in workflows/ yet")
    api_path = WORKFLOWS / "api" / ui_path.name
    assert api_path.exists(), f"{ui_path.name} has no API twin at workflows/api/{ui_path.name}"
    ui, api = json.loads(ui_path.read_text()), json.loads(api_path.read_text())
    assert "nodes" in ui and "links" in ui, f"{ui_path} is not a UI-format workflow"
    assert compare_twins(ui, api) == []


def test_api_workflows_are_api_format():
    paths = sorted((WORKFLOWS / "api").glob("*.json"))
    if not paths:
        pytest.skip("no workflows/api/*.json yet")
    for path in paths:
        data = json.loads(path.read_text())
        assert "nodes" not in data, f"{path} looks like a UI-format workflow"
        assert all("class_type" in n and "inputs" in n for n in data.values()), path


# ----------------------------------------------------------------------------------------------- the comparison

API = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 20, "cfg": 6.0, "sampler_name": "euler",
                                               "model": ["4", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
}


def _ui(seed_widgets: list, ckpt: str = "x.safetensors", extra_nodes: list | None = None) -> dict:
    return {
        "nodes": [
            {"id": 3, "type": "KSampler", "mode": 0, "widgets_values": seed_widgets,
             "inputs": [{"name": "model", "type": "MODEL", "link": 1}]},
            {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": [ckpt]},
            {"id": 9, "type": "Note", "mode": 0, "widgets_values": ["read me"]},
            *(extra_nodes or []),
        ],
        "links": [[1, 4, 0, 3, 0, "MODEL"]],
    }


def test_compare_agreeing_twins():
    # "randomize" is the frontend's control_after_generate widget after the seed; the Note is editor-only.
    assert compare_twins(_ui([42, "randomize", 20, 6.0, "euler"]), API) == []
    assert compare_twins(_ui([42, "fixed", 20, 6, "euler"]), API) == []  # 6 == 6.0


def test_compare_detects_a_changed_widget_value():
    problems = compare_twins(_ui([42, "randomize", 25, 6.0, "euler"]), API)
    assert any("node 3 (KSampler)" in p and "20" in p for p in problems), problems


def test_compare_detects_a_changed_string_and_an_extra_node():
    extra = [{"id": 7, "type": "SaveImage", "mode": 0, "widgets_values": ["out"]}]
    problems = compare_twins(_ui([42, "fixed", 20, 6.0, "euler"], ckpt="y.safetensors", extra_nodes=extra), API)
    assert any("node 4 (CheckpointLoaderSimple)" in p for p in problems), problems
    assert any("SaveImage" in p for p in problems), problems
    assert any("node id 7 is only in the UI" in p for p in problems), problems


def test_compare_ignores_muted_and_bypassed_nodes():
    extra = [{"id": 7, "type": "SaveImage", "mode": 4, "widgets_values": ["out"]}]
    assert compare_twins(_ui([42, "randomize", 20, 6.0, "euler"], extra_nodes=extra), API) == []


def test_compare_allows_widgets_converted_to_linked_inputs():
    ui = _ui([42, "randomize", 20, 6.0, "euler"])
    ui["nodes"][0]["inputs"].append({"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 2})
    api = json.loads(json.dumps(API))
    api["3"]["inputs"]["seed"] = ["4", 1]
    assert compare_twins(ui, api) == []
    ui["nodes"][0]["inputs"][-1]["link"] = None  # not linked after all: then the API lost a value
    assert compare_twins(ui, api) != []
