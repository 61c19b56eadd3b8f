"""Evaluation: every optimizer on the same unseen initializations, summarized (docs/design.md
section 7).

- ``running``: ``score``, the one scorer (each optimizer run seeded and timed on the same
  problems; the studies use it too), and ``evaluate`` = ``score`` + ``summarize``;
- ``summaries``: ``EvalResult`` and ``summarize`` (losses at the reported steps with bootstrap
  intervals, steps to a threshold, time per step, loss at equal wall time, win rates);
- ``tuning``: ``tune_lr`` and ``search_lr`` (step sizes chosen on validation problems) and
  ``baselines`` (the hand-designed baselines, their grids and defaults);
- ``reports``: ``markdown_table`` and ``write_report`` (results.json, results.md, curves.png,
  TensorBoard);
- ``suite``: ``run_evaluation``, the whole of eval_meta.py, with its tuning cache.

The statistics themselves (quantiles, bootstrap intervals, win rates) are metateleport.stats.
"""

from __future__ import annotations

from .reports import RESERVED_KEYS, jsonable, markdown_table, write_report
from .running import Scored, evaluate, score
from .suite import TUNING_CACHE, EvalError, checkpoint_name, optimizer_names, run_evaluation
from .summaries import REPORT_STEPS, EvalResult, summarize
from .tuning import (
    ADAM_LR_GRID,
    BASELINES,
    DEFAULT_ADAM_LR,
    DEFAULT_BASELINES,
    DEFAULT_GD_LR,
    DEFAULT_SCHEDULE,
    GD_LR_GRID,
    LABELS,
    LR_BOUNDS,
    SCHEDULE_LR_GRID,
    SCHEDULE_SWITCH_GRID,
    baselines,
    default_schedule_grid,
    search_lr,
    tune_lr,
)

__all__ = [
    "ADAM_LR_GRID",
    "BASELINES",
    "DEFAULT_ADAM_LR",
    "DEFAULT_BASELINES",
    "DEFAULT_GD_LR",
    "DEFAULT_SCHEDULE",
    "GD_LR_GRID",
    "LABELS",
    "LR_BOUNDS",
    "REPORT_STEPS",
    "RESERVED_KEYS",
    "SCHEDULE_LR_GRID",
    "SCHEDULE_SWITCH_GRID",
    "TUNING_CACHE",
    "EvalError",
    "EvalResult",
    "Scored",
    "baselines",
    "checkpoint_name",
    "default_schedule_grid",
    "evaluate",
    "jsonable",
    "markdown_table",
    "optimizer_names",
    "run_evaluation",
    "score",
    "search_lr",
    "summarize",
    "tune_lr",
    "write_report",
]
