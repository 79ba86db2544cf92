#!/usr/bin/env bash
# `tam bench` on one CUDA GPU, written where the README's GPU table is read from, in two parts:
#   OUT-bf16  the fast paths and the network step under bf16 autocast (the two ratios of issue #7)
#   OUT       every suite in float32
#
#   scripts/bench_gpu.sh [OUT]        # default OUT: results/bench/<GPU name>, e.g. results/bench/h100
#
# 0.5 s of timed repetitions per timing; each part is killed after 150 s, so the script returns within
# 5 minutes with what it wrote (every record is saved as it is measured). Needs torch with CUDA, tqdm and
# matplotlib; runs from the source tree (no install needed). Commit the folders it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

GPU=$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name())')
NAME=$(echo "$GPU" | grep -oiE '[a-z]?[0-9]{2,4}[a-z]*' | head -1 | tr '[:upper:]' '[:lower:]')
OUT=${1:-results/bench/${NAME:-cuda}}
echo "tam bench on $GPU -> $OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
bench() { timeout 150 "$PYTHON" -m tam.cli bench --device cuda --budget 0.5 "$@" || echo "tam bench $*: exit $?"; }
bench --amp bf16 --suite fastpath network --out "$OUT-bf16"
bench --out "$OUT"
