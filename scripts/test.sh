#!/usr/bin/env bash
# The test command: unit tests, every notebook top to bottom in smoke mode, then the notebooks in JupyterLab
# in headless Chromium (skipped, with the reason, where Debian's chromium and chromium-driver are missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m pytest tests "$@"
WORKBENCH_SMOKE=1 .venv/bin/python -m pytest --nbmake --nbmake-timeout=1800 notebooks
.venv/bin/python -m pytest -m browser -rs tests/test_browser.py
