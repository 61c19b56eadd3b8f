#!/usr/bin/env bash
# Reproduce the shipped checkpoints and their evaluation in one command (about 4 minutes of
# meta-training and 10 s of evaluation on 2 CPU cores):
#     bash scripts/reproduce.sh [OUT=runs/repro]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/repro}"
for v in update_tele update lr_tele; do
  python train_meta.py --config "configs/$v.yaml" --out "$out/$v" --no-progress
done
python eval_meta.py --checkpoint "$out/update_tele/params.pt" \
  --baseline "$out/update/params.pt" --baseline "$out/lr_tele/params.pt" --out "$out/eval"
