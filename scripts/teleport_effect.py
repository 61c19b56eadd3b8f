"""Does a gradient-ascent teleport speed up GD on the paper's task? One command:

    python scripts/teleport_effect.py [--seeds 0 1 2] [--problems 32]

Prints, per seed and teleport schedule, the median loss at step 99 and how many of the problems
diverged (non-finite loss). Problems come from the test stream.
"""

from __future__ import annotations

import argparse

import torch

from metateleport.baselines import GD
from metateleport.inner import Teleporting, run
from metateleport.tasks import PaperTaskFamily
from metateleport.teleport import AscentTeleport, Schedule

#: name -> (the step after whose update the teleport comes, its ascent steps' norm), or None
SCHEDULES = {
    "no teleport": None,
    "step 30, 8 x 0.01": (30, 0.01),
    "step 30, 8 x 0.05": (30, 0.05),
    "step 30, 8 x 0.2": (30, 0.2),
    "step 0, 8 x 0.01": (0, 0.01),
    "step 0, 8 x 0.05": (0, 0.05),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4)
    args = parser.parse_args()
    family = PaperTaskFamily()
    print(f"{'seed':>4}  {'schedule':<20} {'median@99':>10} {'diverged':>9}")
    for seed in args.seeds:
        problems = family.sample(args.problems, seed, "test")
        for name, schedule in SCHEDULES.items():
            opt = GD(args.lr) if schedule is None else Teleporting(
                GD(args.lr), AscentTeleport(8, None, schedule[1]), Schedule(at=(schedule[0],)))
            losses = run(opt, problems, 100).losses[99]
            bad = int((~torch.isfinite(losses)).sum())
            print(f"{seed:>4}  {name:<20} {losses.median().item():>10.3f} {bad:>6}/{len(losses)}")


if __name__ == "__main__":
    main()
