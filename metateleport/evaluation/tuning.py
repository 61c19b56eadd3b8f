"""Step-size search and the hand-designed baselines.

``tune_lr`` picks the best of a grid of step-size settings on validation problems, ``search_lr``
widens a log grid until its choice is interior, and ``baselines`` builds GD, Adam, GD with
gradient-ascent teleports, GD with a two-phase step size and GD / Adam with a balancing
teleport, their step sizes tuned that way (or fixed, without tuning).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..baselines import GD, Adam, GDSchedule
from ..inner import InnerOptimizer, Teleporting, run
from ..learned import VARIANTS
from ..stats import quantile
from ..tasks import Problems
from ..teleport import AscentTeleport, BalanceTeleport, Schedule

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
    "SCHEDULE_LR_GRID",
    "SCHEDULE_SWITCH_GRID",
    "baselines",
    "default_schedule_grid",
    "search_lr",
    "tune_lr",
]

GD_LR_GRID = (1e-4, 2e-4, 3e-4, 5e-4, 7e-4, 1e-3)
ADAM_LR_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
# GD two-phase: (switch, lr_first, lr) with lr_first from GD_LR_GRID and lr > lr_first.
SCHEDULE_SWITCH_GRID = (1, 3, 10)
SCHEDULE_LR_GRID = (3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2)
DEFAULT_GD_LR = 3e-4
DEFAULT_ADAM_LR = 1e-2
DEFAULT_SCHEDULE = (1, 1e-4, 5e-3)  # tuned on 64 validation problems of the paper's task

#: the hand-designed baselines, in table order
BASELINES = ("gd", "adam", "gd_tele", "gd_schedule", "gd_balance", "adam_balance")
#: what eval_meta.py runs unless --baselines says otherwise
DEFAULT_BASELINES = ("gd", "adam", "gd_tele", "gd_schedule")
#: results.json name -> display name
LABELS = {"gd": "GD", "adam": "Adam", "gd_tele": "GD+teleport", "gd_schedule": "GD two-phase",
          "gd_balance": "GD+balance", "adam_balance": "Adam+balance",
          **{f"lstm_{v}": label for v, label in VARIANTS.items()}}


def _score(make_opt, problems: Problems, n_steps: int, entry) -> tuple[float, bool]:
    """(median final loss, whether no run diverged) of one step-size setting."""
    final = run(make_opt(entry), problems, n_steps).losses[-1]
    return float(quantile(final, 0.5)), bool(torch.isfinite(final).all())


def _choose(table: dict, stable: dict) -> Any:
    """The lowest median among stable entries (among all if none is stable); ties go to the
    earlier entry."""
    return min([e for e in table if stable[e]] or list(table), key=table.__getitem__)


def tune_lr(
    make_opt: Callable[[Any], InnerOptimizer],
    problems: Problems,
    n_steps: int,
    grid: Sequence[Any],
) -> tuple[Any, dict[Any, float]]:
    """Pick the grid entry (a learning rate, or a tuple of step-size settings) with the lowest
    median final loss after ``n_steps`` on ``problems`` (validation problems, never the test
    ones), among those with which no run diverged; only if every one diverges somewhere, among
    all. (By the median alone GD took 5e-4, which then diverged on 14 of 64 test problems.)

    Returns (best entry, {entry: median final loss}); a diverged run counts as +inf, ties go to
    the earlier grid entry.
    """
    if not grid:
        raise ValueError("empty learning-rate grid")
    table, stable = {}, {}
    for entry in grid:
        table[entry], stable[entry] = _score(make_opt, problems, n_steps, entry)
    return _choose(table, stable), table


#: the widest range a step-size search may reach
LR_BOUNDS = (1e-8, 1.0)
_WIDEN = 10 ** 0.5


def search_lr(
    make_opt: Callable[[float], InnerOptimizer],
    problems: Problems,
    n_steps: int,
    grid: Sequence[float],
    bounds: tuple[float, float] = LR_BOUNDS,
) -> tuple[float, dict[float, float], dict[str, Any]]:
    """``tune_lr`` over a log grid of step sizes that widens until its choice is interior.

    Starting from ``grid``, while no step size is stable on every problem, or the chosen one is
    the smallest or the largest tried, the grid is extended by a factor sqrt(10) beyond that
    end, never past ``bounds`` (1e-8 .. 1). On the paper's task GD's grid 1e-4 .. 1e-3 already
    holds its optimum; on other families every value of it may diverge.

    Returns (best, {step size: median final loss}, {"searched": [lo, hi], "at_edge": whether
    the choice is still the smallest or largest value tried, "stable": whether no run of it
    diverged}).
    """
    if not grid:
        raise ValueError("empty learning-rate grid")
    lo_b, hi_b = bounds
    table, stable = {}, {}
    for entry in sorted(float(v) for v in grid):
        table[entry], stable[entry] = _score(make_opt, problems, n_steps, entry)
    best = _choose(table, stable)
    while True:
        lo, hi = min(table), max(table)
        if (not any(stable.values()) or best == lo) and lo > lo_b:
            new = max(lo / _WIDEN, lo_b)
        elif best == hi and hi < hi_b and any(stable.values()):
            new = min(hi * _WIDEN, hi_b)
        else:
            break
        table[new], stable[new] = _score(make_opt, problems, n_steps, new)
        table = dict(sorted(table.items()))
        best = _choose(table, stable)
    lo, hi = min(table), max(table)
    return best, table, {"searched": [lo, hi], "at_edge": best in (lo, hi),
                         "stable": stable[best]}


def default_schedule_grid() -> list[tuple[int, float, float]]:
    """The two-phase grid of the paper's task: (switch, lr_first, lr) triples with lr_first
    from GD_LR_GRID and lr from SCHEDULE_LR_GRID above it."""
    return [(switch, first, lr) for switch in SCHEDULE_SWITCH_GRID for first in GD_LR_GRID
            for lr in SCHEDULE_LR_GRID if lr > first]


def baselines(
    val_problems: Problems | None,
    n_steps: int,
    names: Sequence[str] = DEFAULT_BASELINES,
    *,
    tune: bool = True,
    tuned: Mapping[str, Any] | None = None,
    teleport_at: tuple[int, ...] = (30,),
    gd_grid: Sequence[float] = GD_LR_GRID,
    adam_grid: Sequence[float] = ADAM_LR_GRID,
    schedule_grid: Sequence[tuple[int, float, float]] | None = None,
) -> tuple[dict[str, InnerOptimizer], dict[str, Any]]:
    """The hand-designed baselines ``names`` (a subset of BASELINES, in that order; by default
    DEFAULT_BASELINES):

    - "gd": GD; "adam": Adam;
    - "gd_tele": GD at GD's step size with an 8-step normalized gradient-ascent teleport
      (||T||_F = 0.01 per ascent step) after the update of every step in ``teleport_at``;
    - "gd_schedule": GD with a two-phase step size (``GDSchedule``: lr_first for the first
      ``switch`` steps, then lr), all three chosen together;
    - "gd_balance", "adam_balance": GD and Adam with the closed-form balancing teleport
      (teleport.balance_teleport) after their first update, with step sizes of their own.

    With ``tune`` the step sizes are chosen on ``val_problems`` over ``n_steps``: GD's and
    Adam's by ``search_lr``, which widens gd_grid / adam_grid (log grids) until the choice is
    interior and stable, within 1e-8 .. 1; the two-phase schedule by ``tune_lr`` over
    schedule_grid ((switch, lr_first, lr) triples; by default the grid tuned for the paper's
    task, scaled by GD's chosen step size over 3e-4 when GD was searched too). Entries of
    ``tuned`` (a previous run's returned description) are reused instead of searched again.
    Without ``tune``: GD 3e-4, Adam 1e-2, the schedule DEFAULT_SCHEDULE. Returns (optimizers
    by name, a JSON-ready description of the step sizes with the search tables and, for GD and
    Adam, the searched range and whether the choice lies at its edge).
    """
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; allowed: {list(BASELINES)}")
    tuned = dict(tuned or {})
    info: dict[str, Any] = {}
    def balanced(rule, name):
        # the closed-form balancing teleport after the first update
        return Teleporting(rule, BalanceTeleport(), Schedule(at=(0,)), name=name)

    log_searches = {
        "gd": (lambda lr: GD(lr), gd_grid, DEFAULT_GD_LR),
        "adam": (lambda lr: Adam(lr), adam_grid, DEFAULT_ADAM_LR),
        "gd_balance": (lambda lr: balanced(GD(lr), "GD"), gd_grid, DEFAULT_GD_LR),
        "adam_balance": (lambda lr: balanced(Adam(lr), "Adam"), adam_grid, DEFAULT_ADAM_LR),
    }
    needs = {"gd": "gd", "gd_tele": "gd", "adam": "adam", "gd_schedule": "gd_schedule",
             "gd_balance": "gd_balance", "adam_balance": "adam_balance"}
    for key in dict.fromkeys(needs[n] for n in names):
        if not tune:
            default = DEFAULT_SCHEDULE if key == "gd_schedule" else log_searches[key][2]
            info[key] = {"lr": default, "tuned": False}
        elif key in tuned:
            info[key] = {**tuned[key], "cached": True}
        elif val_problems is None:
            raise ValueError("tuning the step sizes needs validation problems")
        elif key == "gd_schedule":
            grid = schedule_grid
            if grid is None:
                scale = info["gd"]["lr"] / DEFAULT_GD_LR if "gd" in info else 1.0
                grid = [(sw, a * scale, b * scale) for sw, a, b in default_schedule_grid()]
            best, table = tune_lr(lambda s: GDSchedule(s[1], s[2], s[0]), val_problems,
                                  n_steps, list(grid))
            info[key] = {"lr": best, "tuned": True, "median_final_loss_by_lr": {
                str(list(k)): v for k, v in table.items()}}
        else:
            make, grid, _ = log_searches[key]
            best, table, where = search_lr(make, val_problems, n_steps, list(grid))
            info[key] = {"lr": best, "tuned": True, **where, "median_final_loss_by_lr": {
                str(k): v for k, v in table.items()}}
    if "gd_schedule" in info:
        switch, first, lr = info["gd_schedule"]["lr"]
        info["gd_schedule"].update(switch=switch, lr_first=first, lr_after=lr)
    ascent, at = AscentTeleport(steps=8, step_size=None, norm=0.01), Schedule(at=teleport_at)
    opts: dict[str, InnerOptimizer] = {}
    for name in names:
        lr = info[needs[name]]["lr"]
        if name == "gd":
            opts[name] = GD(lr, name=LABELS[name])
        elif name == "adam":
            opts[name] = Adam(lr, name=LABELS[name])
        elif name == "gd_tele":
            opts[name] = Teleporting(GD(lr), ascent, at, name=LABELS[name])
            info["gd_tele"] = {"lr": lr, "teleport_at": list(at.at), "ascent_steps": ascent.steps,
                               "norm": ascent.norm}
        elif name == "gd_balance":
            opts[name] = balanced(GD(lr), LABELS[name])
        elif name == "adam_balance":
            opts[name] = balanced(Adam(lr), LABELS[name])
        else:
            switch, first, lr_after = lr
            opts[name] = GDSchedule(first, lr_after, switch, name=LABELS[name])
    return opts, info
