"""Headroom of teleportation per family, update rule, norm and schedule (metateleport.oracle,
metateleport.studies.headroom):

    python scripts/oracle_headroom.py [--families paper imbalanced cond] [--rules gd PATH ...]
                                      [--eps 0.01 0.1 1 5] [--schedules once every10]
                                      [--problems 16] [--out studies/oracle] [--table-only]

What is computed, and where each result goes: metateleport.studies.headroom.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch

from metateleport.studies.headroom import FAMILIES, SCHEDULES, fill, headroom_table

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--rules", nargs="+", default=["gd", "checkpoints/update.pt"])
    p.add_argument("--eps", nargs="+", type=float, default=[0.01, 0.1, 1.0, 5.0])
    p.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=list(SCHEDULES))
    p.add_argument("--problems", type=int, default=16)
    p.add_argument("--out", type=Path, default=REPO / "studies" / "oracle")
    p.add_argument("--table-only", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        fill(args.out, args.families, args.rules, args.schedules, args.eps, args.problems, REPO,
             log=partial(print, flush=True))
    print(headroom_table(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
