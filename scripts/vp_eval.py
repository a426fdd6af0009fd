"""Evaluate an API workflow on VPBench or DAVIS as the paper does (see vp_headless/evaluate.py; README 'Evaluation').

    .venv/bin/python scripts/vp_eval.py --help
"""
import sys

import vp_pack  # noqa: F401  (registers this repository as the package 'videopainter')
from videopainter.vp_headless.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
