"""Studies of learned teleportation (metateleport.studies): paired, seeded comparisons of
LSTM(update,tele) against LSTM(update), LSTM(update)+random teleports and LSTM(update)+balance,
per task family.

    python scripts/teleport_study.py STUDY [STUDY ...] [--jobs 2] [--table-only | --score-only]

Every study has a fixed list of arms (a config plus overrides) and meta-training seeds
(metateleport.studies.arms). Run (arm, seed) trains configs/<config>.yaml into
runs/studies/<study>/<arm>/s<seed> (resumed when interrupted) and is then scored on M = 64
validation and 64 test problems of its own family (seed 0 of each stream: the problems
eval_meta.py uses). Its summary, small and committed, goes to studies/<study>/<arm>/s<seed>.json:
the resolved config, the final loss of every problem, the median test curve, ms per step. A run
whose summary exists is skipped, so a stopped study goes on from there, on any machine. Then,
from the summaries alone (--table-only does only this):

- options are chosen on validation: of the arms grouped under one name (e.g. learned teleports
  with and without the balance input), the one with the lowest median over seeds of the
  validation median is "selected";
- every comparison pairs two arms on the same seeds and test problems: the median log-ratio of
  the final losses with a two-level bootstrap 95% CI (seeds, then problems), seeds won, problems
  won (metateleport.stats.paired_log_ratio);
- a study with "keep_params" (digits) also scores tuned GD and Adam on its test problems
  (hand.json) and every kept run on breast cancer through the torch.optim face, and its table
  pairs the held-out accuracy with theirs (metateleport.studies.hand);
- the frontier study adds the cost and quality of every LSTM size to its table and plots them
  (docs/figures/<study>.png, --figures);
- studies/<study>/table.md holds both tables; studies/<study>/study.log a line per finished run;
  studies/headline.md one row per family.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from metateleport.studies import (
    STUDIES,
    StudyError,
    frontier_plot,
    headline,
    load_runs,
    run_studies,
    score_hand,
    score_real_runs,
    ship_arm,
    table,
)

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("studies", nargs="+", choices=list(STUDIES))
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once (1 thread each)")
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "studies",
                   help="run folders (not committed)")
    p.add_argument("--summaries", type=Path, default=REPO / "studies",
                   help="per-run summaries and tables (committed)")
    p.add_argument("--figures", type=Path, default=REPO / "docs" / "figures",
                   help="where a frontier study's plot goes (<study>.png)")
    p.add_argument("--table-only", action="store_true",
                   help="only rebuild the tables from the summaries")
    p.add_argument("--score-only", action="store_true",
                   help="train nothing: score what is finished (studies with keep_params: "
                        "the hand optimizers, the kept runs on breast cancer), then the tables")
    p.add_argument("--arms", nargs="+", default=None,
                   help="train only these arms (default: all of each study)")
    p.add_argument("--ship", nargs="+", default=[], metavar="ARM:NAME",
                   help="copy the run of ARM (of the one study given) with the lowest "
                        "validation median into checkpoints/NAME.pt and NAME.yaml (its run "
                        "folder must be on this machine)")
    args = p.parse_args(argv)
    # absolute: the runs train with the repository as working folder (studies.runs.train)
    args.runs, args.summaries = args.runs.resolve(), args.summaries.resolve()
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.ship and len(args.studies) != 1:
        raise SystemExit("--ship needs exactly one study")
    torch.set_num_threads(1)
    if not args.table_only:
        if not args.score_only:
            run_studies(args.studies, args.arms, args.jobs, args.runs, args.summaries, REPO)
        for study in args.studies:
            if STUDIES[study].get("keep_params"):
                score_hand(study, args.summaries)
                score_real_runs(study, args.summaries)
    for study in args.studies:
        print(table(study, args.summaries))
        if STUDIES[study].get("frontier"):
            figure = frontier_plot(study, load_runs(study, args.summaries),
                                   args.figures / f"{study}.png")
            print(f"figure: {figure}" if figure else "figure: none (no matplotlib or no runs)")
    print(headline(args.summaries))
    if args.ship:
        study = args.studies[0]
        runs = load_runs(study, args.summaries)
        try:
            for item in args.ship:
                print(ship_arm(study, item, runs, args.runs, REPO / "checkpoints"))
        except StudyError as err:
            raise SystemExit(str(err)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
