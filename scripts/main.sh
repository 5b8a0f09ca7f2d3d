#!/usr/bin/env bash
# The main job: install if needed, then run every notebook top to bottom on the sandbox profile.
# Default: the quick scale (about 15 min on 2 cores; one seed, smaller sets, shorter training; each
# notebook prints what differs). --full reproduces the README's tables (hours). It prints the plan with the
# expected time of each notebook first, and at the end where the executed notebooks, figures and rows are
# (runs/main/<timestamp>/, git-ignored). Extra args go to the runner (e.g. --smoke, --only 01).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m workbench.experiments.notebooks "$@"
