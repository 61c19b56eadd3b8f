"""Held-out accuracy at equal training loss on the real sets (metateleport.studies.equal_loss):

    python scripts/real_equal_loss.py score [--arms A ...] [--sets digits ...] [--problems 32]
        [--long-steps 2000] [--summaries studies]
    python scripts/real_equal_loss.py table [--summaries studies]

``score`` traces every committed run of the general study's ``--arms`` (default: the shipped
teleporting generalist's arm, the bound-1 arm it replaced, the generalist LSTM(update)) and
tuned SGD and Adam on the real sets' test problems, skipping the (arm, seed, set) whose
summary is in studies/general/equal_loss/, then writes the table; ``table`` rebuilds
studies/general/equal_loss/table.md from the summaries alone and prints it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from metateleport.studies import equal_loss, general
from metateleport.studies.realdata import REAL_SETS

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["score", "table"])
    p.add_argument("--arms", nargs="+", default=list(equal_loss.ARMS), choices=list(general.ARMS))
    p.add_argument("--sets", nargs="+", default=list(REAL_SETS), choices=list(REAL_SETS))
    p.add_argument("--problems", type=int, default=32, help="test problems (seeds 0..N-1)")
    p.add_argument("--long-steps", type=int, default=2000,
                   help="steps of the hand optimizers' traced path")
    p.add_argument("--summaries", type=Path, default=REPO / "studies")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.command == "score":
        equal_loss.score_all(args.summaries, args.arms, args.sets, args.problems,
                             args.long_steps)
    labels = {arm: general.ARMS[arm][2] for arm in args.arms}
    text = equal_loss.table(args.summaries, labels)
    out = args.summaries / equal_loss.FOLDER / "table.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Held-out accuracy at equal training loss\n\n"
                   "Regenerate: `python scripts/real_equal_loss.py table` (from the summaries "
                   "here); `score` adds missing runs.\n\n" + text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
