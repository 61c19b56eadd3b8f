"""The generalist study (metateleport.studies.general): meta-train every missing run, resuming
half-done ones, and print the status table.

    python scripts/general_study.py train [--jobs 2] [--arms update_tele update]
    python scripts/general_study.py score     (every finished run and shipped specialist on
                                               every test suite, the family studies' runs of
                                               STUDY_SPECIALISTS on this machine on theirs,
                                               the validation histories of the runs on this
                                               machine, then the tables)
    python scripts/general_study.py status    (the tables: runs, failed seeds with and without
                                               selection, per run and suite, paired; the
                                               diag controls paired with the diag arm; the
                                               guard swapped at test time; the generalists
                                               against the specialists, paired)
    python scripts/general_study.py ship      (checkpoints/general_update*.pt and .yaml:
                                               the seed chosen on validation of the arm
                                               chosen on validation, studies.general.SHIPPED)
    python scripts/general_study.py guard-swap  (the diag arm's and its no-guard control's
                                               chosen iterates with the guard swapped,
                                               studies.general.GUARD_SWAP, then the tables)
    python scripts/general_study.py park      (every unfinished run on this machine: its newest
                                               full checkpoint, config and validation
                                               history to studies/general/<arm>/parked/,
                                               which `train` resumes from on any machine)
    python scripts/general_study.py tele-off  (the teleporting arms' chosen iterates with m1
                                               alone, their teleports switched off,
                                               studies.general.TELE_OFF, then the tables)

Every command but ship and park prints the tables and writes them to studies/general/tables.md. Each
finished run leaves studies/general/<arm>/s<seed>.json and .pt (and removes its parked folder):
commit them, and before a session ends, park and commit the unfinished runs. Run long
sessions from a snapshot of the tree (DEVELOPERS.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from metateleport.studies.general import (
    ARMS,
    SHIPPED,
    STUDY,
    all_tables,
    park_all,
    record_histories,
    score_all,
    score_guard_swap,
    score_specialists,
    score_study_specialists,
    score_tele_off,
    ship_generalist,
    train_all,
)

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what",
                   choices=["train", "score", "status", "guard-swap", "tele-off", "ship", "park"])
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once (1 thread each)")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=None, metavar="ARM",
                   help="train or score only these arms' runs (the registry's names, "
                        "metateleport/studies/general_arms.py; scoring two disjoint sets "
                        "in two processes runs them in parallel); default every arm")
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "studies")
    p.add_argument("--summaries", type=Path, default=REPO / "studies")
    args = p.parse_args(argv)
    runs, summaries = args.runs.resolve(), args.summaries.resolve()
    torch.set_num_threads(1)
    if args.what == "train":
        train_all(runs, summaries, REPO, args.jobs, args.arms)
    if args.what == "score":
        score_all(summaries, arms=args.arms)
        score_specialists(summaries, REPO / "checkpoints")
        score_study_specialists(summaries, runs)
        record_histories(runs, summaries)
    if args.what == "guard-swap":
        score_guard_swap(summaries)
    if args.what == "tele-off":
        score_tele_off(summaries)
    if args.what == "ship":
        for name in SHIPPED:
            print(ship_generalist(summaries, REPO / "checkpoints", name))
        return 0
    if args.what == "park":
        park_all(runs, summaries)
        return 0
    tables = all_tables(summaries)
    (summaries / STUDY / "tables.md").write_text(tables)
    print(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
