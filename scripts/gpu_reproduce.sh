#!/usr/bin/env bash
# CIFAR-10 preresnet56 with no attention, Non-local, TAM and XCA (the `gpu` budget of configs/reproduce/cifar10.yaml)
# within 10 minutes of one GPU: bf16 autocast, channels_last, the device-resident loader. The epoch count is
# measured on the card (tam reproduce --time-budget: the most epochs at which all runs fit) and kept in the
# output folder, so a second call continues the same runs where the first stopped.
#
#   scripts/gpu_reproduce.sh             # results/reproduce/cifar10-gpu-<card>/, README.md there is the table
#   COMPILE=1 scripts/gpu_reproduce.sh   # torch.compile each model; its compile time counts in the sizing
#   TIME_BUDGET=1500 scripts/gpu_reproduce.sh      # seconds for the grid (default 540 of the 10 minutes)
#   DATA=/path/cifar-10-python.tar.gz scripts/gpu_reproduce.sh   # where CIFAR-10 is (default: the experiment's)
#   OUT=/tmp/x DATA=tiny.tar.gz scripts/gpu_reproduce.sh --smoke  # the same path on CPU in seconds (a test)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-python}"
args=(--budget gpu --resume)
if [[ "${1:-}" == "--smoke" ]]; then
    # Tiny subsets, one epoch, float32 (bf16 on a CPU without bf16 units is slow, and tam train's autocast is
    # tested apart); the path otherwise the GPU's: sizing, preresnet56, channels_last, tables, resume.
    out="${OUT:?--smoke: set OUT to a scratch folder}"
    args+=(--device cpu --time-budget 3600 --set epochs=1 --set keep_weights=1 --set limit_train=16
           --set limit_test=16 --set batch_size=8 --set warmup_epochs=0.5 --set amp=none --quick-cost)
    [[ -n "${DATA:-}" ]] && args+=(--data "$DATA")
else
    card=$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"
print(torch.cuda.get_device_name(0))')
    slug=$(printf '%s' "$card" | tr '[:upper:]' '[:lower:]' | sed -E 's/^nvidia //; s/[^a-z0-9]+/-/g; s/^-+|-+$//g')
    out="${OUT:-results/reproduce/cifar10-gpu-$slug}"
    args+=(--device cuda --time-budget "${TIME_BUDGET:-540}")
    [[ -n "${DATA:-}" ]] && args+=(--data "$DATA")
fi
if [[ "${COMPILE:-0}" == 1 ]]; then args+=(--set compile=true); fi
"$PYTHON" -m tam.cli reproduce cifar10 "${args[@]}" --out "$out"
