"""Meta-train variants over several meta-training seeds, pick each variant's checkpoint on
validation problems and report the spread on test problems, in one command:

    python scripts/seed_study.py [--variants update_tele update lr_tele update_random_tele]
                                 [--seeds 0 1 2] [--jobs 2] [--out runs/study]
                                 [--set section.key=value ...] [--tag NAME] [--ship DIR]

Run r of variant v, seed s trains configs/<v>.yaml (plus the --set overrides) into
OUT/<v>[-TAG]/s<s>, one thread per job. A finished run (params.pt present) is reused; an
interrupted one is resumed from its newest checkpoint. Then every run is scored on

- validation: M problems of the validation stream at seed 0 (selection only), and
- test: M problems of the test stream at seed 0 (the same problems eval_meta.py uses by
  default; reported, never used to select anything),

by the median loss at step N. OUT/<v>[-TAG]/study.json and the printed table hold, per run,
the validation and test median and mean at step N and the number of diverged test problems;
the selected run is the one with the lowest validation median. With --ship DIR the selected
run's params.pt is copied to DIR/<v>.pt and its config to DIR/<v>.yaml (--ship checkpoints
replaces the shipped checkpoints). The computations are metateleport.studies (runs, seeds,
selection).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from metateleport.studies import score_splits, select_variant, ship, train

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", nargs="+",
                   default=["update_tele", "update", "lr_tele", "update_random_tele"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once (1 thread each)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "study")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override for every run (repeatable)")
    p.add_argument("--tag", default="", help="suffix of the run folders (for --set sweeps)")
    p.add_argument("--problems", type=int, default=64, help="validation and test problems M")
    p.add_argument("--ship", type=Path, default=None, metavar="DIR",
                   help="copy each variant's selected run to DIR/<variant>.pt and .yaml")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    jobs = [(v, s, args.out / (v + (f"-{args.tag}" if args.tag else "")) / f"s{s}")
            for v in args.variants for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        params = list(pool.map(lambda j: train(j[0], j[1], j[2], args.overrides, REPO), jobs))
    by_variant: dict[str, dict] = {}
    for (variant, seed, folder), path in zip(jobs, params):
        by_variant.setdefault(variant, {})[seed] = {"run": str(folder),
                                                    **score_splits(path, args.problems)}
    print(f"median (mean) loss at the last step; M = {args.problems}; overrides "
          f"{args.overrides or 'none'}")
    for variant, runs in by_variant.items():
        best, lines = select_variant(runs, args.overrides, args.problems)
        print("\n".join(lines))
        if args.ship:
            ship(Path(runs[best]["run"]), args.ship, variant)
    return 0


if __name__ == "__main__":
    sys.exit(main())
