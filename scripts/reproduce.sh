#!/usr/bin/env bash
# Reproduce the shipped checkpoints, the seed spread and the README's tables in one command:
#     bash scripts/reproduce.sh [OUT=runs/repro]
# Meta-trains LSTM(update,tele), LSTM(update) and the random-teleport ablation on meta-training
# seeds 0-4 and LSTM(lr,tele) on seeds 0-2 (18 runs, two at a time with one thread each: about
# 25 minutes on 2 CPU cores), selects each variant's run by its validation loss, copies it to
# OUT/selected/ (not over the shipped checkpoints/), and evaluates the selection on 64 unseen
# initializations. Finished runs are reused, interrupted ones resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/repro}"
python scripts/seed_study.py --variants update_tele update update_random_tele --seeds 0 1 2 3 4 \
  --out "$out" --ship "$out/selected"
python scripts/seed_study.py --variants lr_tele --seeds 0 1 2 --out "$out" --ship "$out/selected"
python eval_meta.py --checkpoint "$out/selected/update_tele.pt" "$out/selected/update.pt" \
  "$out/selected/lr_tele.pt" --out "$out/eval" --overwrite
python eval_meta.py --checkpoint "$out/selected/update_tele.pt" "$out/selected/update.pt" \
  "$out/selected/update_random_tele.pt" --baselines gd_schedule --out "$out/ablation" --overwrite
