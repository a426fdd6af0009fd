"""ID-state files are validated before use (every failure an IDStateFileError naming the file and the remedy, never a
raw SafetensorError or KeyError), and every file the pack writes is written atomically. No fixtures needed."""
from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from videopainter.vp_core.base import atomic
from videopainter.vp_core.pipeline.id_state import IDState
from videopainter.vp_core.pipeline.id_state_io import REMEDY, IDStateFileError, load_state, save_state


def state(resume: bool = False) -> IDState:
    s = IDState(hidden=[torch.randn(2, 6, 32) for _ in range(4)], token_index=torch.arange(6),
                token_mask=torch.zeros(2, 150, dtype=torch.bool), prev_latents=torch.randn(1, 5, 16, 12, 10),
                window_index=1, rng_state=torch.Generator().get_state(), made_with={"model": {}, "model_fingerprint": "x"})
    if resume:
        s.resume_window, s.merged, s.counts = 2, torch.randn(1, 9, 16, 12, 10), torch.ones(9)
    return s


def rewrite(path, tensors=None, meta=None, **changes):
    """The file at ``path`` with its tensors/metadata changed (``None`` values delete)."""
    t = load_file(str(path)) if tensors is None else tensors
    with safe_open(str(path), "pt") as f:
        m = dict(f.metadata()) if meta is None else meta
    for key, value in changes.items():
        target = m if key.startswith("meta_") else t
        key = key.removeprefix("meta_")
        if value is None:
            target.pop(key)
        else:
            target[key] = value
    out = path.with_name("changed.safetensors")
    save_file(t, str(out), metadata=m)
    return out


@pytest.fixture
def saved(tmp_path):
    return save_state(state(resume=True), tmp_path / "state.safetensors")


def refused(path) -> str:
    with pytest.raises(IDStateFileError) as e:
        load_state(path)
    text = str(e.value)
    assert text.startswith(f"{path}: ") and text.endswith(REMEDY), text
    return text[len(f"{path}: "):-len(REMEDY)]


def test_a_valid_file_round_trips(saved):
    s = load_state(saved)
    assert s.resume_window == 2 and s.window_index == 1 and len(s.hidden) == 4 and s.made_with["model_fingerprint"] == "x"


@pytest.mark.parametrize("content, problem", [
    (pickle.dumps({"a": 1}), "not a readable safetensors file (Error while deserializing header: header too large); "),
    (b"", "not a readable safetensors file (Error while deserializing header: header too small); "),
])
def test_files_that_are_not_safetensors(tmp_path, content, problem):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    assert refused(path) == problem


def test_a_truncated_file(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    assert refused(saved).startswith("not a readable safetensors file (Error while deserializing header: incomplete")


def test_missing_file(tmp_path):
    assert refused(tmp_path / "nope.safetensors") == "file not found; "


def test_a_foreign_safetensors_file(tmp_path):
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    assert refused(tmp_path / "other.safetensors") == (
        "not a VideoPainter ID state (format None, expected 'videopainter-id-state/1'); ")


@pytest.mark.parametrize("change, problem", [
    (dict(meta_layers=None), "metadata 'layers' is missing (expected a whole number); "),
    (dict(meta_window_index="one"), "metadata 'window_index' is 'one' (expected a whole number >= 0); "),
    (dict(meta_resume_window="-1"), "metadata 'resume_window' is -1 (expected a whole number >= 0); "),
    (dict(meta_layers="5"), "1 tensor(s) missing (e.g. hidden.4; metadata says 5 layers and a resume checkpoint); "),
    (dict(meta_made_with="{not json"), "metadata 'made_with' is not readable ('{not json'); "),
    (dict(counts=None), "1 tensor(s) missing (e.g. counts; metadata says 4 layers and a resume checkpoint); "),
    (dict(token_mask=torch.zeros(2, 150)), "tensor 'token_mask' is F32 (2, 150) (expected bool [batch, tokens]); "),
    (dict(token_index=torch.arange(6).int()), "tensor 'token_index' is I32 (6,) (expected int64 [tokens]); "),
    (dict(token_index=torch.arange(7)), "'token_index' has 7 positions but the hidden tensors hold 6 tokens; "),
    (dict(prev_latents=torch.zeros(5, 16, 12, 10)),
     "tensor 'prev_latents' is F32 (5, 16, 12, 10) (expected float [B, latents, channels, h, w]); "),
    ({"hidden.2": torch.zeros(2, 6, 48)},
     "the hidden tensors differ in shape ((2, 6, 32) and (2, 6, 48); expected one shape for all layers); "),
    (dict(rng_state=torch.zeros(10, dtype=torch.uint8)),
     "tensor 'rng_state' has 10 bytes (expected 5056, a CPU torch.Generator state); "),
    (dict(merged=torch.zeros(1, 9, 16, 8, 10)),
     "'merged' (1, 9, 16, 8, 10), 'counts' (9,) and 'prev_latents' (1, 5, 16, 12, 10) do not belong together; "),
])
def test_bad_metadata_and_tensors_are_named(saved, change, problem):
    assert refused(rewrite(saved, **change)) == problem


def test_an_old_file_without_made_with_loads_with_a_warning(saved, caplog):
    old = rewrite(saved, meta_made_with=None)
    assert load_state(old).made_with is None
    assert "saved by an older version without the model and window settings" in caplog.text


# ------------------------------------------------------------------------------------------------ atomic writes


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic.write_text(target, json.dumps({"v": 1}))
    atomic.write_text(target, json.dumps({"v": 2}))
    assert json.loads(target.read_text()) == {"v": 2}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # the usual permissions, not mkstemp's 0600


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    from videopainter.vp_core.pipeline import id_state_io

    target = tmp_path / "state.safetensors"
    save_state(state(), target)
    before = target.read_bytes()

    def disk_full(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(id_state_io, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_state(state(), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.safetensors"]


def test_save_state_writes_through_a_temporary_name(tmp_path, monkeypatch):
    """The final name only ever appears through os.replace (a kill mid-write leaves the old file)."""
    seen = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (seen.append((os.path.basename(src), os.path.basename(dst))),
                                                           real(src, dst)))
    save_state(state(), tmp_path / "s.safetensors")
    assert len(seen) == 1 and seen[0][1] == "s.safetensors"
    assert seen[0][0].startswith(".s.safetensors.") and seen[0][0].endswith(".tmp")


def test_temp_files_left_by_a_killed_writer_are_removed_once_stale(tmp_path):
    target = tmp_path / "ckpt.safetensors"
    stale, fresh = atomic.temp_name(target), atomic.temp_name(target)
    for path in (stale, fresh):
        path.write_bytes(b"half")
    old = os.stat(stale).st_mtime - atomic.STALE_AFTER_S - 60
    os.utime(stale, (old, old))
    atomic.write_bytes(target, b"new")
    assert not stale.exists() and fresh.exists() and target.read_bytes() == b"new"
