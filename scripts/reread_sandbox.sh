#!/usr/bin/env bash
# Re-read every sandbox table on the committed world and backbones (issue 23 item 4), in the background:
#   nohup bash scripts/reread_sandbox.sh [STAGE ...] > runs/logs/reread_sandbox.log 2>&1 &
# STAGEs (default: all, in order): select budget ablation sweep leaderboard groups.
# Order: the val selections the presets read (noise, SynTIC's FO budget, CXE's w at the picked noise), the
# training budget (the compared rows' 48-epoch learning curves, the epochs where the oracle's flattens: `select
# --sweep budget`, which continues any shorter curve's runs), PCM-Net's 3-seed ablation at that budget, the
# faithfulness sweep, the leaderboard and the method groups. Every `workbench ablation` row is saved as it
# finishes and skipped when present, and a finished stage leaves a stamp under runs/reread/, so rerunning after an interruption continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WB=".venv/bin/python -m workbench.cli"
mkdir -p runs/reread
WANT=" ${*:-select budget ablation sweep leaderboard groups} "
stage() {   # stage NAME COMMAND...: run once, stamp when it finishes
  local name=$1; shift
  case "$WANT" in *" $name "*) ;; *) return ;; esac
  if [ -f "runs/reread/$name.done" ]; then echo "[$(date -u +%H:%M:%S)] $name: done before"; return; fi
  echo "[$(date -u +%H:%M:%S)] $name: $*"
  local t0=$SECONDS
  "$@"
  echo "$((SECONDS - t0)) s" > "runs/reread/$name.done"
  echo "[$(date -u +%H:%M:%S)] $name: $((SECONDS - t0)) s"
}
stage select      $WB select --sweep noise fo cxe_w --jobs 2
stage budget      $WB select --sweep budget --jobs 2
stage ablation    $WB ablation --profile sandbox --jobs 2
stage sweep       $WB ablation --profile sandbox --sweep --jobs 2
stage leaderboard $WB ablation --profile sandbox --methods leaderboard --jobs 2
stage groups      $WB ablation --profile sandbox --methods "entity-prompt,maccap-ablation,global-only,syntic-table4,cmsa-ablation,viecap-lm,ifcap-lm" --jobs 2
echo "[$(date -u +%H:%M:%S)] re-read done"
