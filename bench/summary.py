"""One table of every benchmark's ratio against its target, from the JSON files in bench/results.

``python bench/summary.py [--since EPOCH] [--gpu] [--markdown]``: ``--since`` ignores files written before that time
(``run.sh`` passes its start time, so a benchmark that crashed shows as "not run" instead of an old number);
``--markdown`` prints the README's results table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def load(name: str, since: float | None) -> dict | None:
    path = common.RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if since is not None and data.get("written_epoch", 0) < since:
        return None
    return data


def rows_ratios(since: float | None, gpu: bool = False) -> list[dict]:
    """Benchmarks 1-3 (CPU files, or their ``_gpu`` twins)."""
    rows = []
    sfx, tag = ("_gpu", " [GPU]") if gpu else ("", "")
    missing = "skipped: no CUDA device (or not run)" if gpu else "not run (or crashed)"
    b1 = load("branch_overhead" + sfx, since)
    if b1 is None:
        rows.append(dict(bench="1 branch overhead", measured=None, target="<=1.08", note=missing))
    else:
        r, pt, pf, t = b1["ratios"], b1["projection_time_42"], b1["projection_flops_real"], b1["target"]
        size = b1["size"]
        depth = f"{size['layers']}+{size['branch_layers']} layers"
        rows.append(dict(bench=f"1 backbone+branch / backbone, measured ({depth})", measured=r["backbone+branch"], target=t,
                         note=f"noise floor: control run {r['backbone (control)']:.3f}", command=b1["command"], written=b1["written"]))
        rows.append(dict(bench="1 backbone+branch / backbone, projected to 42+2 layers (measured per-block times)",
                         measured=pt["backbone+branch"], target=t, note=f"FLOP count at 49x480x720: {pf['backbone+branch']:.3f}",
                         command=b1["command"], written=b1["written"]))
        id_t = b1.get("id_target", t)
        for w in ("window 0", "window >0"):
            key, lit = f"backbone+branch+ID ({w})", f"backbone+branch+ID literal ({w})"
            rows.append(dict(bench=f"1 +ID resample ({w}) / backbone, projected to 42+2 layers (measured per-block times)",
                             measured=pt[key], target=id_t,
                             note=f"measured {depth}: {r[key]:.3f}; FLOPs {pf[key]:.3f}"
                                  + (f"; literal form side by side: proj. {pt[lit]:.3f}, FLOPs {pf[lit]:.3f}" if lit in pt else ""),
                             command=b1["command"], written=b1["written"]))
    b2 = load("vs_diffusers" + sfx, since)
    if b2 is None:
        rows.append(dict(bench="2 ours / diffusers backbone step", measured=None, target="<=1.0", note=missing))
    else:
        for backend, r in b2["backends"].items():
            rows.append(dict(bench=f"2 ours / diffusers backbone step, attention {backend} ({r['attention']})",
                             measured=r["ratio"], target=b2["target"],
                             note=f"control {r['control_ratio']:.3f}; max abs diff {r['max_abs_diff']:.1e}",
                             command=b2["command"], written=b2["written"]))
    b3 = load("memory" + sfx, since)
    if b3 is None:
        rows.append(dict(bench="3 peak memory 6 / 2 windows", measured=None, target="<=1.10", note=missing))
    else:
        s = b3["summary"]
        runs = b3["runs"]
        big = runs[max(runs, key=int)]
        what = "peak allocated" if gpu else "peak RSS"
        rows.append(dict(bench=f"3 {what}, 6 windows / 2 windows (sample + decode)", measured=s["ratio"], target=b3["target"],
                         note=f"above loaded models {s['ratio_above_loaded_models']:.3f}; output buffer "
                              f"{big['length_buffers_mib']['decoded output (float32)']:.1f} MiB of "
                              f"{max(big['rss_peak_by_phase_mib'].values()):.0f} MiB",
                         command=b3["command"], written=b3["written"]))
    if not gpu:
        rows += rows_streaming(since)
    for r in rows:
        r["bench"] += tag
    return rows


def rows_streaming(since: float | None) -> list[dict]:
    """Benchmark 6: server RSS on the streaming path, two 1080p30 clip lengths."""
    b = load("streaming", since)
    if b is None:
        return [dict(bench="6 streaming peak RSS long / short clip", measured=None, target="<=1.10", note="not run (or crashed)")]
    short, long = b["runs"][0], b["runs"][-1]
    note = (f"{short['seconds']} s -> {long['seconds']} s of 1080p30: {short['peak_rss_mib']:.0f} -> "
            f"{long['peak_rss_mib']:.0f} MiB, {b['mib_per_minute']:.0f} MiB per minute; decode "
            f"{long['decode_ms_per_source_frame']:.1f} ms/src frame, encode {long['encode_ms_per_output_frame']:.1f} ms/out frame")
    return [
        dict(bench="6 streaming peak RSS, long / short clip", measured=b["ratio"], target=b["target"], note=note,
             command=b["command"], written=b["written"]),
        dict(bench="6 streaming short clip peak above the idle server (GiB)", measured=b["short_above_idle_gib"],
             target=b["target_above_idle_gib"], note=f"idle server {short['idle_rss_mib']:.0f} MiB",
             command=b["command"], written=b["written"]),
    ]


def rows_interpolate(since: float | None) -> list[dict]:
    """Benchmark 8: source-rate output, in-between hole PSNR gain of the flow interpolation and its cost (1080p)."""
    b = load("interpolate", since)
    if b is None:
        return [dict(bench="8 source-rate interpolation, min dB gain", measured=None, target="report",
                     note="not run (or crashed)")]
    q, c = b["quality_db"], b["cost"]
    note = (f"1080p, {b['speed_px_per_frame']:.2f} px/frame, step {b['step']}: flow {q['flow']:.2f} dB, nearest "
            f"{q['nearest']:.2f}, cross-fade {q['fade']:.2f}; composite {c['ms_per_source_frame']:.0f} ms/source frame "
            f"(sampled mode {c['ms_per_sampled_frame_sampled_mode']:.0f} ms/frame)")
    return [dict(bench="8 source-rate interpolation: dB above nearest frame / cross-fade (min; target >= 6)",
                 measured=b["min_gain_db"], target="report", note=note, command=b["command"], written=b["written"],
                 miss=b["min_gain_db"] < b["target_db"])]


def rows_gpu(since: float | None) -> list[dict]:
    g = load("gpu", since)
    if g is None:
        return [dict(bench="4/5 GPU (partial load, throughput)", measured=None, target="-",
                     note="skipped: no CUDA device (or not run)")]
    rows = []
    for r in g["runs"]:
        target = g["targets_gb"][r["mode"]]
        note = f"{r.get('step_s', float('nan')):.2f} s/step, {r.get('window_s', float('nan')):.0f} s/window"
        if r.get("mfu"):
            note += f", MFU {100 * r['mfu']:.1f}%"
        if r.get("oom"):
            note += ", OOM at the cap"
        what = r["mode"] + {"fp8": " fp8 storage", "vae": " VAE decode"}.get(r.get("storage", "bf16"), "") + \
            (" +ID" if r.get("id") else "")
        attention = "" if r.get("storage") == "vae" else f", attention {r['attention_requested']} ({r.get('attention', '?')})"
        rows.append(dict(bench=f"4 peak GPU GB, {what}{attention}",
                         measured=None if r.get("oom") else r.get("peak_reserved_gb"), target=target, note=note,
                         command=g["command"], written=g["written"], miss=bool(r.get("oom"))))
    return rows


def rows_batch(since: float | None) -> list[dict]:
    """scripts/vp_batch.py throughput, 2 workers / 1 worker (bench_batch.py): reported, no target (shared cores)."""
    b = load("batch", since)
    if b is None:
        return [dict(bench="7 batch jobs/min, 2 workers / 1 worker", measured=None, target="report",
                     note="not run (or crashed)")]
    one, two = b["results"]
    return [dict(bench="7 batch jobs/min, 2 workers / 1 worker (tiny model, CPU)", measured=b["ratio_2_over_1"],
                 target="report", note=f"{one['jobs_per_min']} -> {two['jobs_per_min']} jobs/min; {b['cores']} cores, "
                 f"load {b['load_average_before'][0]}", command=b["command"], written=b["written"])]


def verdict(row: dict) -> str:
    if row.get("miss"):
        return "MISS"
    if row["measured"] is None or not isinstance(row["target"], (int, float)):
        return "-"
    return common.verdict(row["measured"], row["target"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--since", type=float, help="ignore results written before this UNIX time")
    ap.add_argument("--gpu", action="store_true", help="include the GPU benchmarks")
    ap.add_argument("--markdown", action="store_true", help="README table (with date and command)")
    args = ap.parse_args(argv)
    rows = rows_ratios(args.since) + rows_batch(args.since) + rows_interpolate(args.since) + (
        rows_ratios(args.since, gpu=True) + rows_gpu(args.since) if args.gpu else [])
    if args.markdown:
        print("| benchmark | measured | target | result | note | date | command |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            m = "-" if r["measured"] is None else f"{r['measured']:.3f}"
            t = r["target"] if isinstance(r["target"], str) else f"<= {r['target']:g}"
            print(f"| {r['bench']} | {m} | {t} | {verdict(r)} | {r['note']} | {r.get('written', '-')[:10]} | "
                  f"`{r.get('command', '-')}` |")
        return 0
    table = [[r["bench"], "-" if r["measured"] is None else f"{r['measured']:.3f}",
              r["target"] if isinstance(r["target"], str) else f"<={r['target']:g}", verdict(r), r["note"]] for r in rows]
    print(common.table(["benchmark", "measured", "target", "result", "note"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
