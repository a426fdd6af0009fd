"""Readable node titles in the UI twins (issue #28): ``scripts/api_to_ui.py`` writes "ID LoRA" for the API file's
handle ``id_lora``; the API files keep the handles, and ``find_node`` matches either spelling."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import api_to_ui
from videopainter.vp_headless import comfy_client as cc

REPO = Path(__file__).resolve().parents[2]
PAIRS = [(p, REPO / "workflows" / "api" / p.name) for p in sorted((REPO / "workflows").glob("*.json"))]


@pytest.mark.parametrize(("handle", "title"), [
    ("id_lora", "ID LoRA"), ("apply_branch", "Apply branch"), ("sampler", "Sampler"), ("backbone", "Backbone"),
    ("negative_prompt", "Negative prompt"), ("flux_vae", "FLUX VAE"), ("style_lora", "Style LoRA"),
    ("sampler_part2", "Sampler part 2"), ("save_id_state", "Save ID state"),
])
def test_readable_title(handle, title):
    assert api_to_ui.readable_title(handle) == title
    assert cc.title_key(title) == cc.title_key(handle)


@pytest.mark.parametrize(("ui_path", "api_path"), PAIRS, ids=lambda p: p.name)
def test_ui_twins_carry_the_readable_titles_of_the_api_handles(ui_path, api_path):
    ui, api = json.loads(ui_path.read_text()), json.loads(api_path.read_text())
    for node in ui["nodes"]:
        if str(node["id"]) not in api:
            continue  # the generated Note
        handle = api[str(node["id"])]["_meta"]["title"]
        assert handle == handle.lower() and " " not in handle, f"{api_path.name}: API title {handle!r} is not a handle"
        assert node["title"] == api_to_ui.readable_title(handle), (
            f"{ui_path.name} node {node['id']}: {node['title']!r}; rerun scripts/api_to_ui.py")
        assert cc.find_node(api, node["title"]) == str(node["id"])  # the readable title finds the API node
