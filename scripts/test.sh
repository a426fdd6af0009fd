#!/usr/bin/env bash
# Run the whole test suite (or the pytest arguments given) in the project's .venv.
#   bash scripts/test.sh                  # everything: tests/unit, tests/nodes, tests/e2e (starts the real host)
#   bash scripts/test.sh -m "not e2e"     # skip the server tests
#   bash scripts/test.sh --host-027 ...   # the same against the second test host, ComfyUI 0.27.0 (.venv-027 and
#                                         # .comfyui-027, built by: bash scripts/quickstart.sh --install-only --with-host-027)
# Pytest's exit code 5 ("no tests collected") is turned into a failure so CI never passes on an empty run.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
SETUP="bash scripts/quickstart.sh --install-only"
if [[ "${1:-}" == "--host-027" ]]; then
  shift
  VENV=.venv-027
  SETUP="$SETUP --with-host-027"
  # vp_core/base/hostenv.py (tests, tools) and vp_headless/comfy_client.py (the e2e server) take the host from here.
  export VP_COMFYUI_DIR="$PWD/.comfyui-027/ComfyUI"
  [[ -f "$VP_COMFYUI_DIR/main.py" ]] || { echo "test.sh: $VP_COMFYUI_DIR missing; run: $SETUP" >&2; exit 1; }
fi
if [[ ! -x $VENV/bin/python ]]; then
  echo "test.sh: $VENV missing; run: $SETUP" >&2
  exit 1
fi
$VENV/bin/python -m pytest -q "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "test.sh: pytest collected no tests (exit 5); treating it as a failure" >&2
  exit 1
fi
exit $rc
