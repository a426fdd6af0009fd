"""vp_headless/comfy_client.py without a server: overrides, workflow loading, error texts, history parsing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from videopainter.vp_headless import comfy_client as cc  # noqa: E402

PROMPT = {
    "1": {"class_type": "LoadVideo", "inputs": {"file": "a.mp4"}, "_meta": {"title": "clip"}},
    "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a car", "clip": ["4", 0]}, "_meta": {"title": "prompt"}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 50}, "_meta": {"title": "v1.5 sampler"}},
    "5": {"class_type": "KSampler", "inputs": {"seed": 2, "steps": 50}, "_meta": {"title": "dup"}},
    "6": {"class_type": "KSampler", "inputs": {"seed": 3, "steps": 50}, "_meta": {"title": "dup"}},
}


def test_overrides_by_title_and_id_without_mutating_the_input():
    before = json.dumps(PROMPT, sort_keys=True)
    out = cc.apply_overrides(PROMPT, {"prompt.text": "a red car", "3.steps": 20, "v1.5 sampler.seed": 7})
    assert out["2"]["inputs"] == {"text": "a red car", "clip": ["4", 0]}
    assert out["3"]["inputs"] == {"seed": 7, "steps": 20}  # a title with dots: the last dot splits
    assert json.dumps(PROMPT, sort_keys=True) == before


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("nope.seed", "no node with id or title 'nope'; available: 1 ('clip'), 2 ('prompt'), 3 ('v1.5 sampler')"),
        ("dup.seed", "title 'dup' is ambiguous (nodes 5, 6); use a node id"),
        ("prompt.txt", "node 2 (CLIPTextEncode) has no input 'txt'; inputs: text, clip"),
        ("prompt.clip", "node 2 (CLIPTextEncode) input 'clip' is connected to node 4, not a widget value"),
        ("seed", "override 'seed' must look like NODE.INPUT"),
    ],
)
def test_override_errors_say_what_is_available(key, message):
    with pytest.raises(cc.OverrideError) as e:
        cc.apply_overrides(PROMPT, {key: 1})
    assert message in str(e.value)


def test_set_values_parse_as_json_when_they_can():
    assert cc.parse_set_value("49") == 49
    assert cc.parse_set_value("1.5") == 1.5
    assert cc.parse_set_value("true") is True
    assert cc.parse_set_value('"49"') == "49"
    assert cc.parse_set_value("a red car") == "a red car"
    assert cc.parse_set_value("") == ""


def test_ui_workflow_refused_naming_its_api_twin(tmp_path):
    (tmp_path / "api").mkdir()
    ui = {"nodes": [], "links": [], "version": 0.4}
    (tmp_path / "inpaint.json").write_text(json.dumps(ui))
    (tmp_path / "api" / "inpaint.json").write_text(json.dumps(PROMPT))
    (tmp_path / "other.json").write_text(json.dumps(ui))
    with pytest.raises(ValueError, match=r"only API-format workflows are supported; its API twin is .*api/inpaint"):
        cc.load_workflow(tmp_path / "inpaint.json")
    with pytest.raises(ValueError, match="Export \\(API\\)"):
        cc.load_workflow(tmp_path / "other.json")
    assert cc.load_workflow(tmp_path / "api" / "inpaint.json") == PROMPT
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not an API-format workflow"):
        cc.load_workflow(tmp_path / "junk.json")


def test_validation_error_text():
    error = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
             "details": "", "extra_info": {}}
    node_errors = {"3": {"class_type": "KSampler", "dependent_outputs": ["9"], "errors": [
        {"type": "value_bigger_than_max", "message": "Value 20000 bigger than max of 10000", "details": "steps",
         "extra_info": {"input_name": "steps"}},
        {"type": "required_input_missing", "message": "Required input is missing", "details": "model",
         "extra_info": {"input_name": "model"}},
    ]}}
    assert str(cc.PromptValidationError(error, node_errors)) == (
        "prompt failed validation:\n"
        "  node 3 (KSampler), input 'steps': Value 20000 bigger than max of 10000: steps\n"
        "  node 3 (KSampler), input 'model': Required input is missing: model"
    )
    top_only = {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": ""}
    assert str(cc.PromptValidationError(top_only, {})) == "prompt failed validation:\n  Prompt has no outputs"


def test_result_from_history_messages():
    history = {"outputs": {}, "status": {"status_str": "error", "completed": False, "messages": [
        ["execution_start", {"prompt_id": "p"}],
        ["execution_error", {"prompt_id": "p", "node_id": "3", "node_type": "KSampler",
                             "exception_type": "ValueError", "exception_message": "steps must be > 0\n",
                             "traceback": ["a", "b"]}],
    ]}}
    result = cc._result("p", history, [], 1.0)
    assert result.status == "error" and not result.ok
    assert str(result.error) == "node 3 (KSampler): steps must be > 0"
    with pytest.raises(cc.PromptExecutionError, match="node 3 \\(KSampler\\): steps must be > 0"):
        result.raise_for_status()

    interrupted = {"outputs": {}, "status": {"status_str": "error", "messages": [
        ["execution_interrupted", {"prompt_id": "p", "node_id": "4", "node_type": "X"}]]}}
    result = cc._result("p", interrupted, [], 1.0)
    assert (result.status, result.interrupted_node, result.error) == ("interrupted", "4", None)

    ok = {"outputs": {"9": {"text": ["hi"]}}, "status": {"status_str": "success", "messages": []}}
    assert cc._result("p", ok, [], 1.0).ok


def test_text_outputs_are_saved_under_the_node_title(tmp_path):
    history = {"prompt": [0, "p", {"9": {"class_type": "PreviewAny", "_meta": {"title": "plan / preview"}},
                                   "10": {"class_type": "PreviewAny", "inputs": {}}}, {}, ["9"]],
               "outputs": {"9": {"text": ["line 1\nline 2"]}, "10": {"text": ["x"]}}}
    files = cc.collect_outputs(cc.ServerHandle(url="http://unused"), history, tmp_path)
    assert files == [tmp_path / "plan_preview_9.txt", tmp_path / "PreviewAny_10.txt"]
    assert files[0].read_text() == "line 1\nline 2\n"


def test_output_paths_cannot_escape_the_destination(tmp_path):
    history = {"outputs": {"1": {"images": [{"filename": "x.png", "subfolder": "../../etc", "type": "output"}]}}}
    with pytest.raises(cc.ComfyClientError, match="refusing output path"):
        cc.collect_outputs(cc.ServerHandle(url="http://unused", base_dir=tmp_path), history, tmp_path / "out")


def test_model_paths_yaml_points_every_folder_at_the_models_dir(tmp_path):
    import yaml

    path = cc.write_model_paths(tmp_path, tmp_path / "my models")
    data = yaml.safe_load(path.read_text())
    (entry,) = data.values()
    assert entry.pop("base_path") == str((tmp_path / "my models").resolve())
    assert entry == {name: name for name in ("videopainter", "diffusion_models", "vae", "loras", "text_encoders")}


def test_demo_sets_fit_their_workflows():
    """Every scripts/demo_sets/<name>.json names a workflows/api/<name>.json and only inputs that exist in it."""
    files = sorted(cc.DEMO_SETS_DIR.glob("*.json"))
    if not files:
        pytest.skip("no demo override files")
    for path in files:
        workflow = REPO / "workflows" / "api" / path.name
        assert workflow.exists(), f"{path.name} has no workflows/api/{path.name}"
        sets = cc.demo_sets(workflow)
        assert sets == json.loads(path.read_text()) and sets
        cc.apply_overrides(cc.load_workflow(workflow), sets)  # raises OverrideError on a stale title or input
    assert cc.demo_sets(REPO / "workflows" / "api" / "no_such_workflow.json") == {}


def test_sets_file_must_be_an_object_of_node_inputs(tmp_path):
    (tmp_path / "ok.json").write_text('{"prompt.value": "x", "3.steps": 4}')
    assert cc.load_sets_file(tmp_path / "ok.json") == {"prompt.value": "x", "3.steps": 4}
    for bad in ('[1]', '{"steps": 4}'):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(ValueError, match="NODE.INPUT"):
            cc.load_sets_file(tmp_path / "bad.json")


def test_replace_first_frame_swaps_the_titled_node_for_a_load_image():
    prompt = {
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["5", 0]},
              "_meta": {"title": "first_frame"}},
        "8": {"class_type": "VideoPainterEncode", "inputs": {"first_frame": ["7", 0]}, "_meta": {"title": "encode"}},
    }
    out = cc.replace_first_frame(prompt, "frame0.png")
    assert out["7"] == {"class_type": "LoadImage", "_meta": {"title": "first_frame"}, "inputs": {"image": "frame0.png"}}
    assert out["8"] == prompt["8"] and prompt["7"]["class_type"] == "VAEDecode"  # the input is not mutated
    with pytest.raises(cc.OverrideError, match="no node with id or title 'first_frame'"):
        cc.replace_first_frame({"8": prompt["8"]}, "frame0.png")


READABLE = {
    "10": {"class_type": "VideoPainterApplyBranch", "inputs": {"strength": 1.0}, "_meta": {"title": "Apply branch"}},
    "11": {"class_type": "VideoPainterApplyIDLora", "inputs": {"strength": 1.0}, "_meta": {"title": "ID LoRA"}},
    "12": {"class_type": "KSampler", "inputs": {"steps": 50}, "_meta": {"title": "Sampler"}},
    "13": {"class_type": "KSampler", "inputs": {"steps": 50}, "_meta": {"title": "sampler part1"}},
}


@pytest.mark.parametrize(("ref", "nid"), [
    ("apply_branch", "10"), ("Apply branch", "10"), ("APPLY_BRANCH", "10"), ("applybranch", "10"),
    ("id_lora", "11"), ("ID LoRA", "11"), ("id lora", "11"), ("sampler", "12"), ("sampler_part1", "13"),
    ("Sampler  Part1", "13"), ("12", "12"),
])
def test_titles_match_ignoring_case_spaces_and_underscores(ref, nid):
    """The handles of the API files (``--set id_lora.strength=...``) find the readable titles of a workflow
    exported from the UI ("ID LoRA"), and the readable titles find the handles."""
    assert cc.find_node(READABLE, ref) == nid
    out = cc.apply_overrides(READABLE, {f"{ref}.{next(iter(READABLE[nid]['inputs']))}": 3})
    assert next(iter(out[nid]["inputs"].values())) == 3
    assert cc.title_key(ref) == cc.title_key(READABLE[nid]["_meta"]["title"]) or ref == nid


def test_titles_equal_but_for_case_or_spaces_are_ambiguous_unless_one_is_exact():
    prompt = {"1": {"class_type": "A", "inputs": {"x": 1}, "_meta": {"title": "ID LoRA"}},
              "2": {"class_type": "B", "inputs": {"x": 1}, "_meta": {"title": "id_lora"}},
              "3": {"class_type": "C", "inputs": {"x": 1}, "_meta": {"title": "Id Lora"}}}
    assert cc.find_node(prompt, "id_lora") == "2"  # spelled exactly: that one
    assert cc.find_node(prompt, "ID LoRA") == "1"
    with pytest.raises(cc.OverrideError, match=r"title 'id lora' is ambiguous \(nodes 1, 2, 3\); use a node id"):
        cc.find_node(prompt, "id lora")
    with pytest.raises(cc.OverrideError, match="no node with id or title 'idl'; .*ignoring case, spaces and underscores"):
        cc.find_node(prompt, "idl")


def test_replace_first_frame_keeps_a_readable_title():
    prompt = {"7": {"class_type": "VAEDecode", "inputs": {}, "_meta": {"title": "First frame"}}}
    assert cc.replace_first_frame(prompt, "f.png")["7"]["_meta"] == {"title": "First frame"}
