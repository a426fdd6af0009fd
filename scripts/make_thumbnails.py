"""Make the template browser's cards: ``workflows/<name>.jpg`` for every ``workflows/<name>.json``.

    .venv/bin/python scripts/make_thumbnails.py [--workflows-dir workflows]

What a custom-node pack can give ComfyUI's template browser (read from the front ends both tested hosts ship,
comfyui-frontend-package 1.32.9 and 1.45.20, ``workflowTemplatesStore.ts`` / ``useTemplateWorkflows.ts``): the host
lists ``<pack>/workflows/*.json`` by file name only (``app/custom_node_manager.py``), and the front end makes each
card from that name alone: title = the name, description = the name with ``-``/``_`` as spaces, picture =
``/api/workflow_templates/<pack>/<name>.jpg`` (``mediaSubtype`` is fixed to ``jpg``; shown ``object-contain`` in a
square). No index.json, locale entry or field inside the workflow reaches a custom pack's card. So the one-line
description and the "Start here" mark are drawn into the picture, under a frame of the sample clip as the
workflows' ``VideoPainter Mask Preview`` shows it (the hole the sampler fills tinted magenta; the same procedural
clip as ``make_sample_clip.py``, drawn at card size). The title and description are also the JPEG's comment.

Reproducible (no randomness, Pillow's bundled font); a workflow without an entry in ``CARDS`` is an error, so a new
workflow gets a card (add its title and description here, rerun).
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import vp_pack  # noqa: F401  (registers this repository as the package 'videopainter')
from make_sample_clip import sample_frames
from videopainter.vp_core.base import atomic, hostenv

hostenv.ensure_comfy(cpu=True)  # the preview module imports ComfyUI's model management
from videopainter.vp_core.pipeline.preview import MASK_TINT  # noqa: E402  (the Mask Preview node's tint)

REPO = Path(__file__).resolve().parents[1]
START_HERE = "videopainter_flux_fill_first_frame"  # README "Start here": the reference's pipeline
START_MARK = "Start here: "
# workflow file stem -> (card title, one-line description)
CARDS = {
    START_HERE: ("Inpaint a clip", "FLUX.1 Fill paints frame 0, VideoPainter continues the clip: the paper's pipeline"),
    "videopainter_edit": ("Edit a clip", "FLUX.1 Fill edits frame 0, VideoPainter carries the edit through the clip"),
    "videopainter_inpaint": ("Inpaint, no first frame",
                             "Fallback without an image inpainter; runs on the tiny demo weights"),
    "videopainter_inpaint_hd_crop": ("Inpaint HD footage",
                                     "The model sees a box around the hole, pasted back at source resolution"),
    "videopainter_flux_fill_hd_crop": ("Inpaint HD footage, FLUX Fill",
                                       "FLUX.1 Fill paints frame 0's box, the model fills the box at source size"),
    "videopainter_long_video_parts": ("Long video in parts",
                                      "Two chained parts; the ID state carries the fill from one to the next"),
    "videopainter_style_lora": ("Inpaint with a style LoRA", "The inpaint workflow plus your CogVideoX-5B-I2V LoRA"),
    "window_plan": ("Window plan", "How a clip is cut into 49-frame windows; needs no models"),
}
SIZE = 384  # square card; the picture is 384 x 256 (the clip's 3:2), the caption below it
FRAME_H = 256
FRAME_INDEX = 12  # of the 49-frame sample clip: the square (the hole) near the middle
OPACITY = 0.5  # the Mask Preview node's default
JPEG_QUALITY = 85
START_COLOUR = (22, 163, 74)  # green banner on the start-here card


def card_text(stem: str) -> tuple[str, str]:
    """(title, description) of a workflow's card; the start-here one's title begins with ``START_MARK``."""
    if stem not in CARDS:
        raise ValueError(f"no card for workflows/{stem}.json: add its title and one-line description to CARDS in "
                         f"scripts/make_thumbnails.py (known: {', '.join(sorted(CARDS))}), then rerun it")
    title, description = CARDS[stem]
    return (START_MARK + title if stem == START_HERE else title), description


def preview_frame() -> np.ndarray:
    """One frame of the sample clip at card size, its hole tinted as the Mask Preview node tints it."""
    video, mask = sample_frames(frames=49, width=SIZE, height=FRAME_H)
    image = video[FRAME_INDEX].astype(np.float32) / 255.0
    hole = mask[FRAME_INDEX] > 127
    tinted = image * (1 - OPACITY) + np.asarray(MASK_TINT, np.float32) * OPACITY
    image = np.where(hole[..., None], tinted, image)
    return (image * 255.0 + 0.5).astype(np.uint8)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    for chars in range(48, 10, -1):
        lines = textwrap.wrap(text, chars)
        if all(draw.textlength(line, font=font) <= width for line in lines):
            return lines
    return textwrap.wrap(text, 10)


def render(stem: str, frame: np.ndarray | None = None) -> Image.Image:
    """The card of workflow ``stem`` over ``frame`` (default: ``preview_frame()``)."""
    title, description = card_text(stem)
    card = Image.new("RGB", (SIZE, SIZE), (24, 24, 27))
    card.paste(Image.fromarray(preview_frame() if frame is None else frame), (0, 0))
    draw = ImageDraw.Draw(card)
    big, small = ImageFont.load_default(size=26), ImageFont.load_default(size=21)
    if stem == START_HERE:
        draw.rectangle((0, 0, SIZE, 40), fill=START_COLOUR)
        draw.text((12, 8), "START HERE", font=big, fill=(255, 255, 255))
    y = FRAME_H + 10
    for line in _wrap(draw, title, big, SIZE - 24)[:2]:
        draw.text((12, y), line, font=big, fill=(255, 255, 255))
        y += 32
    lines = _wrap(draw, description, small, SIZE - 24)
    max_lines = max(1, (SIZE - y - 4) // 25)
    if len(lines) > max_lines:
        raise ValueError(f"workflows/{stem}.json: the card's description does not fit in {max_lines} lines: shorten it "
                         f"in CARDS ({description!r})")
    for line in lines:
        draw.text((12, y), line, font=small, fill=(212, 212, 216))
        y += 25
    return card


def make_thumbnails(workflows_dir: Path) -> list[Path]:
    """Write ``<name>.jpg`` next to every ``<name>.json`` of ``workflows_dir`` (atomically); every card is checked
    before any is written, so a workflow without a card leaves the folder as it was."""
    stems = sorted(p.stem for p in workflows_dir.glob("*.json"))
    if not stems:
        raise ValueError(f"no workflows (*.json) in {workflows_dir}")
    missing = [s for s in stems if s not in CARDS]
    if missing:
        card_text(missing[0])  # raises with the remedy
    frame = preview_frame()  # the same picture on every card: drawn once
    cards = {stem: render(stem, frame) for stem in stems}  # a description that does not fit raises before any write
    written = []
    for stem, card in cards.items():
        title, description = card_text(stem)
        target = workflows_dir / f"{stem}.jpg"
        with atomic.atomic_path(target) as tmp:
            card.save(tmp, format="JPEG", quality=JPEG_QUALITY, optimize=True,
                      comment=f"{title}: {description}".encode())
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workflows-dir", type=Path, default=REPO / "workflows")
    args = ap.parse_args(argv)
    try:
        for path in make_thumbnails(args.workflows_dir):
            print(f"{path} ({path.stat().st_size // 1024} KB)")
    except ValueError as e:
        print(f"make_thumbnails: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
