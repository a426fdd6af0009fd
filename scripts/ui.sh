#!/usr/bin/env bash
# Open the ComfyUI window of the host quickstart installed, with this pack, models/ and the sample clips.
#   bash scripts/ui.sh                 # http://127.0.0.1:8188 (another free port when 8188 is taken)
#   bash scripts/ui.sh --port 8190 --models-dir /data/models --cpu
# No real weights in models/: the tiny random demo weights are written there and demo-size copies of the workflows
# appear in the Workflows sidebar as demo_<name> (start with demo_videopainter_inpaint). Ctrl-C stops the host.
# Details: scripts/ui_host.py --help. Needs the installed host: bash scripts/quickstart.sh --install-only.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
if [[ ! -x .venv/bin/python || ! -f .comfyui/ComfyUI/main.py ]]; then
  echo "ui.sh: the host is not installed here: run  bash scripts/quickstart.sh --install-only  first" >&2
  exit 1
fi
exec .venv/bin/python scripts/ui_host.py "$@"
