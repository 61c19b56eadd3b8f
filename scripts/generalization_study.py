"""The generalization study (metateleport.studies.generalization, docs/generalization.md): run
every missing (set, condition, seed), or print the tables from the committed summaries.

    python scripts/generalization_study.py run [--sets digits breast_cancer]
    python scripts/generalization_study.py table

Each finished run leaves studies/generalization/<set>/<condition>/s<seed>.json (commit them);
a run whose summary is there is skipped, so a stopped session goes on from there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from metateleport.studies.generalization import GeneralizationStudy, run, table

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    study = GeneralizationStudy()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["run", "table"])
    p.add_argument("--sets", nargs="+", choices=list(study.setups), default=None)
    p.add_argument("--summaries", type=Path, default=REPO / "studies")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.what == "run":
        run(study, args.summaries.resolve(), args.sets)
    print(table(study, args.summaries.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
