#!/usr/bin/env bash
# Snakemake runs this once inside each new conda environment of workflow/envs/vnas.yaml
# (`--sdm conda`), after creating it. It installs vnas from the checkout whose Snakefile
# is running: the Snakefile exports that folder as VNAS_SOURCE. A path written into the
# environment file itself would be resolved against the copy Snakemake keeps under
# --conda-prefix and break there. Editable, so the rules run this checkout's code; the
# dependencies are the environment's pinned ones (--no-deps).
set -euo pipefail
: "${VNAS_SOURCE:?is not set: run Snakemake with the Snakefile of a vnas checkout}"
python -m pip install --no-deps -e "$VNAS_SOURCE"
