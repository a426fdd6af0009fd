"""Readers for the reference's evaluation sets (``evaluate/dataset.py``): VPBench (CSV + ``all_masks.npz``) and DAVIS.

A row is a plain dict (JSON-serialisable, so a batch runner can ship it to another process) with a stable
``row_id``; ``read_clip`` turns it into frames ``uint8 [T, H, W, 3]`` and hole masks ``uint8 [T, H, W]`` (255 = hole,
undilated), already cut the reference's way:

- VPBench: ``frames[start_frame:end_frame]`` of the source video and ``all_masks.npz["arr_0"][start:end] == mask_id``,
  then every ``int(fps // 8)``-th frame (``fps`` from the CSV), then the first ``max_frames`` (49; all for the
  "long" CSVs). The reference's long editing CSVs are not frame-rate sampled (``eval_edit.py``); ``step_for`` says so.
- DAVIS: the JPEG folders (432x240) resized to the evaluation size (bilinear, as ``cv2.INTER_LINEAR``), masks
  ``<mask_root>/<video>/<index:05d>.png`` resized nearest, ``> 0``, dilated by a 3x3 cross 4 times; 8 fps, no
  frame-rate sampling; captions from ``davis_caption.csv`` by position (``Video_Index`` = 1-based index in the sorted
  list of mask folders), as the reference looks them up.

Video files are decoded with PyAV frame by frame; only the frames kept are held. Frames are turned upright by their
display rotation (phone clips), as the reference's reader (diffusers' ``load_video``: imageio's ffmpeg, which
autorotates) and the VIDEO path (``video_io.upright``) show them, so a result is never compared sideways.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from ..video import video_io


VPBENCH_COLUMNS = ("path", "mask_id", "fps", "start_frame", "end_frame")
INPAINT_CAPTIONS = ("video_inpainting_prompt", "image_inpainting_prompt")
EDIT_CAPTIONS = ("Edited_video_caption", "Edited_image_caption", "Editing_instruction")
DAVIS_COLUMNS = ("Video_Index", "Video_Caption", "Masked_Target_Caption")
TARGET_FPS = 8  # the reference's down_sample_fps
DAVIS_FPS = 8


def safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "row"


def _read_csv(path: Path, required: tuple[str, ...], what: str) -> list[dict[str, str]]:
    if not path.is_file():
        raise ValueError(f"{what}: {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{what}: {path} lacks the column(s) {', '.join(missing)}; has {reader.fieldnames}")
        return list(reader)


def vpbench_paths(name: str, video_root: str | Path, mask_root: str | Path) -> tuple[Path, Path]:
    """The reference's folder rules for a CSV ``path``: ``X.0.mp4`` is a Videovo clip, any other ``.mp4`` Pexels.

    Videovo: ``<video_root>/<base[:-3]>/<base>.0.mp4`` and ``<mask_root>/videovo/<base>/all_masks.npz``;
    Pexels: ``<video_root with videovo -> pexels/pexels>/<base[:9]>/<base>.mp4`` and
    ``<mask_root>/pexels/<base>/all_masks.npz`` (``base`` = the name before its first dot).
    """
    base = name.split(".")[0]
    root = str(video_root)
    if ".0.mp4" in name:
        return Path(root, base[:-3], f"{base}.0.mp4"), Path(mask_root, "videovo", base, "all_masks.npz")
    if ".mp4" in name:
        return (Path(root.replace("videovo", "pexels/pexels"), base[:9], f"{base}.mp4"),
                Path(mask_root, "pexels", base, "all_masks.npz"))
    raise ValueError(f"VPBench path {name!r}: expected a name ending in .0.mp4 (Videovo) or .mp4 (Pexels)")


def vpbench_rows(csv_path: str | Path, video_root: str | Path, mask_root: str | Path) -> list[dict]:
    """One row per CSV line (inpainting CSVs, or editing CSVs with ``Edited_*`` captions)."""
    csv_path = Path(csv_path)
    lines = _read_csv(csv_path, VPBENCH_COLUMNS, "VPBench CSV")
    edit = bool(lines) and all(c in lines[0] for c in EDIT_CAPTIONS)
    captions = EDIT_CAPTIONS[:2] if edit else INPAINT_CAPTIONS
    if lines and not all(c in lines[0] for c in captions):
        raise ValueError(f"VPBench CSV {csv_path}: needs the caption columns {INPAINT_CAPTIONS} or {EDIT_CAPTIONS}")
    rows = []
    for i, line in enumerate(lines):
        video, masks = vpbench_paths(line["path"], video_root, mask_root)
        rows.append({
            "row_id": safe_id(line["path"]), "index": i, "dataset": "VPBench", "name": line["path"],
            "video": str(video), "masks": str(masks), "mask_id": int(line["mask_id"]), "fps": int(float(line["fps"])),
            "start_frame": int(line["start_frame"]), "end_frame": int(line["end_frame"]),
            "caption": line[captions[0]], "region_caption": line[captions[1]],
            "instruction": line.get("Editing_instruction", "") if edit else "", "edit": edit,
            "step": step_for(csv_path, int(float(line["fps"]))),
        })
    return rows


def step_for(csv_path: str | Path, fps: int) -> int:
    """Frame-rate sampling step: ``int(fps // 8)``, except 1 for the long editing CSVs (the reference skips it there)."""
    name = Path(csv_path).name
    if "long" in name and "edit" in name:
        return 1
    return max(1, int(fps // TARGET_FPS))


def davis_rows(video_root: str | Path, mask_root: str | Path, caption_csv: str | Path) -> list[dict]:
    video_root, mask_root = Path(video_root), Path(mask_root)
    if not mask_root.is_dir():
        raise ValueError(f"DAVIS mask root {mask_root} is not a folder")
    names = sorted(os.listdir(mask_root))
    captions = {int(r["Video_Index"]): r for r in _read_csv(Path(caption_csv), DAVIS_COLUMNS, "DAVIS caption CSV")}
    rows = []
    for i, name in enumerate(names):
        if i + 1 not in captions:
            raise ValueError(f"DAVIS caption CSV {caption_csv}: no row with Video_Index {i + 1} (for {name})")
        cap = captions[i + 1]
        rows.append({
            "row_id": safe_id(name), "index": i, "dataset": "davis", "name": name,
            "video": str(video_root / name), "masks": str(mask_root / name), "fps": DAVIS_FPS, "step": 1,
            "caption": cap["Video_Caption"], "region_caption": cap["Masked_Target_Caption"], "instruction": "",
            "edit": False,
        })
    return rows


TRAIN_COLUMNS = ("path", "start_frame", "end_frame", "fps", "mask_id", "caption")  # the reference's training CSV
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
MASK_SUFFIX = "_mask"  # plain folder: <name>.mp4, <name>_mask.mp4 (white = hole), <name>.txt (caption)


def vpdata_train_rows(csv_path: str | Path, video_root: str | Path, mask_root: str | Path | None = None) -> list[dict]:
    """Rows of the reference's training CSV (VPData: ``path, start_frame, end_frame, fps, mask_id, caption``; masks
    under the CSV's folder unless ``mask_root``), read by :func:`read_clip` like VPBench rows. The reference's
    filters (caption longer than 50 characters, enough frames) are the training loader's to apply, with a log line."""
    csv_path = Path(csv_path)
    mask_root = Path(mask_root) if mask_root is not None else csv_path.parent
    rows = []
    for i, line in enumerate(_read_csv(csv_path, TRAIN_COLUMNS, "training CSV")):
        try:
            video, masks = vpbench_paths(line["path"], video_root, mask_root)
            fps = int(float(line["fps"]))
            rows.append({
                "row_id": safe_id(line["path"]) + f"_{i}", "index": i, "dataset": "VPBench", "name": line["path"],
                "video": str(video), "masks": str(masks), "mask_id": int(line["mask_id"]), "fps": fps,
                "start_frame": int(line["start_frame"]), "end_frame": int(line["end_frame"]),
                "caption": line["caption"], "step": max(1, int(fps // TARGET_FPS)),
            })
        except ValueError as e:  # a malformed line: kept as a row that fails to read, so the loader's policy decides
            rows.append({"row_id": f"line_{i + 2}", "index": i, "dataset": "invalid", "name": line.get("path", ""),
                         "error": f"{csv_path}:{i + 2}: {e}", "caption": line.get("caption", "")})
    return rows


def folder_rows(folder: str | Path) -> list[dict]:
    """A plain folder of clips: ``<name>.mp4`` (any of ``VIDEO_SUFFIXES``), its mask video ``<name>_mask.mp4``
    (white = hole, e.g. made with SAM2 in ComfyUI) and its caption ``<name>.txt``. A clip whose mask video or caption
    is missing is still listed; reading it raises the error that names the missing file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"training folder {folder} is not a folder")
    rows = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in VIDEO_SUFFIXES or path.stem.endswith(MASK_SUFFIX):
            continue
        mask = next((path.with_name(path.stem + MASK_SUFFIX + s) for s in VIDEO_SUFFIXES
                     if path.with_name(path.stem + MASK_SUFFIX + s).is_file()), path.with_name(path.stem + MASK_SUFFIX + path.suffix))
        caption = path.with_suffix(".txt")
        rows.append({"row_id": safe_id(path.stem), "index": len(rows), "dataset": "folder", "name": path.name,
                     "video": str(path), "masks": str(mask), "caption_file": str(caption), "step": 1})
    return rows


def _read_folder(row: dict, max_frames: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    masks_path = Path(row["masks"])
    if not masks_path.is_file():
        raise ValueError(f"clip {row['name']}: mask video {masks_path} does not exist (expected <name>{MASK_SUFFIX}.mp4)")
    keep = range(0, max_frames if max_frames is not None else 1 << 30)
    frames = list(_decode(Path(row["video"]), keep))
    masks = [m.max(axis=2) > 127 for m in _decode(masks_path, range(len(frames)))]
    if len(masks) < len(frames):
        raise ValueError(f"clip {row['name']}: the mask video has {len(masks)} frames, the clip {len(frames)}")
    if frames and masks[0].shape != frames[0].shape[:2]:
        raise ValueError(f"clip {row['name']}: masks are {masks[0].shape[1]}x{masks[0].shape[0]} but the video is "
                         f"{frames[0].shape[1]}x{frames[0].shape[0]}")
    if not frames:
        raise ValueError(f"clip {row['name']}: {row['video']} has no frames")
    return torch.from_numpy(np.stack(frames)), torch.from_numpy(np.stack(masks).astype(np.uint8) * 255)


def _decode(path: Path, keep: range):
    """The frames of ``path`` whose index is in ``keep`` (a non-negative range), as uint8 RGB arrays."""
    if not path.is_file():
        raise ValueError(f"video {path} does not exist")
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= keep.stop:
                break
            if i in keep:
                # rgb24 whatever the host: metrics must not depend on which ComfyUI (if any) is importable
                yield video_io.upright(frame.to_ndarray(format="rgb24"), frame.rotation)


def _kept(n: int, start: int, end: int, step: int, max_frames: int | None) -> range:
    """Frame indices ``range(n)[start:end][::step][:max_frames]`` (``n``: frames of the clip's mask label map)."""
    r = range(n)[start:end][::step]
    return r[:max_frames] if max_frames is not None else r


def read_clip(row: dict, max_frames: int | None = 49, size: tuple[int, int] | None = (720, 480),
              source_rate: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(frames uint8 [T, H, W, 3], holes uint8 [T, H, W])`` of a row (see the module docstring).

    ``size`` is (width, height), used for DAVIS only (VPBench clips stay at source resolution; the model's
    pre-processing resizes them); None keeps DAVIS frames at their stored size.
    ``source_rate``: every source frame of the cut instead of every ``step``-th (the evaluation's ``source``
    geometry, whose output has every source frame), as many as the ``max_frames`` sampled frames span
    (``max_frames * step``: each sampled frame's period), so the encoder samples the same frames from it.
    """
    if row["dataset"] == "davis":
        return _read_davis(row, max_frames, size)
    if row["dataset"] == "folder":
        return _read_folder(row, max_frames)
    if row["dataset"] == "invalid":
        raise ValueError(row["error"])
    masks_path = Path(row["masks"])
    if not masks_path.is_file():
        raise ValueError(f"VPBench masks {masks_path} do not exist (row {row['name']})")
    labels = np.load(masks_path)["arr_0"]
    if source_rate:
        span = None if max_frames is None else max_frames * row["step"]
        keep = _kept(len(labels), row["start_frame"], row["end_frame"], 1, span)
    else:
        keep = _kept(len(labels), row["start_frame"], row["end_frame"], row["step"], max_frames)
    frames = list(_decode(Path(row["video"]), keep))
    if not frames:
        raise ValueError(f"row {row['name']}: no frame of {row['video']} lies in {keep}")
    idx = list(keep)[: len(frames)]
    holes = (labels[idx] == row["mask_id"]).astype(np.uint8) * 255
    if holes.shape[1:] != frames[0].shape[:2]:
        raise ValueError(f"row {row['name']}: masks are {holes.shape[2]}x{holes.shape[1]} but the video is "
                         f"{frames[0].shape[1]}x{frames[0].shape[0]}")
    return torch.from_numpy(np.stack(frames)), torch.from_numpy(holes)


_CROSS = ndimage.generate_binary_structure(2, 1)  # cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def _read_davis(row: dict, max_frames: int | None, size: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    folder, mask_folder = Path(row["video"]), Path(row["masks"])
    if not folder.is_dir():
        raise ValueError(f"DAVIS frames folder {folder} does not exist")
    names = sorted(os.listdir(folder))[:max_frames]
    if size is None and names:  # the stored size (the source geometry): the resize below is then the identity
        with Image.open(folder / names[0]) as first:
            size = first.size
    w, h = size or (0, 0)
    frames, holes = [], []
    for i, name in enumerate(names):
        img = torch.from_numpy(np.array(Image.open(folder / name).convert("RGB"))).permute(2, 0, 1)[None].float()
        img = F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False)  # cv2.INTER_LINEAR (no antialias)
        frames.append(img[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8))
        mask_path = mask_folder / f"{i:05d}.png"
        if not mask_path.is_file():
            raise ValueError(f"DAVIS mask {mask_path} does not exist (frame {name} of {row['name']})")
        m = np.asarray(Image.open(mask_path).resize((w, h), Image.NEAREST).convert("L")) > 0
        m = ndimage.binary_dilation(m, structure=_CROSS, iterations=4)
        holes.append(torch.from_numpy(m.astype(np.uint8) * 255))
    if not frames:
        raise ValueError(f"DAVIS frames folder {folder} is empty")
    return torch.stack(frames), torch.stack(holes)


def write_video(path: str | Path, frames, fps: float, lossless: bool = True) -> Path:
    """Frames ``uint8 [T, H, W, 3]`` -> an .mp4 (H.264 RGB with qp 0 when ``lossless``, so the decoded frames are the
    given ones exactly; yuv420p H.264 otherwise). Written to a temporary name and renamed into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    arr = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    h, w = arr.shape[1:3]
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264rgb" if lossless else "libx264", rate=int(round(fps)))
        stream.width, stream.height = w, h
        stream.pix_fmt = "rgb24" if lossless else "yuv420p"
        stream.options = {"qp": "0"} if lossless else {"crf": "18"}
        for f in arr:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path
