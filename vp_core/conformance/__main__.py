"""``python -m vp_core.conformance FIXTURE_DIR [--case NAME] [--atol 1e-4] [--json]``

Runs every case found under ``FIXTURE_DIR/cases`` (CPU, fp32), prints the max abs error and the max abs reference
value of every compared tensor, and exits 0 only if all are within ``atol`` (for the training-step cases: within
``atol`` times that tensor's largest magnitude).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vp_core.conformance", description=__doc__.split("\n\n")[1])
    ap.add_argument("fixture_dir", type=Path)
    ap.add_argument("--case", action="append", help="run only this case (repeatable)")
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from ..base.hostenv import ensure_comfy

    ensure_comfy(cpu=True)
    import torch

    torch.manual_seed(0)
    from .runner import CASES, Fixture, run_case, tolerance

    root = args.fixture_dir
    found = [c for c in CASES if (root / "cases" / c / "params.json").is_file()]
    names = args.case or found
    unknown = [n for n in names if n not in found]
    if unknown:
        ap.error(f"no such case in {root}: {', '.join(unknown)} (found: {', '.join(found) or 'none'})")
    fx = Fixture(root)
    results, passed = {}, bool(names)
    for name in names:
        report = run_case(fx, name)
        results[name] = report
        for tensor, r in report.items():
            ok = math.isfinite(r["max_abs_err"]) and r["max_abs_err"] <= tolerance(r, args.atol)
            passed &= ok
            if not args.json:
                print(f"{name:22s} {tensor:28s} max_abs_err {r['max_abs_err']:.3e}  max_abs_ref {r['max_abs_ref']:.3e}  {'ok' if ok else 'FAIL'}")
    if args.json:
        print(json.dumps({"cases": results, "passed": passed}))
    else:
        print("PASSED" if passed else "FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
