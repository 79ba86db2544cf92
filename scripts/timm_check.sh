#!/usr/bin/env bash
# tam inside the real timm: builds a venv of its own with the package index's torch, torchvision and timm
# (outside the repository; a CPU-only torch beside the index's torchvision does not import, so it cannot be the
# development venv), installs tam from this checkout into it, and runs the tests marked `timm`.
#
#   scripts/timm_check.sh [OUT]     OUT: folder for timm_check.txt (default runs/timm; results/timm is the
#                                   committed one). TAM_TIMM_VENV: the venv (default ~/.cache/tam/timm-venv,
#                                   kept between runs: the first install downloads several GB).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-runs/timm}
venv=${TAM_TIMM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tam/timm-venv}

if [ ! -x "$venv/bin/python" ]; then
    echo "timm_check: creating $venv" >&2
    python3 -m venv "$venv"
fi
echo "timm_check: installing timm, torch, torchvision and pytest into $venv" >&2
"$venv/bin/pip" install -q --disable-pip-version-check timm torchvision pytest 2>&1 | grep -v "is ignored" >&2 || true

# Install tam from a copy of the checkout, so that the build leaves nothing in the repository.
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
cp -r "$root/src" "$root/pyproject.toml" "$root/README.md" "$copy/"
"$venv/bin/pip" install -q --disable-pip-version-check "$copy" 2>&1 | grep -v "is ignored" >&2 || true

# The checkout's state before this run writes its report (which may lie inside the checkout).
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
mkdir -p "$out"
report="$out/timm_check.txt"
{
    echo "# scripts/timm_check.sh: tests marked timm, with the real timm"
    echo "date (UTC): $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine: $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
    echo "tam commit: $commit"
    "$venv/bin/python" -c "import sys, torch, torchvision, timm, tam; print(f'python {sys.version.split()[0]}, torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, tam {tam.__version__} from {tam.__file__}')"
    echo
} > "$report"
cd "$root"
set +e
"$venv/bin/python" -m pytest -p no:cacheprovider -v -m timm tests/test_timm.py 2>&1 | tee -a "$report"
status=${PIPESTATUS[0]}
echo "timm_check: wrote $report" >&2
exit "$status"
