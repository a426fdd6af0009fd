#!/usr/bin/env bash
# Run the benchmarks and print one summary table (benchmark, measured ratio, target, PASS/MISS).
#
#   bash bench/run.sh [--quick] [--gpu]
#
#   --quick  smaller grids, fewer repeats, 1 step per window, benchmark 6 on 6 s and 18 s of 1080p: all of it in
#            382 s on a quiet 2-core CPU (2026-12-01; benchmark 6 alone 125 s, ~35 minutes when the cores are busy)
#   --gpu    also the CUDA benchmarks (full CogVideoX-5B-I2V, bf16): branch overhead, vs diffusers and memory on
#            the GPU, plus bench_gpu.py (partial load <= 12 GB, full load <= 24 GB, s/window, MFU). Without a
#            CUDA device each prints "no CUDA device: skipped".
#
# Results: bench/results/*.json. Exit status: 0 when every benchmark ran (a MISS is reported, not an error),
# 1 when one crashed.
set -u
cd "$(dirname "$0")/.."

QUICK=()
GPU=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=(--quick) ;;
    --gpu) GPU=1 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $arg (use --quick, --gpu)" >&2; exit 2 ;;
  esac
done

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi

START=$(date +%s)
FAILED=()
echo "VideoPainter benchmarks ${QUICK[*]:-full} $([ $GPU = 1 ] && echo +gpu) — $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

run() {  # run NAME CMD...: a crash is recorded, the other benchmarks still run
  local name=$1; shift
  local t0=$(date +%s)
  echo
  echo "=== $name: $*"
  if "$@"; then
    echo "=== $name done in $(( $(date +%s) - t0 )) s"
  else
    echo "=== $name CRASHED (exit $?)" >&2
    FAILED+=("$name")
  fi
}

# SDPA on both sides: the reduced ID attention runs PyTorch's flash kernel (it needs its log-sum-exp), so the
# backbone it is compared with must use the same kernel, not ComfyUI's CPU default (sub-quadratic attention)
run "1 branch overhead" "$PY" bench/bench_branch_overhead.py "${QUICK[@]}" --attention sdpa
run "2 vs diffusers" "$PY" bench/bench_vs_diffusers.py "${QUICK[@]}"
run "3 memory" "$PY" bench/bench_memory.py "${QUICK[@]}"
run "6 streaming host memory (1080p30, real server)" "$PY" bench/bench_streaming.py "${QUICK[@]}"
run "7 batch throughput" "$PY" bench/bench_batch.py "${QUICK[@]}"
run "8 source-rate interpolation (1080p)" "$PY" bench/bench_interpolate.py "${QUICK[@]}"
if [ $GPU = 1 ]; then
  run "1 branch overhead (GPU)" "$PY" bench/bench_branch_overhead.py --gpu
  run "2 vs diffusers (GPU)" "$PY" bench/bench_vs_diffusers.py --gpu
  run "3 memory (GPU)" "$PY" bench/bench_memory.py --gpu "${QUICK[@]}"
  run "4/5 partial load, throughput (GPU)" "$PY" bench/bench_gpu.py
fi

echo
echo "=== summary ($(( $(date +%s) - START )) s in all; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
SUMMARY_ARGS=(--since "$START")
[ $GPU = 1 ] && SUMMARY_ARGS+=(--gpu)
"$PY" bench/summary.py "${SUMMARY_ARGS[@]}" || FAILED+=("summary")

if [ ${#FAILED[@]} -gt 0 ]; then
  echo "crashed: ${FAILED[*]}" >&2
  exit 1
fi
exit 0
