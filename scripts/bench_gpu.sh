#!/usr/bin/env bash
# tam on one CUDA GPU, written where the README's GPU table is read from, in five parts:
#   OUT/tests-cuda.txt  the layer and model tests on the GPU (TAM_TEST_DEVICE=cuda), first
#   OUT-dispatch        `tam bench --suite dispatch` in float32 and bf16: the dispatch rule's constant fitted
#                       on this GPU against the shipped estimate (tam.layers.dispatch.CUDA_WRITE_COSTS)
#   OUT-bf16            the fast paths and the network step under bf16 autocast (the two ratios of issue #7)
#   OUT                 every suite in float32
#   OUT-scale           the segmentation suite (512 channels to 128×256, allocator peak against the memory
#                       model, budget 90% of the GPU's memory) and the fp16/bf16 precision matrix (issue #21)
#
#   scripts/bench_gpu.sh [OUT]        # default OUT: results/bench/<GPU name>, e.g. results/bench/h100
#
# 0.5 s of timed repetitions per timing; the tests are killed after 240 s, each bench part after 150 s and
# the scale suites after 240 s (a configuration forecast past 20 s is skipped); every record is saved as it
# is measured. Needs torch with CUDA, pytest, tqdm and matplotlib; runs from
# the source tree (no install needed). Commit the folders it prints.
# TAM_GPU_SCRIPT_DRY_RUN=1 prints the commands instead of running them (how the tests check this script on
# a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DRY=${TAM_GPU_SCRIPT_DRY_RUN:-}

if [ -n "$DRY" ]; then
  GPU="(dry run)"
else
  GPU=$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name())')
fi
NAME=$(echo "$GPU" | grep -oiE '[a-z]?[0-9]{2,4}[a-z]*' | head -1 | tr '[:upper:]' '[:lower:]' || true)
OUT=${1:-results/bench/${NAME:-cuda}}
echo "tam on $GPU -> $OUT"
step() { if [ -n "$DRY" ]; then echo "$*"; else "$@"; fi; }
[ -n "$DRY" ] || nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true

step mkdir -p "$OUT"
tests() {
  TAM_TEST_DEVICE=cuda timeout 240 "$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/layers tests/models \
    > "$OUT/tests-cuda.txt" 2>&1 || echo "layer and model tests on cuda: exit $? (see $OUT/tests-cuda.txt)"
  tail -n 3 "$OUT/tests-cuda.txt"
}
if [ -n "$DRY" ]; then
  echo "TAM_TEST_DEVICE=cuda $PYTHON -m pytest -q -rs -p no:cacheprovider tests/layers tests/models"
else
  tests
fi
bench() { step timeout "${LIMIT:-150}" "$PYTHON" -m tam.cli bench --device cuda --budget 0.5 "$@" || echo "tam bench $*: exit $?"; }
bench --suite dispatch --out "$OUT-dispatch"
bench --suite dispatch --amp bf16 --out "$OUT-dispatch-bf16"
bench --amp bf16 --suite fastpath network --out "$OUT-bf16"
bench --out "$OUT"
LIMIT=240 bench --suite segmentation precision --max-case-seconds 20 --out "$OUT-scale"
