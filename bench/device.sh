#!/usr/bin/env bash
# The GPU benchmarks that matter, in one command, for a machine with one NVIDIA GPU and no network:
#
#   bash bench/device.sh [--dry-run]
#
# Full-size CogVideoX-5B-I2V (42 layers) + branch (2) with random bf16 weights drawn on the GPU, 49 x 480 x 720
# (13 x 60 x 90 latents), CFG batch 2:
#   1. seconds per step: backbone, + branch, + ID resampling (reduced form and the reference's literal form,
#      window 0 and window > 0, 25 % holes)            bench_branch_overhead.py --gpu
#   2. ours vs diffusers' CogVideoXTransformer3DModel on the same weights (SDPA)   bench_vs_diffusers.py --gpu
#   3. peak memory: everything on the card, and emulated 24 GB and 12 GB cards (ComfyUI --reserve-vram +
#      a hard per-process cap; partial loading through comfy.ops); on the full card also the backbone stored
#      as fp8_e4m3fn and one window's VAE decode (49 x 480 x 720)                  bench_gpu.py
#   4. training: seconds per step and peak memory of one training step (branch task, ID-LoRA task), with and
#      without gradient checkpointing, full size, batch 1                           bench_train.py --gpu
# then one summary table (bench/summary.py --gpu). Budget: under 8 minutes on an H100/H200-class card (+ the
# training row, ~2 minutes: not yet run on a GPU).
#
# What must be on the machine (nothing is downloaded): this repository, the .venv with torch (CUDA build),
# diffusers, transformers, safetensors and psutil at the pinned versions (scripts/host_pins.txt, requirements.txt),
# and the pinned ComfyUI host (.comfyui/ComfyUI, see scripts/quickstart.sh). No model files: all weights are random.
#
# --dry-run: no GPU needed; checks the scripts' code paths on the CPU (bench_gpu.py --smoke) and prints the
# commands a real run makes. Results: bench/results/*_gpu.json and gpu.json; exit 1 if a benchmark crashed.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
DRY=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "device.sh: unknown argument $arg (use --dry-run)" >&2; exit 2 ;;
  esac
done

COMMANDS=(
  "1 ID + branch per step|$PY bench/bench_branch_overhead.py --gpu --repeats 3"
  "2 vs diffusers|$PY bench/bench_vs_diffusers.py --gpu --attention sdpa --repeats 3"
  "3 memory: full load + 12 GB card|$PY bench/bench_gpu.py --modes full,lowvram --cap-gb 12 --attention sdpa --steps 2"
  "3 memory: 24 GB card (own table)|$PY bench/bench_gpu.py --modes lowvram --cap-gb 24 --attention sdpa --steps 2 --out bench/results/24gb"
  "4 training step (branch, id-lora; grad ckpt on/off)|$PY bench/bench_train.py --gpu --repeats 2"
)

START=$(date +%s)
if [ $DRY = 1 ]; then
  echo "device.sh --dry-run: CPU check of the GPU benchmark's code paths, then the commands a GPU run makes"
  "$PY" bench/bench_gpu.py --smoke || { echo "bench_gpu.py --smoke failed" >&2; exit 1; }
  "$PY" -c "import sys; sys.path.insert(0, 'bench'); import bench_branch_overhead, bench_vs_diffusers, bench_train, summary" \
    || { echo "a benchmark does not import" >&2; exit 1; }
  for c in "${COMMANDS[@]}"; do echo "would run: ${c#*|}"; done
  echo "would run: $PY bench/summary.py --gpu --since $START"
  exit 0
fi

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "device.sh: no CUDA device visible to $PY (use --dry-run on a machine without one)" >&2
  exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
FAILED=()
for c in "${COMMANDS[@]}"; do
  name=${c%%|*}; cmd=${c#*|}
  t0=$(date +%s)
  echo; echo "=== $name: $cmd"
  if $cmd; then echo "=== $name done in $(( $(date +%s) - t0 )) s"; else echo "=== $name CRASHED" >&2; FAILED+=("$name"); fi
done
echo; echo "=== summary ($(( $(date +%s) - START )) s in all)"
"$PY" bench/summary.py --gpu --since "$START" || FAILED+=("summary")
[ ${#FAILED[@]} -eq 0 ] || { echo "crashed: ${FAILED[*]}" >&2; exit 1; }
