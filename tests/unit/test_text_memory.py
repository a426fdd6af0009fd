"""Loading a T5 text encoder holds the weights once: the peak resident memory of ``text.load_text_encoder`` in a
fresh process, above what the process held before, stays near the size of the files.

Loading the whole memory-mapped state dict with one ``CLIP.load_sd`` held the files' read pages and the module's
copy together: 1.85x the files for T5 XXL (bench/README.md, "Real size on CPU"); per tensor it is the module plus one
tensor. A 140 MB T5 (4 layers of width 1024, a small vocabulary) makes the difference far larger than the allocator's
noise: measured 1.07x per tensor; ``python tests/unit/t5_load_probe.py FOLDER --whole-state-dict`` (the former way)
measured 2.04x on the same folder (8 layers), which this test fails.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
LIMIT = 1.3  # (peak - before) / files; measured 1.07 per tensor, 2.04 for the whole state dict at once


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory) -> tuple[Path, int]:
    """A transformers T5EncoderModel checkpoint in two shards + index, as CogVideoX's text_encoder/ ships."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(d_model=1024, d_kv=64, num_heads=16, num_layers=4, d_ff=4096, vocab_size=4096,
                      feed_forward_proj="gated-gelu", is_encoder_decoder=False)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in T5EncoderModel(config).state_dict().items() if k != "encoder.embed_tokens.weight"}
    folder = tmp_path_factory.mktemp("t5") / "text_encoder"
    folder.mkdir()
    config.save_pretrained(str(folder))
    keys = sorted(shapes)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    size = 0
    for name, names in shards.items():
        save_file({k: torch.full(shapes[k], 0.02, dtype=torch.bfloat16) for k in names}, str(folder / name))  # values: no matter
        size += (folder / name).stat().st_size
    index = {"metadata": {"total_size": size}, "weight_map": {k: n for n, names in shards.items() for k in names}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder, size


def probe(folder: Path, *extra: str) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "t5_load_probe.py"), str(folder), *extra],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_t5_load_holds_the_weights_once(t5_folder):
    folder, size = t5_folder
    r = probe(folder)
    assert r["params"] * 2 == pytest.approx(size, rel=0.01)  # every weight was loaded, in bf16
    ratio = (r["peak"] - r["before"]) / size
    assert ratio <= LIMIT, f"loading peaked at {ratio:.2f}x the files' {size / 2**20:.0f} MiB (limit {LIMIT})"

