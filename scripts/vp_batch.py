"""Run many workflow jobs on a Ray cluster or locally (see vp_headless/batch.py; README 'Many clips, many GPUs').

    .venv/bin/python scripts/vp_batch.py --help
"""
import sys

import vp_pack  # noqa: F401  (registers this repository as the package 'videopainter')
from videopainter.vp_headless.batch import main

if __name__ == "__main__":
    sys.exit(main())
