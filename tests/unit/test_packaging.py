"""pyproject.toml is the one source of truth for dependencies; requirements.txt (ComfyUI-Manager) must agree."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def normalise(requirement: str) -> str:
    """PEP 503 name + the rest without spaces: ``Pillow >= 10`` -> ``pillow>=10``."""
    req = requirement.split("#", 1)[0].strip().replace(" ", "")
    match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$", req)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() + match.group(2)


def read_requirements_txt(text: str) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [normalise(line) for line in lines if line]


def requirements_mismatch(pyproject_deps: list[str], requirements: list[str]) -> tuple[list[str], list[str]]:
    """(only in pyproject, only in requirements.txt), each sorted."""
    a, b = {normalise(r) for r in pyproject_deps}, set(requirements)
    return sorted(a - b), sorted(b - a)


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_requirements_txt_matches_pyproject(pyproject):
    deps = pyproject["project"]["dependencies"]
    reqs = read_requirements_txt((REPO / "requirements.txt").read_text())
    assert len(reqs) == len(set(reqs)), f"duplicates in requirements.txt: {reqs}"
    assert requirements_mismatch(deps, reqs) == ([], [])


def test_mismatch_is_detected():
    assert requirements_mismatch(["numpy", "diffusers>=0.32"], ["numpy", "diffusers>=0.30"]) == (
        ["diffusers>=0.32"], ["diffusers>=0.30"])
    assert requirements_mismatch(["Pillow >= 10", "sentence_piece"], ["pillow>=10", "sentence-piece"]) == ([], [])
    assert read_requirements_txt("# comment\n\nnumpy  # inline\nPyYAML\n") == ["numpy", "pyyaml"]


def test_dependencies_are_lower_bounds_not_pins(pyproject):
    pinned = [d for d in pyproject["project"]["dependencies"] if "==" in d or "<" in d]
    assert pinned == [], "a node pack must not pin what the user's ComfyUI already has"


def test_registry_metadata(pyproject):
    project, comfy = pyproject["project"], pyproject["tool"]["comfy"]
    assert project["name"] == "videopainter-nodes"
    assert "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["description"]
    assert project["requires-python"] == ">=3.10"
    assert project["urls"]["Repository"] == "https://github.com/videopainter-comfy/videopainter-nodes"
    assert comfy["PublisherId"] == "videopainter"
    assert comfy["DisplayName"] == "VideoPainter"
    assert "Icon" in comfy
    assert comfy["requires-comfyui"].startswith(">=")  # which version: tests/unit/test_host_support.py
    license_file = REPO / project["license"]["file"]
    assert "Apache License" in license_file.read_text() and "Version 2.0" in license_file.read_text()


def test_core_runtime_dependencies_listed(pyproject):
    names = {re.split(r"[<>=!~\[ ]", normalise(d))[0] for d in pyproject["project"]["dependencies"]}
    assert {"diffusers", "safetensors", "einops", "kornia", "peft", "transformers", "sentencepiece", "pillow",
            "numpy"} <= names


def test_pytest_markers_declared(pyproject):
    markers = " ".join(pyproject["tool"]["pytest"]["ini_options"]["markers"])
    assert "e2e:" in markers and "slow:" in markers
