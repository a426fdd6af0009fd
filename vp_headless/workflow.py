"""API-format workflows as plain JSON: load (refusing the UI format), find nodes by id or title, apply ``--set``
overrides and sets files, swap the first frame. No server is involved; ``comfy_client`` re-exports these names so
the runners write ``cc.load_workflow``."""
from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import OverrideError

REPO_ROOT = Path(__file__).resolve().parents[1]


def is_ui_workflow(data: Any) -> bool:
    """True for a litegraph (UI, "Save") workflow: a dict with ``nodes`` and ``links`` lists."""
    return isinstance(data, dict) and "nodes" in data and "links" in data


def load_workflow(path: str | os.PathLike) -> dict[str, Any]:
    """Read an API-format workflow (``{node_id: {"class_type", "inputs", "_meta"}}``).

    Raises:
        ValueError: the file is a UI-format workflow (names the ``workflows/api/`` twin when one exists) or not a
            workflow at all.
    """
    path = Path(path)
    data = json.loads(path.read_text())
    if is_ui_workflow(data):
        twin = path.parent / "api" / path.name
        hint = f"; its API twin is {twin}" if twin.exists() else (
            "; export it with ComfyUI's 'Export (API)' menu entry")
        raise ValueError(f"{path} is a UI-format workflow; only API-format workflows are supported{hint}")
    if not isinstance(data, dict) or not data or not all(
        isinstance(v, dict) and "class_type" in v for v in data.values()
    ):
        raise ValueError(f"{path} is not an API-format workflow (expected {{node_id: {{'class_type', 'inputs'}}}})")
    return data


def title_key(title: str) -> str:
    """How node titles are compared: case, spaces and underscores ignored, so the handle ``id_lora`` of an API
    file and the readable title ``ID LoRA`` a workflow exported from the UI carries are the same node."""
    return re.sub(r"[\s_]+", "", title).casefold()


def find_node(prompt: Mapping[str, Any], ref: str) -> str:
    """The id of the node whose id is ``ref``, or whose ``_meta.title`` matches ``ref`` ignoring case, spaces and
    underscores (``title_key``: ``apply_branch`` finds a node titled ``Apply branch``). When several titles match,
    the one spelled exactly as ``ref`` wins; otherwise it is ambiguous.

    Raises:
        OverrideError: no node or several nodes match; the message lists the available ids and titles.
    """
    if ref in prompt:
        return ref
    titles = {nid: node.get("_meta", {}).get("title") for nid, node in prompt.items()}
    matches = [nid for nid, title in titles.items() if title is not None and title_key(title) == title_key(ref)]
    if len(matches) > 1:
        exact = [nid for nid in matches if titles[nid] == ref]
        matches = exact if len(exact) == 1 else matches
    if len(matches) == 1:
        return matches[0]
    available = ", ".join(
        f"{nid} ({node.get('_meta', {}).get('title', node['class_type'])!r})" for nid, node in prompt.items()
    )
    if not matches:
        raise OverrideError(f"no node with id or title {ref!r}; available: {available} "
                            "(titles match ignoring case, spaces and underscores)")
    raise OverrideError(f"title {ref!r} is ambiguous (nodes {', '.join(matches)}); use a node id. Nodes: {available}")


def apply_overrides(prompt: Mapping[str, Any], sets: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``prompt`` with widget values replaced; keys are ``NODE.INPUT`` (NODE: node id or title).

    The last dot separates the input name, so titles may contain dots. Only inputs already present in the
    workflow can be set, and only widget values (not links), so a typo fails here rather than on the server.
    """
    out = copy.deepcopy(dict(prompt))
    for key, value in sets.items():
        ref, dot, input_name = key.rpartition(".")
        if not dot or not ref or not input_name:
            raise OverrideError(f"override {key!r} must look like NODE.INPUT (NODE is a node id or title)")
        nid = find_node(out, ref)
        inputs = out[nid].setdefault("inputs", {})
        if input_name not in inputs:
            raise OverrideError(
                f"node {nid} ({out[nid]['class_type']}) has no input {input_name!r}; "
                f"inputs: {', '.join(inputs) or '(none)'}"
            )
        if _is_link(inputs[input_name]):
            raise OverrideError(
                f"node {nid} ({out[nid]['class_type']}) input {input_name!r} is connected to node "
                f"{inputs[input_name][0]}, not a widget value"
            )
        inputs[input_name] = value
    return out


DEMO_SETS_DIR = REPO_ROOT / "scripts" / "demo_sets"


def load_sets_file(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON object of overrides, ``{"NODE.INPUT": value, ...}`` (what ``--sets-file`` reads)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not all(isinstance(k, str) and "." in k for k in data):
        raise ValueError(f"{path} must be a JSON object of \"NODE.INPUT\": value pairs")
    return data


def demo_sets(workflow: str | os.PathLike) -> dict[str, Any]:
    """The overrides that fit a workflow to the tiny random demo weights (``scripts/demo_sets/<name>.json``):
    the one place quickstart and the e2e tests take them from; ``{}`` when the workflow needs none."""
    path = DEMO_SETS_DIR / f"{Path(workflow).stem}.json"
    return load_sets_file(path) if path.exists() else {}


def parse_set_value(text: str) -> Any:
    """``--set`` values: JSON when they parse as JSON (49, 1.5, true, "x", [1,2]), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def replace_first_frame(prompt: Mapping[str, Any], image_name: str, title: str = "first_frame") -> dict[str, Any]:
    """A copy of ``prompt`` whose node titled ``first_frame`` (e.g. FLUX Fill's VAE Decode) is a ``LoadImage`` of
    ``image_name`` (a file in the input folder) under the same id and title: the video model then starts from a
    first frame made elsewhere, and the image-inpainting nodes that fed it are no longer reachable from any output,
    so ComfyUI neither validates nor runs them.

    Raises:
        OverrideError: the workflow has no (or several) nodes titled ``title``.
    """
    out = copy.deepcopy(dict(prompt))
    nid = find_node(out, title)
    kept = out[nid].get("_meta", {}).get("title", title)  # e.g. "First frame" in a workflow exported from the UI
    out[nid] = {"class_type": "LoadImage", "_meta": {"title": kept}, "inputs": {"image": image_name}}
    return out


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)
