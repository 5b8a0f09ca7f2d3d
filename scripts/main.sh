#!/usr/bin/env bash
# The main job: install if needed, then run every notebook top to bottom on the sandbox profile.
# Executed copies and figures land in runs/main/<timestamp>/ (git-ignored). Extra args go to the runner
# (e.g. --smoke, --only 01).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m workbench.run_notebooks "$@"
