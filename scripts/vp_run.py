"""Run an API-format ComfyUI workflow headless (see vp_headless/run.py; README 'Headless runner').

    .venv/bin/python scripts/vp_run.py --help
"""
import sys

import vp_pack  # noqa: F401  (registers this repository as the package 'videopainter')
from videopainter.vp_headless.run import main

if __name__ == "__main__":
    sys.exit(main())
