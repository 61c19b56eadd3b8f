"""Studies of learned teleportation: paired, seeded comparisons of LSTM(update,tele) against
LSTM(update), LSTM(update)+random teleports and LSTM(update)+balance, per task family, and the
measurements around them. The commands are scripts/teleport_study.py, seed_study.py,
teleport_ablation.py and oracle_headroom.py; what they compute is here:

- ``arms``: the registry (STUDIES: arms, groups chosen on validation, comparisons, headline);
- ``runs``: meta-training one (arm, seed), scoring it (with evaluation.score, the one scorer)
  and its committed summary;
- ``selection``: choice on validation (of an arm among a group, of a seed among an arm's or a
  variant's runs) and shipping the selected run as a checkpoint;
- ``tables``: studies/<study>/table.md and studies/headline.md, from the summaries alone;
- ``seeds``: the seed study (variants over seeds, selected on validation);
- ``ablation``: test-time ablations of a trained m2;
- ``hand``: held-out accuracy against tuned GD and Adam, and on real sets (digits study);
- ``headroom``: the oracle's headroom per family, update rule, norm and schedule;
- ``frontier``: the cost and quality of m1's and m2's LSTM sizes (the frontier study).
"""

from __future__ import annotations

from .ablation import VERSIONS, ablate, ablation_table, run_ablation, versions
from .arms import PROBLEMS, SEEDS, STUDIES, StudyError, seeds_of
from .frontier import frontier_lines, frontier_plot
from .hand import hand_table, score_hand, score_real_runs
from .headroom import headroom, headroom_table
from .runs import load_runs, run_one, run_studies, score_run, train
from .seeds import score_splits, select_variant
from .selection import (
    best_seed,
    choose,
    complete,
    ship,
    ship_arm,
    validation_key,
    validation_score,
)
from .tables import compare, headline, held_out_table, table

__all__ = [
    "PROBLEMS",
    "SEEDS",
    "STUDIES",
    "VERSIONS",
    "StudyError",
    "ablate",
    "ablation_table",
    "best_seed",
    "choose",
    "compare",
    "complete",
    "frontier_lines",
    "frontier_plot",
    "headline",
    "headroom",
    "headroom_table",
    "hand_table",
    "held_out_table",
    "load_runs",
    "run_ablation",
    "run_one",
    "run_studies",
    "score_hand",
    "score_real_runs",
    "score_run",
    "score_splits",
    "seeds_of",
    "select_variant",
    "ship",
    "ship_arm",
    "table",
    "train",
    "validation_key",
    "validation_score",
    "versions",
]
