"""What the learned teleports of a trained LSTM(update,tele) do: test-time ablations of the runs of
one study arm (no retraining; metateleport.studies.ablation):

    python scripts/teleport_ablation.py [--study imbalanced] [--arm update_tele-skip]

For every meta-training seed whose run folder runs/studies/<study>/<arm>/s<seed> holds params.pt,
the trained optimizer runs on the 64 test problems of its family (seed 0 of the test stream, as in
the study) as trained, and with its m2 replaced at test time by:

- "none": no teleports (m1 alone, as co-trained with m2);
- "balance": the closed-form balancing teleport after every update;
- "skip only": m2's LSTM head silenced, so T = a * (balance signal) on the diagonal;
- "LSTM only": the skip silenced (a = 0), so T is what m2's LSTM writes.

Writes studies/<study>/ablation-<arm>.md (median test loss at the last step per seed and the
median over seeds) and one JSON per seed beside it, studies/<study>/<arm>/ablation-s<seed>.json,
committed like the study summaries: a seed with a JSON is not run again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from metateleport.studies import StudyError, run_ablation

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", default="imbalanced")
    p.add_argument("--arm", default="update_tele-skip")
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "studies")
    p.add_argument("--summaries", type=Path, default=REPO / "studies")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        text = run_ablation(args.study, args.arm, args.runs, args.summaries)
    except StudyError as err:
        raise SystemExit(str(err)) from None
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
