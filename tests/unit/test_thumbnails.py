"""The template browser's cards (issue #28): every ``workflows/<name>.json`` has its ``<name>.jpg`` made by
``scripts/make_thumbnails.py`` (the front ends of both hosts show a custom pack's workflow by file name plus that
picture only, so the one-line description and the start-here mark are in the picture and its JPEG comment)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

import make_thumbnails as mt

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_every_workflow_has_its_card(workflow):
    thumb = workflow.with_suffix(".jpg")
    assert thumb.is_file(), f"{thumb.name} missing: run .venv/bin/python scripts/make_thumbnails.py"
    assert thumb.stat().st_size < 40_000, f"{thumb.name}: {thumb.stat().st_size} bytes (cards are small files)"
    with Image.open(thumb) as im:
        assert im.format == "JPEG" and im.size == (mt.SIZE, mt.SIZE)
        title, description = mt.card_text(workflow.stem)
        assert im.info.get("comment") == f"{title}: {description}".encode(), (
            f"{thumb.name} is not the card CARDS describes: rerun scripts/make_thumbnails.py")


def test_start_here_card_is_marked():
    title, _ = mt.card_text(mt.START_HERE)
    assert title.startswith("Start here")
    assert (REPO / "workflows" / f"{mt.START_HERE}.json").is_file()
    assert [s for s in mt.CARDS if mt.card_text(s)[0].startswith("Start here")] == [mt.START_HERE]
    # the banner: the top rows of the start-here card are the banner's green, another card's are the clip's
    with Image.open(REPO / "workflows" / f"{mt.START_HERE}.jpg") as im:
        r, g, b = im.convert("RGB").getpixel((mt.SIZE - 5, 3))
    assert g > 140 and r < 60 and b < 110, (r, g, b)


def test_a_workflow_without_a_card_is_refused(tmp_path):
    shutil.copy(REPO / "workflows" / "window_plan.json", tmp_path / "window_plan.json")
    (tmp_path / "my_new_workflow.json").write_text(json.dumps({"nodes": []}))
    with pytest.raises(ValueError, match=r"no card for workflows/my_new_workflow\.json: add .* CARDS"):
        mt.make_thumbnails(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_new_workflow.json", "window_plan.json"]
    assert mt.main(["--workflows-dir", str(tmp_path)]) == 1


def test_cards_are_made_reproducibly(tmp_path):
    shutil.copy(REPO / "workflows" / "window_plan.json", tmp_path / "window_plan.json")
    assert mt.make_thumbnails(tmp_path) == [tmp_path / "window_plan.jpg"]
    first = (tmp_path / "window_plan.jpg").read_bytes()
    mt.make_thumbnails(tmp_path)
    assert (tmp_path / "window_plan.jpg").read_bytes() == first
