#!/usr/bin/env bash
# The second test host (CI only; users never need it): ComfyUI 0.27.0 in its own venv, beside the pinned 0.3.75.
#   bash scripts/quickstart.sh --install-only --with-host-027   # what .ci/run does (calls this script)
#   bash scripts/test.sh --host-027 [pytest args]               # the suite against it
# Builds, idempotently (each step skipped when done):
#   .venv-027/            Python 3.11 with ../shared/hosts/pins-comfyui-0.27.0.txt, then every line of
#                         scripts/host_pins.txt and requirements.txt whose package those pins do not name (the
#                         pack's requirements and the test pins; the 0.27 pins win where both name a package)
#   .comfyui-027/ComfyUI  unpacked from ../shared/hosts/comfyui-0.27.0-77917ed3.tar.gz, this pack linked into its
#                         custom_nodes
# Tests find that tree through VP_COMFYUI_DIR (vp_core/base/hostenv.py); vp_headless/comfy_client.py starts the server with
# the Python running the tests and the tree hostenv finds (scripts/test.sh --host-027 sets both).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
HOSTS="$REPO/../shared/hosts"
TARBALL="$HOSTS/comfyui-0.27.0-77917ed3.tar.gz"
PINS="$HOSTS/pins-comfyui-0.27.0.txt"
VENV="$REPO/.venv-027"
PY="$VENV/bin/python"
COMFY_VERSION="0.27.0"
COMFY_DIR="$REPO/.comfyui-027/ComfyUI"
step() { printf '\n==> [host 0.27] %s\n' "$*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" || true; }

for f in "$TARBALL" "$PINS"; do
  [[ -f "$f" ]] || { echo "host027.sh: $f not found (the second test host lives in ../shared/hosts)" >&2; exit 1; }
done

# (1) venv -------------------------------------------------------------------------------------------------------
if [[ ! -x "$PY" ]]; then
  step "creating .venv-027 with python3.11"
  command -v python3.11 >/dev/null || { echo "python3.11 is required" >&2; exit 1; }
  python3.11 -m venv "$VENV"
fi

# (2) requirements: the 0.27 pins first, then what the pack and its tests add ----------------------------------------
REQS="$VENV/.vp_requirements-027.txt"
"$PY" - "$PINS" scripts/host_pins.txt requirements.txt > "$REQS.tmp" <<'EOF'
import re
import sys

def name(line):
    line = line.split("#")[0].strip()
    return re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower().replace("_", "-") if line else None

seen, out = set(), []
for path in sys.argv[1:]:
    for line in open(path).read().splitlines():
        n = name(line)
        if n and n not in seen:
            seen.add(n)
            out.append(line.split("#")[0].strip())
print("\n".join(out))
EOF
mv "$REQS.tmp" "$REQS"
STAMP="$VENV/.vp_requirements.sha256"
WANT="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]]; then
  step "installing the 0.27.0 host pins + the pack's requirements into .venv-027 (first time: several minutes)"
  t0="$(now)"
  "$PY" -m pip install --disable-pip-version-check -q -r "$REQS" 2> >(quiet_pip >&2)
  echo "$WANT" > "$STAMP"
  echo "installed in $(elapsed "$t0")"
else
  echo "host 0.27 requirements: up to date (.venv-027)"
fi

# (3) the ComfyUI 0.27.0 tree ------------------------------------------------------------------------------------
TAR_SUM="$(sha256sum "$TARBALL" | cut -d' ' -f1)"
if [[ "$(cat .comfyui-027/SOURCE 2>/dev/null || true)" != "$TAR_SUM" || ! -f "$COMFY_DIR/main.py" ]]; then
  step "unpacking ComfyUI $COMFY_VERSION into .comfyui-027/ComfyUI"
  rm -rf .comfyui-027
  mkdir -p .comfyui-027
  tar -xzf "$TARBALL" -C .comfyui-027
  grep -q "\"$COMFY_VERSION\"" "$COMFY_DIR/comfyui_version.py" || { echo "unexpected ComfyUI version in $COMFY_DIR" >&2; exit 1; }
  echo "$TAR_SUM" > .comfyui-027/SOURCE
else
  echo "ComfyUI $COMFY_VERSION: present (.comfyui-027/ComfyUI)"
fi

# (4) link the pack (vp_headless/comfy_client.py's link_pack, as the e2e server does) ------------------------------------
"$PY" -c 'import sys; from pathlib import Path; sys.path.insert(0, "scripts"); import vp_pack; from videopainter.vp_headless import comfy_client as cc
print("pack linked:", cc.link_pack(Path(sys.argv[1]) / "custom_nodes"), "->", cc.REPO_ROOT)' "$COMFY_DIR"
