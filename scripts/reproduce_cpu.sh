#!/usr/bin/env bash
# The cpu-budget accuracy grids of issue #22 on this CPU, in order, resumable: cifar10 (none, Non-local and TAM
# at 1 and 8 heads, Criss-cross, then the kinds the cifar10 grid adds last), then the geometry ablation, which
# reads its two full-geometry cells (nl-h1, tam-h1) from the cifar10 folder instead of training them again.
# A second call skips finished runs and resumes an interrupted one from its last epoch. JOBS runs train at once
# (default 2), sharing the torch threads (OMP_NUM_THREADS, default this machine's 2 cores) equally.
#
#   scripts/reproduce_cpu.sh                       # results/reproduce/{cifar10,geometry}-cpu3
#   PYTHON=/work/venv/bin/python OUT=/tmp/grid scripts/reproduce_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"   # torch threads: this machine's 2 cores
PYTHON="${PYTHON:-python}"
JOBS="${JOBS:-2}"
OUT="${OUT:-results/reproduce}"

"$PYTHON" -m tam.cli reproduce cifar10 --budget cpu --device cpu --out "$OUT/cifar10-cpu3" --resume \
    --jobs "$JOBS"
"$PYTHON" -m tam.cli reproduce geometry --budget cpu --device cpu --out "$OUT/geometry-cpu3" --resume \
    --jobs "$JOBS" --reuse "$OUT/cifar10-cpu3"
