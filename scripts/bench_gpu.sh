#!/usr/bin/env bash
# The full `tam bench` on one CUDA GPU, written where the README's GPU table is read from.
#
#   scripts/bench_gpu.sh [OUT]        # default OUT: results/bench/<GPU name>, e.g. results/bench/h100
#
# About 3 minutes on an H100 (every suite, 0.5 s of timed repetitions per timing); killed at 290 s so a
# 5-minute device slot always returns what it wrote. Needs torch with CUDA, tqdm and matplotlib; runs
# from the source tree (no install needed). Commit the folder it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

GPU=$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name())')
NAME=$(echo "$GPU" | grep -oiE '[a-z]?[0-9]{2,4}[a-z]*' | head -1 | tr '[:upper:]' '[:lower:]')
OUT=${1:-results/bench/${NAME:-cuda}}
echo "tam bench on $GPU -> $OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
timeout 290 "$PYTHON" -m tam.cli bench --device cuda --budget 0.5 --out "$OUT"
