"""Learned optimizers on real data through the torch.optim face, against tuned SGD and Adam
(metateleport.studies.realdata): one markdown table per set.

    python scripts/real_data_scores.py breast_cancer digits --params checkpoints/update.pt \
        checkpoints/paper_update_tele.pt [--problems 32] [--steps 100] [--no-teleport]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from metateleport.studies.realdata import REAL_SETS, hand_results, real_table, score_real


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sets", nargs="+", choices=list(REAL_SETS), metavar="NAME",
                   help=f"real sets: {', '.join(REAL_SETS)}")
    p.add_argument("--params", nargs="*", type=Path, default=[],
                   help="params checkpoints (none: the hand optimizers alone)")
    p.add_argument("--problems", type=int, default=32, help="test problems (seeds 0..N-1)")
    p.add_argument("--steps", type=int, default=100, help="full-batch steps per problem")
    p.add_argument("--no-teleport", action="store_true",
                   help="step a teleporting checkpoint's m1 alone (no opt.teleport calls)")
    p.add_argument("--json", type=Path, default=None, help="also write every result here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    everything = {}
    for name in args.sets:
        hand = hand_results(name, args.problems, args.steps)
        scores = [score_real(params, name, args.problems, args.steps, hand=hand,
                             teleport=not args.no_teleport) for params in args.params]
        scores = scores or [score_real(None, name, args.problems, args.steps, hand=hand)]
        everything[name] = scores
        print(real_table(scores), end="\n\n", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
