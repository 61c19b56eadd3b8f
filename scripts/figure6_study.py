"""The Figure 6 study (metateleport.studies.figure6, docs/generalization.md): search the step
sizes on validation seeds and run every missing (optimizer, condition, seed), or print the
table from the committed summaries and draw docs/figures/figure6.png (if matplotlib is there).

    python scripts/figure6_study.py run [--optimizers adagrad momentum rmsprop adam]
    python scripts/figure6_study.py table

Each finished run leaves studies/figure6/<optimizer>/<condition>/s<seed>.json and the search
<optimizer>/tuning.json (commit them); what is there is skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from metateleport.studies.figure6 import OPTIMIZERS, Figure6Study, figure, run, table

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["run", "table"])
    p.add_argument("--optimizers", nargs="+", choices=list(OPTIMIZERS), default=None)
    p.add_argument("--summaries", type=Path, default=REPO / "studies")
    p.add_argument("--figure", type=Path, default=REPO / "docs" / "figures" / "figure6.png")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    study, summaries = Figure6Study(), args.summaries.resolve()
    if args.what == "run":
        run(study, summaries, args.optimizers)
    print(table(study, summaries))
    if args.what == "table":
        drawn = figure(study, summaries, args.figure)
        print(f"\nfigure: {drawn}" if drawn else "\nfigure: skipped (no matplotlib or no runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
