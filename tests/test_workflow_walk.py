"""Every shipped workflow (UI format workflows/*.json and API format workflows/api/*.json) is wired as the server
would accept it: each link joins an output to an input of a matching type, and every node's outputs reach an output
node (one that saves or previews); a node whose result goes nowhere is dead weight that still runs, or a mistake.

The types are the server's own object_info (what ``/object_info`` serves): the pack's nodes from its node list, the
host's core and extra nodes loaded in-process, each described by the server's node-info code path
(``GET_NODE_INFO_V1`` for schema nodes, ``INPUT_TYPES``/``RETURN_TYPES`` for classic ones), and types compared by
the server's ``validate_node_input``.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
# Editor-only nodes: never sent to the server, so they have no server types and need not reach an output.
UI_ONLY_TYPES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
NOT_EXPORTED_MODES = {2, 4}  # muted, bypassed

NodeInfo = dict[str, Any]  # {"inputs": {name: type}, "outputs": [type, ...], "output_node": bool}


def _type_name(spec: Any) -> str:
    """The type string of one object_info input spec (``("IMAGE", {...})``, a combo's option list, "COMBO")."""
    first = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    return "COMBO" if isinstance(first, (list, tuple)) else str(first)


def describe(node_class: type) -> NodeInfo:
    """One node class as the server describes it in /object_info, reduced to what wiring needs."""
    from comfy_api.internal import _ComfyNodeInternal

    if issubclass(node_class, _ComfyNodeInternal):
        info = node_class.GET_NODE_INFO_V1()
        inputs, outputs, output_node = info["input"], info["output"], info.get("output_node", False)
    else:
        inputs, outputs = node_class.INPUT_TYPES(), node_class.RETURN_TYPES
        output_node = getattr(node_class, "OUTPUT_NODE", False) is True
    named = {name: _type_name(spec) for group in ("required", "optional") for name, spec in (inputs.get(group) or {}).items()}
    return {"inputs": named, "outputs": [str(t) for t in outputs], "output_node": bool(output_node)}


@pytest.fixture(scope="module")
def object_info() -> dict[str, NodeInfo]:
    """{class_type: NodeInfo} for the host's nodes (core + comfy_extras) and this pack's."""
    import nodes

    from videopainter.nodes import NODE_LIST

    # The host's extra nodes (LoadVideo, SaveVideo, primitives...) register as ComfyUI's own start-up does; its audio
    # nodes log import failures without torchaudio, which does not concern the pack's workflows.
    logging.getLogger().disabled, was = True, logging.getLogger().disabled
    try:
        asyncio.run(nodes.init_builtin_extra_nodes())
    finally:
        logging.getLogger().disabled = was
    info = {name: describe(cls) for name, cls in nodes.NODE_CLASS_MAPPINGS.items()}
    info.update({cls.define_schema().node_id: describe(cls) for cls in NODE_LIST})
    return info


def types_match(received: str, expected: str) -> bool:
    """The server's rule (execution validates links with it), with its "*" wildcard."""
    from comfy_execution.validation import validate_node_input

    return "*" in (received, expected) or validate_node_input(received, expected)


# A graph reduced to what the walk needs: {node id: class}, and links (source id, source slot, target id, input name).
Graph = tuple[dict[str, str], list[tuple[str, int, str, str]]]


def api_graph(api: dict) -> Graph:
    nodes = {str(nid): node["class_type"] for nid, node in api.items()}
    links = [(str(value[0]), int(value[1]), str(nid), name)
             for nid, node in api.items() for name, value in node.get("inputs", {}).items()
             if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)]
    return nodes, links


def ui_graph(ui: dict) -> Graph:
    kept = {str(n["id"]): n for n in ui["nodes"]
            if n.get("type") not in UI_ONLY_TYPES and n.get("mode", 0) not in NOT_EXPORTED_MODES}
    links = []
    for _link_id, src, src_slot, dst, dst_slot, *_ in ui["links"]:
        if str(src) in kept and str(dst) in kept:
            name = kept[str(dst)]["inputs"][dst_slot]["name"]
            links.append((str(src), int(src_slot), str(dst), name))
    return {nid: n["type"] for nid, n in kept.items()}, links


def walk(graph: Graph, info: dict[str, NodeInfo]) -> list[str]:
    """Wiring problems of a graph, as readable lines; [] when every link type-checks and every node feeds an output."""
    nodes, links = graph
    problems = [f"node {nid}: class {cls} is not registered on the server" for nid, cls in nodes.items() if cls not in info]
    feeds: dict[str, set[str]] = defaultdict(set)  # target -> its sources
    for src, slot, dst, name in links:
        feeds[dst].add(src)
        if src not in nodes:
            problems.append(f"node {dst} input {name!r}: linked from missing node {src}")
            continue
        if nodes[src] not in info or nodes[dst] not in info:
            continue
        outputs, inputs = info[nodes[src]]["outputs"], info[nodes[dst]]["inputs"]
        if slot >= len(outputs):
            problems.append(f"node {dst} ({nodes[dst]}) input {name!r}: node {src} ({nodes[src]}) has no output {slot}")
        elif name not in inputs:
            problems.append(f"node {dst} ({nodes[dst]}): no input named {name!r} (has {sorted(inputs)})")
        elif not types_match(outputs[slot], inputs[name]):
            problems.append(f"node {dst} ({nodes[dst]}) input {name!r} expects {inputs[name]}, "
                            f"but is linked from node {src} ({nodes[src]}) output {slot} of type {outputs[slot]}")
    reached = {nid for nid, cls in nodes.items() if info.get(cls, {}).get("output_node")}
    if not reached:
        problems.append("no output node (nothing saves or previews a result)")
    todo = list(reached)
    while todo:
        for src in feeds[todo.pop()] - reached:
            reached.add(src)
            todo.append(src)
    problems += [f"node {nid} ({cls}): its outputs reach no output node" for nid, cls in nodes.items() if nid not in reached]
    return problems


# ----------------------------------------------------------------------------------------------- the real files


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.json")), ids=lambda p: p.name)
def test_ui_workflow_is_wired(path: Path, object_info):
    assert walk(ui_graph(json.loads(path.read_text())), object_info) == []


@pytest.mark.parametrize("path", sorted((WORKFLOWS / "api").glob("*.json")), ids=lambda p: f"api/{p.name}")
def test_api_workflow_is_wired(path: Path, object_info):
    assert walk(api_graph(json.loads(path.read_text())), object_info) == []


def test_shipped_workflows_are_found():
    assert len(list(WORKFLOWS.glob("*.json"))) >= 6 and len(list((WORKFLOWS / "api").glob("*.json"))) >= 6


# ----------------------------------------------------------------------------------------------- the walk itself

GOOD = {
    "1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
    "2": {"class_type": "SaveVideo", "inputs": {"video": ["1", 0], "filename_prefix": "x", "format": "auto",
                                                "codec": "auto"}},
}


def test_walk_accepts_a_wired_graph(object_info):
    assert walk(api_graph(GOOD), object_info) == []


def test_walk_flags_a_node_that_feeds_no_output(object_info):
    api = {**GOOD, "3": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}}}
    assert walk(api_graph(api), object_info) == ["node 3 (GetVideoComponents): its outputs reach no output node"]


def test_walk_flags_a_type_mismatch(object_info):
    # the shape of the dangling node once shipped: CreateVideo's IMAGE input fed by a VIDEO output
    api = {**GOOD, "3": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 30.0}},
           "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "y", "format": "auto",
                                                       "codec": "auto"}}}
    problems = walk(api_graph(api), object_info)
    assert len(problems) == 1 and "input 'images' expects IMAGE" in problems[0] and "type VIDEO" in problems[0]


def test_walk_flags_missing_sources_slots_and_classes(object_info):
    api = {"2": {"class_type": "SaveVideo", "inputs": {"video": ["9", 0], "filename_prefix": "x", "format": "auto",
                                                       "codec": "auto"}},
           "3": {"class_type": "NoSuchNode", "inputs": {}},
           "4": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
           "5": {"class_type": "SaveVideo", "inputs": {"video": ["4", 1], "filename_prefix": "x", "format": "auto",
                                                       "codec": "auto"}}}
    problems = walk(api_graph(api), object_info)
    assert any("not registered" in p and "NoSuchNode" in p for p in problems)
    assert any("linked from missing node 9" in p for p in problems)
    assert any("has no output 1" in p for p in problems)


def test_ui_graph_reads_links_by_input_name_and_skips_notes(object_info):
    ui = {"nodes": [
        {"id": 1, "type": "LoadVideo", "inputs": [], "outputs": [{"name": "VIDEO", "type": "VIDEO", "links": [1]}]},
        {"id": 2, "type": "SaveVideo", "inputs": [{"name": "video", "type": "VIDEO", "link": 1}], "outputs": []},
        {"id": 3, "type": "Note", "inputs": [], "outputs": []},
        {"id": 4, "type": "CreateVideo", "mode": 4, "inputs": [], "outputs": []},
    ], "links": [[1, 1, 0, 2, 0, "VIDEO"]]}
    assert ui_graph(ui) == ({"1": "LoadVideo", "2": "SaveVideo"}, [("1", 0, "2", "video")])
    assert walk(ui_graph(ui), object_info) == []
    ui["nodes"][0]["type"] = "PrimitiveInt"  # INT into a VIDEO input
    assert any("expects VIDEO" in p for p in walk(ui_graph(ui), object_info))
