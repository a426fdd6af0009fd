"""``scripts/ui.sh`` (``scripts/ui_host.py``): the host it opens sees the repository's models (demo weights written
when there are none), the sample clips in its input folder, and demo-size copies of the workflows in the Workflows
sidebar; its start-up log has no import failure (torchaudio is pinned for the host's audio nodes).

The demo copy of the start-here-on-demo-weights workflow is checked the way the UI will run it: the same nodes and
widget values as its API twin with the demo sets applied (``compare_twins``). Running it is what quickstart's headless demo already does with the same API workflow and sets.
"""
from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest
import requests

import ui_host
from videopainter.vp_headless import comfy_client as cc


def _twins_module():
    """tests/test_workflow_twins.py (not on the path of this folder's tests): its compare_twins is the check."""
    spec = importlib.util.spec_from_file_location("vp_test_workflow_twins", Path(__file__).parents[1] / "test_workflow_twins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compare_twins = _twins_module().compare_twins


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    base, models = tmp_path_factory.mktemp("ui_base"), tmp_path_factory.mktemp("ui_models")
    server, info = ui_host.start(base, models, cc.free_port(), cpu=True)
    with server:
        yield server, info, base, models


def test_demo_weights_are_written_and_listed(opened):
    server, info, _base, models = opened
    assert info["real_weights"] is False and (models / "videopainter" / "CogVideoX-5b-I2V" / "transformer").is_dir()
    options = cc.object_info(server)["VideoPainterBackboneLoader"]["input"]["required"]["model_folder"][1]["options"]
    assert "CogVideoX-5b-I2V" in options


def test_sample_clips_are_in_the_input_folder(opened):
    server, info, base, _models = opened
    assert [p.name for p in info["clips"]] == ["vp_sample.mp4", "vp_sample_mask.mp4"]
    options = cc.object_info(server)["LoadVideo"]["input"]["required"]["file"][1]["options"]
    assert {"vp_sample.mp4", "vp_sample_mask.mp4"} <= set(options)


def test_demo_workflows_are_in_the_sidebar_with_the_demo_sets(opened):
    server, info, _base, _models = opened
    listed = requests.get(server.url + "/api/userdata", params={"dir": "workflows"}, timeout=10).json()
    assert "demo_videopainter_inpaint.json" in listed
    assert {p.name for p in info["demo_workflows"]} == {f"demo_{p.name}" for p in (cc.DEMO_SETS_DIR).glob("*.json")}
    ui = requests.get(server.url + "/api/userdata/workflows%2Fdemo_videopainter_inpaint.json", timeout=10).json()
    api_path = ui_host.REPO / "workflows" / "api" / "videopainter_inpaint.json"
    api = cc.apply_overrides(cc.load_workflow(api_path), cc.demo_sets(api_path))
    assert compare_twins(ui, api) == []
    encode = next(n for n in ui["nodes"] if cc.title_key(n.get("title", "")) == "encode")  # titled "Encode"
    assert encode["widgets_values"][:2] == [80, 96]  # width, height of the demo sets, not 720x480


def test_host_log_has_no_import_failure(opened):
    server, info, _base, _models = opened
    log = server.log_path.read_text(errors="replace")
    assert "To see the GUI go to" in log or "Starting server" in log
    assert info["host_noise"] == [] and ui_host.host_noise(log) == []
    assert ui_host.host_noise("IMPORT FAILED: nodes_audio.py\nok\ntorchaudio missing, ACE model will be broken") == [
        "IMPORT FAILED: nodes_audio.py", "torchaudio missing, ACE model will be broken"]


def test_ui_sh_refuses_without_the_host(tmp_path):
    # a fresh clone without quickstart: the script says what to run instead of a Python traceback
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "ui.sh"
    script.write_text((ui_host.REPO / "scripts" / "ui.sh").read_text())
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "bash scripts/quickstart.sh --install-only" in done.stderr
