"""Messages that name the real cause of the two commonest first-run failures: a workflow at the released size run on
the demo weights (text embeddings of the wrong size), and a headless run that forgot ``--input``."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from videopainter.vp_core.checkpoints.tiny_checkpoints import TRANSFORMER
from videopainter.vp_core.model.config import CogVideoXConfig
from videopainter.vp_core.pipeline.sampling import check_text_embedding
from videopainter.vp_headless import comfy_client as cc
from videopainter.vp_headless import run

REPO = Path(__file__).resolve().parents[2]
TINY = CogVideoXConfig(**TRANSFORMER)
RELEASED = CogVideoXConfig()


def message(shape, cfg) -> str:
    with pytest.raises(ValueError) as info:
        check_text_embedding("positive", shape, cfg)
    return str(info.value)


def test_right_size_passes():
    check_text_embedding("positive", (1, 16, 32), TINY)
    check_text_embedding("negative", (2, 226, 4096), RELEASED)


def test_released_size_prompt_on_demo_weights_points_at_the_demo_sets():
    # what the README's batch example did on the demo weights: a 226-token prompt, the tiny 16 x 32 backbone
    text = message((1, 226, 32), TINY)
    assert text.startswith("positive: the loaded backbone")
    assert "max_text_seq_length=16, text_embed_dim=32" in text and "tiny demo weights" in text
    assert "expects text embeddings of 16 tokens x 32; got shape (1, 226, 32)" in text
    assert "max_text_tokens on 'VideoPainter Text Encode' to 16" in text
    assert "--set text_encode.max_text_tokens=16" in text and "--sets-file scripts/demo_sets/" in text
    assert "does not belong to this backbone" not in text  # the width is right: the encoder is not to blame


def test_wrong_width_blames_the_text_encoder_not_the_token_count():
    text = message((1, 226, 32), RELEASED)
    assert "(CogVideoX-5b-I2V size) expects text embeddings of 226 tokens x 4096" in text
    assert "width 32 is not the backbone's" in text and "'VideoPainter Text Encoder Loader'" in text
    assert "max_text_tokens" not in text


def test_demo_sets_files_fix_the_token_count_they_are_suggested_for():
    # the remedy the message gives must be true: every demo sets file sets max_text_tokens to the demo backbone's
    files = sorted((REPO / "scripts" / "demo_sets").glob("*.json"))
    assert files
    for path in files:
        sets = json.loads(path.read_text())
        tokens = [v for k, v in sets.items() if k.endswith(".max_text_tokens")]
        assert tokens and set(tokens) == {TINY.max_text_seq_length}, path.name


# --------------------------------------------------------------------------------------------- missing input file

PROMPT = {"9": {"class_type": "LoadVideo", "inputs": {"file": "vp_sample.mp4"}},
          "11": {"class_type": "LoadVideo", "inputs": {"file": "vp_sample_mask.mp4"}},
          "14": {"class_type": "VideoPainterEncode", "inputs": {"width": 720}}}
# the server's answer when the input folder lacks the clip (execution.py: a node's validate_inputs message)
NODE_ERRORS = {"9": {"class_type": "LoadVideo", "errors": [{
    "type": "custom_validation_failed", "message": "Custom validation failed for node",
    "details": "file - Invalid video file: vp_sample.mp4", "extra_info": {"input_name": "file"}}]}}


def test_missing_input_hint_names_the_flag_and_the_file():
    hints = run.missing_input_hints(PROMPT, NODE_ERRORS, given=set())
    assert hints == ["node 9 (LoadVideo) input 'file': 'vp_sample.mp4' is not in the server's input folder; give the "
                     "file with --input vp_sample.mp4=PATH (e.g. --input vp_sample.mp4=my_clip.mp4)"]


def test_no_hint_for_inputs_that_are_not_files_or_were_given():
    assert run.missing_input_hints(PROMPT, NODE_ERRORS, given={"vp_sample.mp4"}) == []
    not_a_file = {"14": {"class_type": "VideoPainterEncode", "errors": [{
        "type": "value_bigger_than_max", "message": "Value bigger than max", "details": "width: 720 > 640",
        "extra_info": {"input_name": "width"}}]}}
    assert run.missing_input_hints(PROMPT, not_a_file, given=set()) == []


def test_vp_run_prints_the_hint_when_the_server_refuses_the_clip(tmp_path, monkeypatch, capsys):
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(PROMPT))
    server = SimpleNamespace(url="http://127.0.0.1:1", process=None, start_seconds=0.0, alive=lambda: True)
    monkeypatch.setattr(cc, "connect", lambda url: server)

    def refuse(*_a, **_k):
        raise cc.PromptValidationError({"type": "prompt_outputs_failed_validation"}, NODE_ERRORS)

    monkeypatch.setattr(cc, "submit", refuse)
    code = run.main([str(workflow), "--server", server.url, "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == run.EXIT_USAGE
    assert "Invalid video file: vp_sample.mp4" in err
    assert "hint: node 9 (LoadVideo) input 'file': 'vp_sample.mp4' is not in the server's input folder; give the " \
           "file with --input vp_sample.mp4=PATH" in err


# --------------------------------------------------------------------------- the run's log and the pack's warnings


def test_run_warnings_collects_the_pack_loggers_warnings_only(tmp_path):
    from videopainter.vp_core.base import run_warnings

    assert run_warnings.install("vp_test_pack_off", environ={}) is None
    path = tmp_path / "warnings.log"
    root = "/tmp/vp_run_x/custom_nodes/videopainter"  # the module name ComfyUI gives the pack: its folder's path
    handler = run_warnings.install(root, environ={run_warnings.ENV: str(path)})
    try:
        assert run_warnings.install(root, environ={run_warnings.ENV: str(path)}) is handler  # once
        logging.getLogger(f"{root}.nodes.encode").warning("no first frame: window 0 gets a zero image latent")
        logging.getLogger(f"{root}.nodes.encode").info("not a warning")
        logging.getLogger("someone_else").warning("the host's line")
        handler.flush()
        assert run_warnings.read(path) == [
            "WARNING videopainter.nodes.encode: no first frame: window 0 gets a zero image latent"]
    finally:
        logging.getLogger(root).removeHandler(handler)
        handler.close()


def test_vp_run_keeps_the_server_log_and_prints_the_pack_warnings_last(tmp_path, monkeypatch, capsys):
    from videopainter.vp_core.base import run_warnings

    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(PROMPT))
    seen = {}

    def start_server(base, models_dir=None, env=None, **_k):  # what the host leaves in its base folder
        seen["base"] = Path(base)
        (Path(base) / "comfyui.log").write_text("Starting server\nTo see the GUI go to: http://127.0.0.1:1\n")
        Path(env[run_warnings.ENV]).write_text("WARNING videopainter.nodes.encode: no first frame given\n")
        return SimpleNamespace(url="http://127.0.0.1:1", process=None, start_seconds=0.1, alive=lambda: True)

    def refuse(*_a, **_k):
        raise cc.PromptValidationError({"type": "prompt_outputs_failed_validation"}, NODE_ERRORS)

    monkeypatch.setattr(cc, "start_server", start_server)
    monkeypatch.setattr(cc, "submit", refuse)
    out = tmp_path / "out"
    assert run.main([str(workflow), "--output-dir", str(out)]) == run.EXIT_USAGE
    err = capsys.readouterr().err
    assert (out / "comfyui.log").read_text().startswith("Starting server")
    assert not seen["base"].exists()  # the throw-away base folder is gone, the log is not
    assert f"server log: {out / 'comfyui.log'}" in err
    assert err.rstrip().endswith("the pack's warnings during this run (1):\n"
                                 "  WARNING videopainter.nodes.encode: no first frame given")
