#!/usr/bin/env bash
# The test command: unit tests, then every notebook top to bottom in smoke mode. Offline by design.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m pytest tests "$@"
WORKBENCH_SMOKE=1 .venv/bin/python -m pytest --nbmake --nbmake-timeout=1800 notebooks
