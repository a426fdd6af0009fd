"""Evaluate an API workflow on VPBench or DAVIS the way the paper does, and write ``<dataset>_metrics.csv``.

    .venv/bin/python scripts/vp_eval.py --dataset VPBench --csv data/our_video_inpaint.csv \\
        --video-root data/videovo/raw_video --mask-root data/video_inpainting [--dilate 32] [--replace-gt on] \\
        [--mode reference] [--workflow workflows/api/videopainter_flux_fill_first_frame.json] [--server URL]
        [--geometry source]
    .venv/bin/python scripts/vp_eval.py --dataset davis --video-root data/davis/JPEGImages_432_240 \\
        --mask-root data/davis/test_masks --caption-csv data/davis/davis_caption.csv

For every row: the clip is cut as the reference cuts it (``vp_core.evaluation.datasets``), written losslessly and uploaded,
the workflow runs through ``vp_headless/comfy_client.py`` (the client of ``vp_run.py``) with the row's captions, seed and
dilation set, the decoded frames (the decoder's output, losslessly, saved as PNG) are collected, and the metrics
of ``vp_core.evaluation.metrics`` are computed against the ground truth at the model's size. One JSON per finished row goes to
``<out>/rows/``: a second run skips those rows (resume), and the CSV + JSON summary are rewritten after every row.

Two geometries (``--geometry``; the CSV, the JSON summary and every row say which one was scored, and a folder
holds one only):

- ``reference`` (default, the paper's): the clip is uploaded frame-rate sampled, the encoder runs with
  ``output_rate`` 'sampled' and ``crop_mode`` 'full frame' (unless ``--set`` gives them), and the decoder's frames
  are measured against the ground truth resized to the model's size (``metrics.ground_truth_at``).
- ``source``: every source frame of the cut is uploaded at the source rate, the encoder samples it with the same
  step, runs with ``output_rate`` 'source' (and the workflow's or ``--set``'s ``crop_mode``), and the composite's
  frames (every source frame, at source resolution) are measured against the source frames themselves, with the
  holes dilated at source resolution: the same metric definitions on what the user gets back.

Library use (the batch runner of issue #20 imports this module; importing it has no side effects)::

    rows = load_rows(args)                      # list of dicts, each with a stable "row_id"
    cfg = config_from_args(args)                # EvalConfig (a plain, picklable dataclass)
    result = evaluate_row(server, rows[0], cfg) # that row's metrics dict (with "row_id")
    write_results([result, ...], out_dir, "VPBench")
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import comfy_client as cc

REPO = cc.REPO_ROOT
log = logging.getLogger("vp_eval")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_WORKFLOW = {"inpaint": REPO / "workflows/api/videopainter_inpaint.json",
                    "edit": REPO / "workflows/api/videopainter_edit.json"}
# The reference's CSV columns (evaluate/eval_inpainting.py), then ours.
CSV_COLUMNS = (
    "Video_Index", "Total_Videos", "Video_Name",
    "PSNR", "SSIM", "LPIPS", "MSE", "MAE", "CLIP_Score", "Temporal_Consistency", "FID_Score",
    "Masked_PSNR", "Masked_SSIM", "Masked_LPIPS", "Masked_MSE", "Masked_MAE",
    "Masked_CLIP_Score", "Masked_Region_CLIP_Score", "Masked_Temporal_Consistency",
    "Video_Caption", "Masked_Target_Caption",
    "Row_Id", "Frames", "Seconds", "Geometry", "Size",
)
METRIC_COLUMNS = {  # CSV column -> key of vp_core.evaluation.metrics (FID_Score is dataset-level)
    "PSNR": "psnr", "SSIM": "ssim", "LPIPS": "lpips", "MSE": "mse", "MAE": "mae", "CLIP_Score": "clip_score",
    "Temporal_Consistency": "temporal_consistency", "Masked_PSNR": "masked_psnr", "Masked_SSIM": "masked_ssim",
    "Masked_LPIPS": "masked_lpips", "Masked_MSE": "masked_mse", "Masked_MAE": "masked_mae",
    "Masked_CLIP_Score": "masked_clip_score", "Masked_Region_CLIP_Score": "masked_region_clip_score",
    "Masked_Temporal_Consistency": "masked_temporal_consistency",
}
RESULT_PREFIX = "vp_eval_result"


@dataclass
class EvalConfig:
    """Everything ``evaluate_row`` needs besides the server and the row; plain values only (picklable, JSON-able).

    Attributes:
        workflow: API-format workflow JSON; must contain one ``VideoPainterEncode`` and the node measured
            (``result_node``: a node id or title whose output 0 is an IMAGE or a VIDEO; default the decoder).
        sets: ``NODE.INPUT: value`` overrides applied first (``--sets-file``/``--set``, e.g. the demo sizes).
        mode: ``reference`` or ``background`` (``vp_core.evaluation.metrics``).
        dilate: mask dilation in source pixels (the encoder's ``dilate`` and the measuring mask), as ``--dilate_size``.
        replace_gt: paste the ground truth outside the hole before measuring, and the sampler's ``replace_gt``
            input, as the reference's ``--replace_gt`` does both.
        seed, max_frames (None = all, as the long CSVs), size (width, height for DAVIS frames),
        metrics_dir (``models/videopainter/metrics``), device (for the metric networks), out_dir.
        geometry: ``reference`` (the model's sampled frames at its size, the paper's) or ``source`` (every source
            frame at the source resolution, the source-rate composite's); ``metrics.GEOMETRIES``.
    """

    workflow: str
    sets: dict[str, Any] = field(default_factory=dict)
    mode: str = "reference"
    dilate: int = 32
    replace_gt: bool = True
    seed: int = 42
    max_frames: int | None = 49
    size: tuple[int, int] = (720, 480)
    metrics_dir: str = str(REPO / "models" / "videopainter" / "metrics")
    device: str = "cpu"
    out_dir: str = str(REPO / "output" / "eval")
    result_node: str | None = None
    timeout: float | None = None
    geometry: str = "reference"

    def setting(self) -> dict[str, Any]:
        """What a row's numbers depend on (checked when resuming into an existing output folder). The reference
        geometry is not listed (folders written before ``--geometry`` existed resume as they were); any other is, so
        rows of two geometries never share a folder."""
        d = asdict(self)
        for k in ("out_dir", "device", "timeout"):
            d.pop(k)
        d["size"] = list(d["size"])
        if d["geometry"] == "reference":
            d.pop("geometry")
        return d


# --------------------------------------------------------------------------------------------------- rows


def load_rows(args: argparse.Namespace) -> list[dict]:
    """The dataset's rows (``vp_core.evaluation.datasets``), each a JSON-able dict with a stable ``row_id``; ``--limit`` keeps
    the first N."""
    datasets = _core().datasets

    if args.dataset == "VPBench":
        if not (args.csv and args.video_root and args.mask_root):
            raise ValueError("--dataset VPBench needs --csv, --video-root and --mask-root")
        rows = datasets.vpbench_rows(args.csv, args.video_root, args.mask_root)
    elif args.dataset == "davis":
        if not (args.caption_csv and args.video_root and args.mask_root):
            raise ValueError("--dataset davis needs --video-root, --mask-root and --caption-csv")
        rows = datasets.davis_rows(args.video_root, args.mask_root, args.caption_csv)
    else:
        raise ValueError(f"--dataset: expected VPBench or davis; got {args.dataset!r}")
    ids = [r["row_id"] for r in rows]
    if len(ids) != len(set(ids)):
        raise ValueError("two rows of the dataset have the same row_id (the same video twice)")
    return rows[: args.limit] if getattr(args, "limit", None) else rows


# --------------------------------------------------------------------------------------------------- one row


def _node_of_class(prompt: dict, class_type: str) -> str:
    ids = [nid for nid, n in prompt.items() if n.get("class_type") == class_type]
    if len(ids) != 1:
        raise ValueError(f"the workflow must contain exactly one {class_type} node; found {len(ids)}")
    return ids[0]


def _encoders(prompt: dict) -> list[dict]:
    """The inputs of every VideoPainterEncode: one, or two in a crop-mode FLUX workflow (``crop_box`` plans frame 0's
    box for FLUX Fill with the same settings as ``encode``), which get the same settings here."""
    encoders = [n["inputs"] for n in prompt.values() if n.get("class_type") == "VideoPainterEncode"]
    if not encoders:
        raise ValueError("the workflow must contain a VideoPainterEncode node; found none")
    return encoders


def _titled(prompt: dict, title: str) -> str | None:
    """The node titled ``title`` as ``--set`` finds it (case, spaces and underscores ignored: a workflow exported
    from the UI says "Seed"), or None when there is none or several."""
    try:
        return cc.find_node(prompt, title)
    except cc.OverrideError:
        return None


VIDEO_OUTPUT = ("VideoPainterDecodeVideo", "VideoPainterCompositeVideo", "CreateVideo", "LoadVideo")


def _measured(prompt: dict, cfg: EvalConfig) -> str:
    """The node whose output 0 is measured: ``--result-node``, else the decoder (reference geometry) or the
    composite (source geometry)."""
    if cfg.result_node:
        return cc.find_node(prompt, cfg.result_node)
    if cfg.geometry == "reference":
        return _decoder(prompt)
    ids = [nid for nid, n in prompt.items() if n.get("class_type") in ("VideoPainterCompositeVideo", "VideoPainterComposite")]
    if len(ids) != 1:
        raise ValueError(f"--geometry source measures the composite (every source frame at source resolution); the "
                         f"workflow has {len(ids)} VideoPainterCompositeVideo / VideoPainterComposite nodes: use a "
                         "workflow with one (videopainter_inpaint.json) or name the node to measure with --result-node")
    return ids[0]


def _decoder(prompt: dict) -> str:
    """The node whose frames are measured by default: the decoder (IMAGE ``VideoPainterDecode`` or the streaming
    ``VideoPainterDecodeVideo``), i.e. the model's output before any compositing, as the reference measures."""
    for cls in ("VideoPainterDecode", "VideoPainterDecodeVideo"):
        if any(n.get("class_type") == cls for n in prompt.values()):
            return _node_of_class(prompt, cls)
    raise ValueError("the workflow has no VideoPainterDecode / VideoPainterDecodeVideo node; name the node to "
                     "measure with --result-node")


def build_prompt(row: dict, cfg: EvalConfig, video_name: str, mask_name: str,
                 clip_fps: float) -> tuple[dict, tuple[int, int]]:
    """The workflow for one row, and the model size (width, height) (the reference geometry measures there).

    Reference geometry: the clip is uploaded already frame-rate sampled at ``clip_fps``, so the encoder's
    ``target_fps`` is set to it (step 1): the sampling rule lives in ``vp_core.evaluation.datasets`` only. Source
    geometry: the clip is uploaded at the source rate ``clip_fps`` and the encoder samples it with the row's step
    (``datasets.step_for``: ``target_fps`` 8, or the clip's rate where the reference does not sample)."""
    prompt = cc.apply_overrides(cc.load_workflow(cfg.workflow), cfg.sets)
    sets: dict[str, Any] = {"video.file": video_name, "mask.file": mask_name, "prompt.value": row["caption"]}
    if _titled(prompt, "seed"):
        sets["seed.value"] = cfg.seed
    if _titled(prompt, "first_frame_prompt"):
        sets["first_frame_prompt.value"] = row["region_caption"]
    prompt = cc.apply_overrides(prompt, sets)
    for node in prompt.values():  # FLUX Fill's mask grows by the same kernel as the encoder's (the reference's)
        if node.get("class_type") == "VideoPainterFirstFrame":
            node["inputs"]["dilate"] = cfg.dilate
    given = {key.rsplit(".", 1)[-1] for key in cfg.sets}
    for enc in _encoders(prompt):
        enc["dilate"] = cfg.dilate
        if cfg.geometry == "source":
            step = row.get("step", 1)
            enc["target_fps"] = float(_core().datasets.TARGET_FPS if step > 1 else clip_fps)
            # every source frame comes back (crop_mode stays the workflow's or --set's)
            if "output_rate" in given and enc.get("output_rate") != "source":
                raise ValueError(f"--geometry source scores the output at the source rate, but --set gives "
                                 f"output_rate {enc.get('output_rate')!r}: leave output_rate out (it is 'source'), or "
                                 "use --geometry reference for the sampled frames")
            enc["output_rate"] = "source"
        else:
            enc["target_fps"] = float(clip_fps)
            # The paper's numbers are on the sampled frames at the model's full-frame geometry (the decoder's output
            # against the ground truth at the model's size): the encoder's output_rate and crop_mode (optional
            # inputs whose defaults or the workflow's values are 'source' / any mode) are 'sampled' / 'full frame'
            # unless --set gives them.
            for name, value in (("output_rate", "sampled"), ("crop_mode", "full frame")):
                if name not in given:
                    enc[name] = value
    # The sampler's replace_gt (issue #15) is an optional input that saved workflows may not list: always set it.
    prompt[_node_of_class(prompt, "VideoPainterSampler")]["inputs"]["replace_gt"] = cfg.replace_gt
    result = _measured(prompt, cfg)
    for nid in [nid for nid, n in prompt.items() if n.get("class_type") in ("SaveVideo", "SaveImage", "PreviewImage")]:
        del prompt[nid]  # only the frames measured are saved
    images = [result, 0]
    if prompt[result]["class_type"] in VIDEO_OUTPUT:  # a VIDEO: lossless, then its frames
        if "codec" in prompt[result]["inputs"]:
            prompt[result]["inputs"]["codec"] = "ffv1"
        prompt["vp_eval_frames"] = {"class_type": "GetVideoComponents", "inputs": {"video": [result, 0]}}
        images = ["vp_eval_frames", 0]
    prompt["vp_eval_save"] = {"class_type": "SaveImage", "_meta": {"title": "vp_eval_result"},
                              "inputs": {"images": images, "filename_prefix": f"{RESULT_PREFIX}_{row['row_id']}"}}
    enc = _encoders(prompt)[0]
    return prompt, (int(enc["width"]), int(enc["height"]))


def _read_result(paths: list[Path]):
    import numpy as np
    import torch
    from PIL import Image

    pngs = sorted(p for p in paths if p.suffix == ".png" and p.name.startswith(RESULT_PREFIX))
    if not pngs:
        raise RuntimeError("the workflow produced no frames to measure")
    return torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in pngs]))


def evaluate_row(server: cc.ServerHandle, row: dict, cfg: EvalConfig) -> dict:
    """Run the workflow on one row on a started server and measure it; returns the row's metrics dict.

    Keys: ``row_id``, ``index``, ``name``, ``frames``, ``seconds`` (workflow run), ``caption``, ``region_caption``,
    the 15 per-video metrics of ``vp_core.evaluation.metrics.WHOLE + MASKED``, ``geometry``, ``width`` / ``height``
    (of the frames measured) and ``i3d_real`` / ``i3d_fake`` (lists of floats, for the dataset's VFID in
    ``write_results``).
    """
    datasets = _core().datasets
    source = cfg.geometry == "source"
    # source geometry: every source frame of the cut, DAVIS at its stored size (read_clip's source_rate)
    frames, holes = datasets.read_clip(row, cfg.max_frames, None if source else tuple(cfg.size), source_rate=source)
    with tempfile.TemporaryDirectory(prefix="vp_eval_") as tmp:
        tmp = Path(tmp)
        names = (f"vp_eval_{row['row_id']}.mp4", f"vp_eval_{row['row_id']}_mask.mp4")
        # the uploaded clip's rate: the sampled clip's (reference geometry), or the source's
        fps = datasets.TARGET_FPS if row["step"] > 1 and not source else row["fps"]
        datasets.write_video(tmp / "video.mp4", frames, fps)
        datasets.write_video(tmp / "mask.mp4", holes[..., None].expand(-1, -1, -1, 3), fps)
        for name, local in zip(names, (tmp / "video.mp4", tmp / "mask.mp4")):
            cc.upload_input(server, name, local)
        prompt, size = build_prompt(row, cfg, *names, clip_fps=fps)
        t0 = time.monotonic()
        result = cc.submit(server, prompt, timeout=cfg.timeout)
        seconds = time.monotonic() - t0
        result.raise_for_status()
        outputs = cc.collect_outputs(server, result.history, tmp / "out", save_texts=False)
        comp = _read_result(outputs)
        _cleanup(server, names, outputs, tmp / "out")
    m = score(frames, holes, comp, cfg, size, row["caption"], row["region_caption"])
    return {"row_id": row["row_id"], "index": row["index"], "name": row["name"], "frames": m.frames,
            "seconds": seconds, "caption": row["caption"], "region_caption": row["region_caption"], **m.values,
            "geometry": cfg.geometry, "width": int(comp.shape[2]), "height": int(comp.shape[1]),
            "i3d_real": m.i3d_real.tolist(), "i3d_fake": m.i3d_fake.tolist()}


def score(frames, holes, comp, cfg: EvalConfig, model_size: tuple[int, int], caption: str, region_caption: str,
          models=None):
    """The metrics (``metrics.ClipMetrics``) of a result ``comp`` (uint8 ``[N, h, w, 3]``) against the source cut
    ``frames`` (uint8 ``[T, H, W, 3]``) and its undilated ``holes`` (uint8 ``[T, H, W]``, 255 = hole) in
    ``cfg.geometry``: reference, at the model size ``model_size`` (width, height), the first ``min(N, T)`` frames
    (the reference's windows may return fewer); source, at the source's size, every one of the ``T`` source frames.
    ``models``: the metric networks (default: loaded from ``cfg.metrics_dir``)."""
    metrics = _core().metrics
    width, height = model_size
    gt, hole = metrics.ground_truth(frames, holes, cfg.geometry, height, width, cfg.dilate)
    if cfg.geometry == "source":
        if comp.shape[1:3] != gt.shape[1:3] or len(comp) != len(gt):
            raise RuntimeError(
                f"--geometry source: the result has {len(comp)} frames of {comp.shape[2]}x{comp.shape[1]} but the source "
                f"cut has {len(gt)} frames of {gt.shape[2]}x{gt.shape[1]}: the measured node must give every source "
                "frame at source resolution (the VIDEO composite, VideoPainterCompositeVideo, of an encoder with a VIDEO "
                "input, output_rate 'source', skip_first_frames and frame_load_cap 0)")
    elif comp.shape[1:3] != gt.shape[1:3]:
        raise RuntimeError(f"the result is {comp.shape[2]}x{comp.shape[1]} but the model size is {width}x{height}")
    n = min(len(comp), len(gt))  # 'reference' windows may return fewer frames; the reference cuts the GT to match
    gt, hole, comp = gt[:n], hole[:n], comp[:n]
    if cfg.replace_gt:
        comp = metrics.replace_background(gt, comp, hole)
    models = models if models is not None else metrics.load_metric_models(cfg.metrics_dir, cfg.device)
    return metrics.clip_metrics(models, gt, comp, hole, caption, region_caption, cfg.mode)


def _cleanup(server: cc.ServerHandle, inputs: tuple[str, ...], outputs: list[Path], local_out: Path) -> None:
    """Remove this row's uploads and outputs from a server we started (a benchmark must not fill its disk)."""
    if server.base_dir is None:
        return
    for name in inputs:
        (server.input_dir / name).unlink(missing_ok=True)
    for p in outputs:
        (server.output_dir / p.relative_to(local_out)).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------- results


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def summarise(results: list[dict]) -> dict[str, float]:
    """The reference's Average row: frame metrics pooled over all frames of all videos (its running lists hold one
    value per frame), temporal consistency averaged over videos, and the VFID of the two I3D feature sets."""
    import numpy as np

    metrics = _core().metrics
    frames = np.array([r["frames"] for r in results], dtype=np.float64)
    avg = {}
    for key in metrics.WHOLE + metrics.MASKED:
        vals = np.array([r[key] for r in results], dtype=np.float64)
        avg[key] = float((vals * frames).sum() / frames.sum()) if key in metrics.FRAME_AVERAGED else float(vals.mean())
    avg["vfid"] = metrics.vfid([r["i3d_real"] for r in results], [r["i3d_fake"] for r in results])
    return avg


def _geometry(r: dict) -> str:
    return r.get("geometry", "reference")  # rows written before --geometry existed were all reference


def _size(r: dict) -> str:
    return f"{r['width']}x{r['height']}" if "width" in r else ""


def write_results(results: list[dict], out_dir: str | Path, dataset: str) -> None:
    """``<out_dir>/<dataset>_metrics.csv`` (one row per video in dataset order + the "Average" row, 4 decimals like
    the reference, then the geometry scored and the frames' size WxH) and ``<out_dir>/<dataset>_metrics.json`` (the
    same numbers at full precision, with ``geometry``, ``sizes`` and ``frames``). Rows of two geometries are
    refused: their numbers do not average."""
    import csv
    import io

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = sorted(results, key=lambda r: r["index"])
    if not results:
        raise ValueError("no results to write")
    geometries = sorted({_geometry(r) for r in results})
    if len(geometries) != 1:
        raise ValueError(f"results of the geometries {', '.join(geometries)} cannot go into one table: write each "
                         "geometry's rows to its own folder (--out)")
    sizes = sorted({_size(r) for r in results} - {""})
    avg = summarise(results)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in results:
        w.writerow([f"{r['index'] + 1:3}", len(results), r["name"],
                    *[f"{r[METRIC_COLUMNS[c]]:.4f}" if c in METRIC_COLUMNS else "" for c in CSV_COLUMNS[3:19]],
                    r["caption"], r["region_caption"], r["row_id"], r["frames"], f"{r['seconds']:.2f}",
                    _geometry(r), _size(r)])
    w.writerow(["Average", "", "",
                *[f"{avg[METRIC_COLUMNS[c]]:.4f}" if c in METRIC_COLUMNS else f"{avg['vfid']:.4f}"
                  for c in CSV_COLUMNS[3:19]],
                "", "", "", int(sum(r["frames"] for r in results)), f"{sum(r['seconds'] for r in results):.2f}",
                geometries[0], " ".join(sizes)])
    _atomic_write(out / f"{dataset}_metrics.csv", buf.getvalue())
    rows = [{k: v for k, v in r.items() if not k.startswith("i3d_")} for r in results]
    summary = {"dataset": dataset, "geometry": geometries[0], "sizes": sizes, "videos": len(results),
               "frames": int(sum(r["frames"] for r in results)), "average": avg, "rows": rows}
    _atomic_write(out / f"{dataset}_metrics.json", json.dumps(summary, indent=1, allow_nan=True) + "\n")


# --------------------------------------------------------------------------------------------------- main


def _core():
    """``vp_core.evaluation`` with ``datasets`` and ``metrics`` loaded, imported on first use (they import torch;
    the client side of this module does not need them)."""
    from ..vp_core import evaluation
    from ..vp_core.evaluation import datasets, metrics  # noqa: F401  (loaded as attributes of ``evaluation``)

    return evaluation


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vp_eval.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=("VPBench", "davis"), required=True)
    ap.add_argument("--csv", type=Path, help="VPBench CSV (our_video_inpaint.csv, ..._long.csv, our_video_edit.csv)")
    ap.add_argument("--video-root", type=Path, help="VPBench: data/videovo/raw_video; DAVIS: JPEGImages_432_240")
    ap.add_argument("--mask-root", type=Path, help="VPBench: data/video_inpainting; DAVIS: test_masks")
    ap.add_argument("--caption-csv", type=Path, help="DAVIS: davis_caption.csv")
    ap.add_argument("--workflow", type=Path, help="API workflow (default: videopainter_inpaint.json, "
                    "videopainter_edit.json for an editing CSV)")
    ap.add_argument("--dilate", type=int, default=None, help="mask dilation in source pixels (reference: 32/16/0 "
                    "inpainting, 48/24/0 editing); default: the workflow encoder's value")
    ap.add_argument("--replace-gt", choices=("on", "off"), default="on",
                    help="paste the ground truth outside the (dilated) hole before measuring, as --replace_gt")
    ap.add_argument("--mode", choices=("reference", "background"), default="reference",
                    help="metric definitions: the reference's (default, comparable with the paper) or corrected")
    ap.add_argument("--geometry", choices=("reference", "source"), default="reference",
                    help="what is scored: 'reference' (default, the paper's: the decoder's sampled frames at the model "
                    "size against the ground truth resized to it; output_rate 'sampled', crop_mode 'full frame' unless "
                    "--set gives them) or 'source' (the composite's output at output_rate 'source', in the workflow's or "
                    "--set's crop_mode: every source frame at the source resolution against the source frames, the "
                    "holes dilated at source resolution). The CSV and JSON say which; a folder holds one")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-frames", type=int, default=None,
                    help="sampled frames per clip (default 49; every frame for a *long* CSV, as the reference); "
                    "--geometry source scores the source frames they span (max-frames x the sampling step)")
    ap.add_argument("--width", type=int, default=720, help="DAVIS frames are resized to this (reference 720)")
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE", help="as vp_run.py")
    ap.add_argument("--sets-file", type=Path, action="append", default=[], metavar="FILE.json", help="as vp_run.py")
    ap.add_argument("--result-node", help="measure output 0 of this node (id or title) instead of the decoder's")
    ap.add_argument("--out", type=Path, help="output folder (default output/eval/Eval_<dataset>_dilate_<d>_"
                    "<w|wo>_replace_gt_<mode>, as the reference names it)")
    ap.add_argument("--models-dir", type=Path, default=REPO / "models", help="model folders for the started host")
    ap.add_argument("--metrics-dir", type=Path, help="metric networks (default <models-dir>/videopainter/metrics)")
    ap.add_argument("--device", default="cpu", help="device for the metric networks (cpu, cuda)")
    ap.add_argument("--server", metavar="URL", help="use a running ComfyUI instead of starting the pinned host")
    ap.add_argument("--limit", type=int, help="only the first N rows")
    ap.add_argument("--timeout", type=float, help="seconds one row's workflow may run")
    return ap


def config_from_args(args: argparse.Namespace, rows: list[dict] | None = None) -> EvalConfig:
    sets: dict[str, Any] = {}
    for f in args.sets_file:
        sets.update(cc.load_sets_file(f))
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--set {item!r} must look like NODE.INPUT=VALUE")
        sets[key] = cc.parse_set_value(value)
    edit = bool(rows) and rows[0].get("edit", False)
    workflow = args.workflow or DEFAULT_WORKFLOW["edit" if edit else "inpaint"]
    prompt = cc.apply_overrides(cc.load_workflow(workflow), sets)
    dilate = args.dilate if args.dilate is not None else int(_encoders(prompt)[0]["dilate"])
    long_csv = args.csv is not None and "long" in Path(args.csv).name
    max_frames = args.max_frames if args.max_frames is not None else (None if long_csv else 49)
    metrics_dir = args.metrics_dir or args.models_dir / "videopainter" / "metrics"
    rg = args.replace_gt == "on"
    geometry = getattr(args, "geometry", "reference")
    out = args.out or REPO / "output" / "eval" / (
        f"Eval_{args.dataset}_dilate_{dilate}_{'w' if rg else 'wo'}_replace_gt_{args.mode}"
        + ("" if geometry == "reference" else f"_{geometry}_geometry"))
    return EvalConfig(workflow=str(workflow), sets=sets, mode=args.mode, dilate=dilate, replace_gt=rg,
                      seed=args.seed, max_frames=max_frames, size=(args.width, args.height),
                      metrics_dir=str(metrics_dir), device=args.device, out_dir=str(out),
                      result_node=args.result_node, timeout=args.timeout, geometry=geometry)


def _done_rows(rows_dir: Path, cfg: EvalConfig) -> dict[str, dict]:
    done = {}
    for p in sorted(rows_dir.glob("*.json")):
        data = json.loads(p.read_text())
        if data.get("setting") != cfg.setting():
            raise ValueError(f"{rows_dir} holds results of another setting ({p.name}); use another --out")
        done[data["result"]["row_id"]] = data["result"]
    return done


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        rows = load_rows(args)
        cfg = config_from_args(args, rows)
        _core().metrics.load_metric_models(cfg.metrics_dir, cfg.device)  # a missing model fails before any clip runs
    except (OSError, ValueError, cc.OverrideError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(cfg.out_dir)
    rows_dir = out / "rows"
    rows_dir.mkdir(parents=True, exist_ok=True)
    try:
        done = _done_rows(rows_dir, cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    todo = [r for r in rows if r["row_id"] not in done]
    log.info("%d rows, %d already done in %s, %d to run", len(rows), len(rows) - len(todo), out, len(todo))
    results = [done[r["row_id"]] for r in rows if r["row_id"] in done]
    server: cc.ServerHandle | None = None
    tmp_base = None
    failed = 0
    try:
        if todo:
            if args.server:
                server = cc.connect(args.server)
            else:
                tmp_base = tempfile.TemporaryDirectory(prefix="vp_eval_host_")
                server = cc.start_server(tmp_base.name, models_dir=args.models_dir)
        bar = tqdm(todo, desc=f"{args.dataset} ({cfg.mode}, {cfg.geometry} geometry)", unit="clip", dynamic_ncols=True)
        for row in bar:
            bar.set_postfix_str(row["name"][:40])
            try:
                res = evaluate_row(server, row, cfg)
            except (cc.PromptExecutionError, RuntimeError, ValueError) as e:
                failed += 1
                log.error("row %s failed: %s", row["name"], e)
                continue
            _atomic_write(rows_dir / f"{row['row_id']}.json",
                          json.dumps({"setting": cfg.setting(), "result": res}) + "\n")
            results.append(res)
            write_results(results, out, args.dataset)
        if results:
            write_results(results, out, args.dataset)
            avg = summarise(results)
            print(json.dumps({"csv": str(out / f"{args.dataset}_metrics.csv"), "geometry": cfg.geometry,
                              "videos": len(results), "frames": int(sum(r["frames"] for r in results)),
                              "failed": failed, **{k: round(v, 4) for k, v in avg.items()}}, indent=1))
        return EXIT_FAILED if failed else EXIT_OK
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if server is not None and server.alive():
            try:
                cc.interrupt(server)
            except Exception:  # noqa: BLE001 - best effort while stopping
                pass
        return EXIT_INTERRUPTED
    finally:
        if server is not None and server.process is not None:
            server.stop()
        if tmp_base is not None:
            tmp_base.cleanup()

