#!/usr/bin/env bash
# Retrain the sandbox backbones on the current world and recalibrate (issue 23), in the background:
#   nohup bash scripts/retrain_sandbox.sh > runs/logs/retrain_sandbox.log 2>&1 &
# Every stage is resumable (checkpoints under runs/), so rerunning after an interruption continues where it
# stopped; a stage whose output is newer than its input is skipped. Order: CLIP -> SD (VAE, UNet, decoder) ->
# synthesis calibration (strength chosen on val) -> caption-world calibration table.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=.venv/bin/python
stamp() { date -u +%H:%M:%S; }
if [ ! -f data/sandbox_clip.json ] || [ "${FRESH_CLIP:-0}" = 1 ]; then
  echo "[$(stamp)] CLIP"; $PY -m workbench.backbones.sandbox_clip --preset sandbox
fi
if [ ! -f data/sandbox_sd/workbench_manifest.json ] || [ data/sandbox_clip.safetensors -nt data/sandbox_sd/workbench_manifest.json ]; then
  echo "[$(stamp)] SD"; $PY -m workbench.backbones.sandbox_sd --preset sandbox
fi
if [ ! -f data/sandbox_synthesis.json ] || [ data/sandbox_sd/workbench_manifest.json -nt data/sandbox_synthesis.json ]; then
  echo "[$(stamp)] synthesis calibration"; $PY -m workbench.experiments.calibrate
fi
echo "[$(stamp)] caption-world calibration"; $PY -m workbench.experiments.calibrate --world
echo "[$(stamp)] done"
