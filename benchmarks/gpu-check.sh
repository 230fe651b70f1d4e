#!/usr/bin/env bash
# The GPU check: every CUDA path of vnas (AMP with GradScaler, cudnn.benchmark, pinned
# memory, channels_last, trilinear upsampling under deterministic mode) and the paper-scale
# figures (width 1.0, NIH's 64x96x96 patch: retraining step, search iteration, the
# 40,000-iteration search estimate, peak CUDA memory). Under 10 minutes on one GPU.
#
#   bash benchmarks/gpu-check.sh            # on a machine with a CUDA GPU
#   bash benchmarks/gpu-check.sh --smoke    # a dry run on the CPU (a minute), into a copy
#
# Writes results/bench-gpu/gpu.json and replaces the GPU section of BENCHMARKS.md (only
# that section); commit BENCHMARKS.md. `make bench` re-renders the rest of the file and
# keeps the section.
set -euo pipefail
cd "$(dirname "$0")/.."
VNAS="${VNAS:-.venv/bin/vnas}"
OUT="${OUT:-results/bench-gpu}"
MARKDOWN=BENCHMARKS.md
if [[ "${1:-}" == "--smoke" ]]; then
    # the dry run's section goes into a copy: its figures mean nothing
    mkdir -p "$OUT"
    MARKDOWN="$OUT/BENCHMARKS-dry-run.md"
    cp BENCHMARKS.md "$MARKDOWN"
    "$VNAS" bench --suite gpu --device cpu --smoke --workers 0 --out "$OUT"
else
    "$VNAS" bench --suite gpu --device cuda --out "$OUT"
fi
"$VNAS" bench --out "$OUT" --markdown "$MARKDOWN"
echo "GPU section written into $MARKDOWN"
