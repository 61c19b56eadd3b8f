"""Evaluation: every optimizer on the same unseen initializations, summarized (design.md s. 7).

``evaluate`` runs each optimizer with ``optimizers.run`` on one batch of M test problems for N
inner steps and ``summarize`` turns the loss curves (N+1, M) into, per optimizer:

- the loss at steps 1, 10, 30, 100 (those <= N) and at N: median and mean over problems with 95%
  percentile-bootstrap intervals;
- the number of steps to reach a loss threshold (median over problems; never reached = inf);
- wall-clock milliseconds per inner step;
- for every learned optimizer, its per-initialization win rate against every other optimizer.

A diverged run (non-finite loss) counts as an infinite loss everywhere: a median is infinite when
at least half of the runs diverged, a mean as soon as one did. The median is the usual one (mean
of the two middle values for even M), as ``numpy.median``.

``baselines`` builds the hand-designed baselines (GD, Adam, GD with gradient-ascent teleports,
GD with a two-phase step size), their step sizes tuned on validation problems by ``tune_lr``;
``write_report`` writes results.json, results.md, curves.png and TensorBoard scalars;
``run_evaluation`` is eval_meta.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from .meta_optimizers import VARIANTS
from .optimizers import (
    GD,
    Adam,
    GDSchedule,
    InnerOptimizer,
    TeleportSchedule,
    WithTeleport,
    run,
)
from .stats import bootstrap_ci, quantile, steps_to_threshold, win_rate
from .tasks import Problems, Split, held_out_metrics, make_family

__all__ = [
    "ADAM_LR_GRID",
    "BASELINES",
    "DEFAULT_BASELINES",
    "DEFAULT_ADAM_LR",
    "DEFAULT_GD_LR",
    "DEFAULT_SCHEDULE",
    "GD_LR_GRID",
    "LABELS",
    "REPORT_STEPS",
    "SCHEDULE_LR_GRID",
    "SCHEDULE_SWITCH_GRID",
    "EvalError",
    "EvalResult",
    "baselines",
    "bootstrap_ci",
    "checkpoint_name",
    "evaluate",
    "markdown_table",
    "optimizer_names",
    "quantile",
    "run_evaluation",
    "steps_to_threshold",
    "summarize",
    "tune_lr",
    "win_rate",
    "write_report",
]

GD_LR_GRID = (1e-4, 2e-4, 3e-4, 5e-4, 7e-4, 1e-3)
ADAM_LR_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
# GD two-phase: (switch, lr_first, lr) with lr_first from GD_LR_GRID and lr > lr_first.
SCHEDULE_SWITCH_GRID = (1, 3, 10)
SCHEDULE_LR_GRID = (3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2)
DEFAULT_GD_LR = 3e-4
DEFAULT_ADAM_LR = 1e-2
DEFAULT_SCHEDULE = (1, 1e-4, 5e-3)  # tuned on 64 validation problems of the paper's task
REPORT_STEPS = (1, 10, 30, 100)

#: the hand-designed baselines, in table order
BASELINES = ("gd", "adam", "gd_tele", "gd_schedule", "gd_balance", "adam_balance")
#: what eval_meta.py runs unless --baselines says otherwise
DEFAULT_BASELINES = ("gd", "adam", "gd_tele", "gd_schedule")
#: results.json name -> display name
LABELS = {"gd": "GD", "adam": "Adam", "gd_tele": "GD+teleport", "gd_schedule": "GD two-phase",
          "gd_balance": "GD+balance", "adam_balance": "Adam+balance",
          **{f"lstm_{v}": label for v, label in VARIANTS.items()}}
#: top-level keys of results.json besides the optimizers
RESERVED_KEYS = frozenset({"num_inits", "steps", "seed", "widths", "n_samples", "init",
                           "optimizers", "learned", "report_steps", "threshold",
                           "threshold_source", "n_boot", "metadata"})

@dataclass
class EvalResult:
    """Everything one evaluation produced.

    names: optimizers in table order (the keys of results.json: "gd", "lstm_update", ...).
    labels[name]: the display name. learned: the names of the learned optimizers, which get
    win rates against every other optimizer. losses[name]: (N+1, M) float64 on the CPU, the loss
    at W_0..W_N of every problem. seconds[name]: (N+1,), wall time at which W_t was reached.
    summary[name]: JSON-ready numbers (see ``summarize``). steps: the reported steps, the last
    being N. threshold_source says where the threshold came from. metadata: whatever the caller
    wants written along (task, seeds, checkpoints, tuned learning rates).
    """

    names: list[str]
    labels: dict[str, str]
    learned: list[str]
    losses: dict[str, torch.Tensor]
    seconds: dict[str, torch.Tensor]
    summary: dict[str, dict[str, Any]]
    steps: list[int]
    threshold: float
    threshold_source: str
    n_boot: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return self.steps[-1]

    @property
    def n_problems(self) -> int:
        return next(iter(self.losses.values())).shape[1]


def summarize(
    losses: Mapping[str, torch.Tensor],
    seconds: Mapping[str, torch.Tensor],
    threshold: float | None = None,
    learned: Sequence[str] = (),
    *,
    labels: Mapping[str, str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    metadata: dict[str, Any] | None = None,
    held_out: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
) -> EvalResult:
    """Summarize loss curves losses[name] (N+1, M) and wall times seconds[name] (N+1,).

    threshold=None uses 10x the smallest median final loss among the optimizers. summary[name]
    holds: ``loss[step]`` = {median, median_ci, mean, mean_ci} for every reported step;
    ``diverged`` (problems with a non-finite final loss); ``steps_to_threshold`` =
    {median, never}; ``ms_per_step``; ``at_time`` = {seconds, step, median}: the median loss
    at the last step reached within the wall time of the fastest learned optimizer's whole run
    (of the fastest optimizer when none is learned), which compares loss per wall-clock second,
    not per step; and for the ``learned`` optimizers ``win_rate`` = {other: {rate, wins}}
    against every other optimizer. With ``held_out`` (held_out[name][metric] (M,), the
    optimizee's held-out "loss" and "accuracy" after the last step, tasks.held_out_metrics),
    ``held_out`` = {metric: {median, median_ci, mean, mean_ci}}.
    """
    names = list(losses)
    if not names:
        raise ValueError("no optimizers to summarize")
    curves = {name: torch.as_tensor(losses[name]).detach().to("cpu", torch.float64)
              for name in names}
    shape = curves[names[0]].shape
    bad = [n for n in names if curves[n].shape != shape or curves[n].dim() != 2]
    if bad or shape[0] < 2:
        raise ValueError(
            f"every losses[name] must be (N+1, M) with N >= 1 and one common shape; "
            f"got {({n: tuple(c.shape) for n, c in curves.items()})}"
        )
    times = {n: torch.as_tensor(seconds[n]).detach().to("cpu", torch.float64) for n in names}
    n_steps = shape[0] - 1
    if any(t.shape != (n_steps + 1,) for t in times.values()):
        raise ValueError(f"every seconds[name] must have shape ({n_steps + 1},)")
    unknown = [n for n in learned if n not in curves]
    if unknown:
        raise ValueError(f"learned optimizers {unknown} are not among {names}")

    finals = {n: curves[n][-1] for n in names}
    if threshold is None:
        best = min(names, key=lambda n: float(quantile(finals[n], 0.5)))
        threshold = 10.0 * float(quantile(finals[best], 0.5))
        source = f"10x the smallest median final loss, that of {best}"
    else:
        source = "given"

    steps = sorted({s for s in REPORT_STEPS if s <= n_steps} | {n_steps})
    budget = min(float(times[n][-1]) for n in (learned or names))
    summary: dict[str, dict[str, Any]] = {}
    for name in names:
        loss = {s: _centre(curves[name][s], n_boot, seed) for s in steps}
        reach = steps_to_threshold(curves[name], threshold)
        summary[name] = {
            "loss": loss,
            "diverged": int((~torch.isfinite(finals[name])).sum()),
            "steps_to_threshold": {"median": float(quantile(reach, 0.5)),
                                   "never": int(np.isinf(reach).sum())},
            "ms_per_step": 1000.0 * float(times[name][-1]) / n_steps,
        }
        within = int((times[name] <= budget * (1 + 1e-9)).nonzero().max())
        summary[name]["at_time"] = {"seconds": budget, "step": within,
                                    "median": float(quantile(curves[name][within], 0.5))}
        if held_out is not None:
            summary[name]["held_out"] = {
                metric: _centre(torch.as_tensor(v).detach().to("cpu", torch.float64), n_boot,
                                seed)
                for metric, v in held_out[name].items()}
        if name in learned:
            summary[name]["win_rate"] = {
                other: dict(zip(("rate", "wins"), win_rate(finals[name], finals[other])))
                for other in names if other != name
            }
    labels = {n: (labels or {}).get(n, n) for n in names}
    return EvalResult(names, labels, list(learned), curves, times, summary, steps, threshold,
                      source, n_boot, dict(metadata or {}))


def _centre(values: torch.Tensor, n_boot: int, seed: int) -> dict[str, Any]:
    """Median and mean of ``values`` (M,) with 95% percentile-bootstrap intervals."""
    med, med_lo, med_hi = bootstrap_ci(values, "median", n_boot, seed=seed)
    mean, mean_lo, mean_hi = bootstrap_ci(values, "mean", n_boot, seed=seed)
    return {"median": med, "median_ci": [med_lo, med_hi], "mean": mean,
            "mean_ci": [mean_lo, mean_hi]}


def evaluate(
    optimizers: Mapping[str, InnerOptimizer],
    problems: Problems,
    n_steps: int,
    threshold: float | None = None,
    *,
    learned: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    warmup_steps: int = 2,
    metadata: dict[str, Any] | None = None,
) -> EvalResult:
    """Run every optimizer on the same ``problems`` (B = M) for ``n_steps`` and summarize.

    Each optimizer first runs ``warmup_steps`` untimed steps so that one-off costs (allocator,
    lazy library initialization) do not land on whichever optimizer happens to run first. Its
    timed run starts from torch's generator seeded at ``seed``, so an optimizer that draws
    random numbers (the random-teleport ablation) gives the same curves on every rerun.
    See ``summarize`` for threshold, learned, labels and the summary. Problems with held-out
    samples (real-data families) also get the optimizee's held-out loss and accuracy.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    losses, seconds = {}, {}
    held_out = {} if problems.X_test is not None else None
    for name, opt in optimizers.items():
        if warmup_steps > 0:
            run(opt, problems, min(warmup_steps, n_steps))
        torch.manual_seed(seed)
        traj = run(opt, problems, n_steps)
        losses[name], seconds[name] = traj.losses, traj.seconds
        if held_out is not None:
            held_out[name] = held_out_metrics(traj.weights, problems)
    return summarize(losses, seconds, threshold, learned, labels=labels, n_boot=n_boot,
                     seed=seed, metadata=metadata, held_out=held_out)


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


def _schedule_grid() -> list[tuple[int, float, float]]:
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
    balance = TeleportSchedule(at_steps=(0,), kind="balance")
    log_searches = {
        "gd": (lambda lr: GD(lr), gd_grid, DEFAULT_GD_LR),
        "adam": (lambda lr: Adam(lr), adam_grid, DEFAULT_ADAM_LR),
        "gd_balance": (lambda lr: GD(lr, balance), gd_grid, DEFAULT_GD_LR),
        "adam_balance": (lambda lr: Adam(lr, teleports=balance), adam_grid, DEFAULT_ADAM_LR),
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
                grid = [(sw, a * scale, b * scale) for sw, a, b in _schedule_grid()]
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
    schedule = TeleportSchedule(at_steps=tuple(teleport_at), steps=8, step_size=None,
                                max_norm=0.01)
    opts: dict[str, InnerOptimizer] = {}
    for name in names:
        lr = info[needs[name]]["lr"]
        if name == "gd":
            opts[name] = GD(lr, name=LABELS[name])
        elif name == "adam":
            opts[name] = Adam(lr, name=LABELS[name])
        elif name == "gd_tele":
            opts[name] = GD(lr, schedule, name=LABELS[name])
            info["gd_tele"] = {"lr": lr, "teleport_at": list(schedule.at_steps),
                               "ascent_steps": schedule.steps, "max_norm": schedule.max_norm}
        elif name == "gd_balance":
            opts[name] = GD(lr, balance, name=LABELS[name])
        elif name == "adam_balance":
            opts[name] = Adam(lr, teleports=balance, name=LABELS[name])
        else:
            switch, first, lr_after = lr
            opts[name] = GDSchedule(first, lr_after, switch, name=LABELS[name])
    return opts, info


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"


def _with_ci(stat: Mapping[str, Any], key: str) -> str:
    """"value [lo, hi]" of ``key`` ("median" or "mean") of a ``_centre`` summary."""
    lo, hi = stat[f"{key}_ci"]
    return f"{_fmt(stat[key])} [{_fmt(lo)}, {_fmt(hi)}]"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def markdown_table(result: EvalResult) -> str:
    """The summary as Markdown: median and mean loss with 95% intervals at the reported steps,
    steps to the threshold, divergences and time per step, and the win rates of the learned
    optimizers against every other optimizer."""
    m, names = result.n_problems, result.names
    lines: list[str] = []
    for key, title in (("median", "Median"), ("mean", "Mean")):
        lines += [f"{title} loss over the {m} problems [95% bootstrap interval]", ""]
        rows = []
        for name in names:
            cells = [_with_ci(result.summary[name]["loss"][step], key) for step in result.steps]
            rows.append([name, result.labels[name], *cells])
        lines += _table(["name", "optimizer", *(f"step {s}" for s in result.steps)], rows)
        lines.append("")
    rows = []
    for name in names:
        s = result.summary[name]
        reach = s["steps_to_threshold"]
        rows.append([name, ("never" if math.isinf(reach["median"]) else f"{reach['median']:g}"),
                     f"{reach['never']}/{m}", f"{s['diverged']}/{m}", f"{s['ms_per_step']:.3g}",
                     str(s["at_time"]["step"]), _fmt(s["at_time"]["median"])])
    budget = result.summary[names[0]]["at_time"]["seconds"]
    lines += [f"Steps to reach loss {_fmt(result.threshold)} (median over problems), problems "
              f"that never reach it or diverge, wall-clock time per step, and the steps done and "
              f"median loss reached within {budget:.3g} s (the whole run of the fastest "
              f"{'learned ' if result.learned else ''}optimizer): loss per wall-clock time", ""]
    lines += _table(["name", "steps to threshold", "never reached", "diverged", "ms/step",
                     f"steps in {budget:.3g} s", "median loss then"], rows)
    if "held_out" in result.summary[names[0]]:
        lines += ["", f"Generalization after step {result.n_steps}: the optimizee's loss per "
                  "held-out sample and its held-out accuracy, median and mean over the "
                  f"{m} problems [95% bootstrap interval]", ""]
        rows = []
        for name in names:
            held = result.summary[name]["held_out"]
            rows.append([name, *(_with_ci(held[metric], key) for metric in ("loss", "accuracy")
                                 for key in ("median", "mean"))])
        lines += _table(["name", "held-out loss, median", "mean", "held-out accuracy, median",
                         "mean"], rows)
    if result.learned:
        lines += ["", f"Win rate at step {result.n_steps}: fraction of the {m} problems on which "
                  "the row's optimizer ends with a strictly lower loss than the column's", ""]
        rows = []
        for name in result.learned:
            wins = result.summary[name]["win_rate"]
            rows.append([name, *("-" if o == name else
                                 f"{wins[o]['rate']:.2f} ({wins[o]['wins']}/{m})" for o in names)])
        lines += _table(["learned \\ vs", *names], rows)
    return "\n".join(lines) + "\n"


def _header(result: EvalResult) -> str:
    meta = result.metadata
    task = meta.get("task")
    where = f" of the task family {task}" if task else ""
    return (
        f"M = {result.n_problems} unseen initializations{where}, N = {result.n_steps} inner "
        f"steps; loss threshold {_fmt(result.threshold)} ({result.threshold_source}).\n"
        f"Medians and means over problems with 95% percentile-bootstrap intervals "
        f"({result.n_boot} resamples); a diverged run counts as an infinite loss.\n"
        + _step_sizes(meta.get("baselines") or {})
    )


def _step_sizes(tuning: Mapping[str, Any]) -> str:
    """One line on the baselines' step sizes: searched range, and a warning where the choice
    lies at the edge of it or diverges somewhere (the baseline is then not really tuned)."""
    parts = []
    for key, t in tuning.items():
        if key == "gd_tele" or "lr" not in t:
            continue
        lr = t["lr"]
        shown = str(list(lr)) if isinstance(lr, (list, tuple)) else f"{lr:.3g}"
        text = f"{LABELS.get(key, key)} {shown}"
        if "searched" in t:
            lo, hi = t["searched"]
            text += f" (searched {lo:.3g} .. {hi:.3g})"
            if t.get("at_edge"):
                text += " **at the edge of the searched range**"
            if not t.get("stable", True):
                text += " **diverges on some validation problems**"
        elif not t.get("tuned", True):
            text += " (fixed, not tuned)"
        parts.append(text)
    return f"Baseline step sizes: {'; '.join(parts)}.\n" if parts else ""


def _bands(result: EvalResult) -> dict[str, dict[str, np.ndarray]]:
    return {
        name: {
            "median": quantile(result.losses[name], 0.5, axis=1),
            "q25": quantile(result.losses[name], 0.25, axis=1),
            "q75": quantile(result.losses[name], 0.75, axis=1),
        }
        for name in result.names
    }


def _jsonable(x: Any) -> Any:
    """Strict JSON: non-finite floats become the strings "inf", "-inf", "nan"."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else str(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _plot(result: EvalResult, bands: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    # Figure without pyplot: renders with Agg and leaves the caller's backend alone.
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    by_step, by_time = fig.subplots(1, 2)
    steps = np.arange(result.n_steps + 1)
    for name in result.names:
        b = bands[name]
        clean = {k: np.where(np.isfinite(v), v, np.nan) for k, v in b.items()}
        ms = 1000.0 * result.seconds[name].numpy()
        for ax, x in ((by_step, steps), (by_time, ms)):
            (line,) = ax.plot(x, clean["median"], label=result.labels[name])
            ax.fill_between(x, clean["q25"], clean["q75"], color=line.get_color(), alpha=0.2,
                            linewidth=0)
    by_step.set_xlabel("inner step")
    by_time.set_xlabel("wall time (ms)")
    for ax in (by_step, by_time):
        ax.set_yscale("log")
        ax.set_ylabel("loss (median, 25-75% band)")
        ax.grid(True, which="both", alpha=0.3)
    by_step.legend(fontsize="small")
    fig.suptitle(f"{result.n_problems} unseen initializations")
    fig.savefig(path, dpi=120)


def _write_tensorboard(result: EvalResult, bands: dict[str, dict[str, np.ndarray]],
                       table: str, tb_dir: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter  # heavy; only needed for this output

    start = time.time()
    for name in result.names:
        median = bands[name]["median"]
        seconds = result.seconds[name].numpy()
        writer = SummaryWriter(log_dir=str(tb_dir / name))
        last_step_at_ms: dict[int, int] = {}
        for t, value in enumerate(median):
            if not (math.isfinite(value) and value > 0):
                continue
            # walltime = evaluation time, so TensorBoard's "Relative" axis shows loss vs time too.
            writer.add_scalar("eval/log10_median_loss", math.log10(value), t,
                              walltime=start + float(seconds[t]))
            last_step_at_ms[int(1000.0 * seconds[t])] = t
        # Many fast steps share one integer millisecond: keep the latest state reached in it.
        for ms, t in last_step_at_ms.items():
            writer.add_scalar("eval/log10_median_loss_vs_ms", math.log10(median[t]), ms,
                              walltime=start + float(seconds[t]))
        writer.close()
    writer = SummaryWriter(log_dir=str(tb_dir))
    writer.add_text("eval/table", table)
    writer.close()


def write_report(
    result: EvalResult, out_dir: Path | str, tb_writer_dir: Path | str | None = None
) -> dict[str, Path]:
    """Write results.json, results.md and curves.png into ``out_dir`` and, if
    ``tb_writer_dir`` is given, TensorBoard scalars under ``tb_writer_dir/<name>/``, one run per
    optimizer (eval/log10_median_loss vs step, eval/log10_median_loss_vs_ms vs integer
    milliseconds) and the table as text eval/table under ``tb_writer_dir`` itself.

    results.json holds, under each optimizer's name: ``label``, ``loss_median``, ``loss_mean``,
    ``loss_q25``, ``loss_q75`` (lists of N+1: index t = loss after t steps), ``seconds`` (N+1),
    ``final_losses`` (M, one per problem), ``ms_per_step`` and ``summary`` (the intervals,
    steps to threshold, divergences and, for learned optimizers, win rates). Top level:
    ``num_inits``, ``steps``, ``seed``, ``widths``, ``n_samples``, ``init`` (from the
    metadata), ``optimizers`` (names in order), ``learned``, ``report_steps``, ``threshold``,
    ``threshold_source``, ``n_boot``, ``metadata``. Non-finite numbers are the strings
    "inf" / "nan" (strict JSON).
    Returns the paths written: keys "json", "markdown", "curves" and, with TensorBoard, "tb".
    """
    clash = [n for n in result.names if n in RESERVED_KEYS]
    if clash:
        raise ValueError(f"optimizer names {clash} clash with the top-level keys of results.json")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bands = _bands(result)
    table = markdown_table(result)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md",
             "curves": out_dir / "curves.png"}
    task = result.metadata.get("task", {})
    payload: dict[str, Any] = {
        "num_inits": result.n_problems,
        "steps": result.n_steps,
        "seed": result.metadata.get("seed"),
        "widths": task.get("widths"),
        "n_samples": task.get("n_samples"),
        "init": task.get("init"),
        "optimizers": result.names,
        "learned": result.learned,
        "report_steps": result.steps,
        "threshold": result.threshold,
        "threshold_source": result.threshold_source,
        "n_boot": result.n_boot,
        "metadata": result.metadata,
    }
    for name in result.names:
        payload[name] = {
            "label": result.labels[name],
            "loss_median": bands[name]["median"],
            "loss_mean": result.losses[name].mean(dim=1),
            "loss_q25": bands[name]["q25"],
            "loss_q75": bands[name]["q75"],
            "seconds": result.seconds[name],
            "final_losses": result.losses[name][-1],
            "ms_per_step": result.summary[name]["ms_per_step"],
            "summary": result.summary[name],
        }
    paths["json"].write_text(json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n")
    paths["markdown"].write_text("# Evaluation\n\n" + _header(result) + "\n" + table)
    _plot(result, bands, paths["curves"])
    if tb_writer_dir is not None:
        paths["tb"] = Path(tb_writer_dir)
        _write_tensorboard(result, bands, table, paths["tb"])
    return paths


class EvalError(ValueError):
    """The evaluation cannot run as asked (conflicting checkpoints, a bad task override...)."""


def optimizer_names(variants: Sequence[str], checkpoint_names: Sequence[str]) -> list[str]:
    """The results.json name of each checkpoint: "lstm_<variant>", or the checkpoint's own name
    where two checkpoints share a variant. Raises EvalError if two names still coincide."""
    counts = {v: variants.count(v) for v in variants}
    names = [f"lstm_{v}" if counts[v] == 1 else c for v, c in zip(variants, checkpoint_names)]
    dup = sorted({n for n in names if names.count(n) > 1 or n in BASELINES})
    if dup:
        raise EvalError(f"two optimizers would be reported as {dup}: give the checkpoints of "
                        "one variant distinct file names")
    return names


def checkpoint_name(path: str | Path) -> str:
    """A run's params.pt (runs/NAME/params.pt) is named after its run folder, any other
    checkpoint after its file (checkpoints/update_tele.pt -> update_tele)."""
    path = Path(path)
    return (path.parent.name if path.stem == "params" else path.stem) or path.stem


TUNING_CACHE = "tuned_lrs.json"


def run_evaluation(
    checkpoints: Sequence[str | Path],
    *,
    num_inits: int = 64,
    n_steps: int = 100,
    seed: int = 0,
    widths: Sequence[int] | None = None,
    n_samples: int | None = None,
    init: str | None = None,
    task_overrides: Mapping[str, Any] | None = None,
    baseline_names: Sequence[str] = DEFAULT_BASELINES,
    threshold: float | None = None,
    tune: bool = True,
    out_dir: str | Path,
    device: str = "cpu",
    with_balance: bool = False,
) -> tuple[EvalResult, dict[str, Path]]:
    """The whole evaluation of eval_meta.py.

    1. Load every checkpoint before anything runs or is written (a missing or broken one
       raises CheckpointError; an untrained optimizer is never put in its place).
    2. The task family is the checkpoints' own (they must agree) with ``widths``,
       ``n_samples``, ``init`` and the keys of ``task_overrides`` (e.g. unit_span, cond)
       replaced where given (validated like a config: ConfigError).
    3. ``num_inits`` evaluation problems come from the test stream at ``seed``; the baselines'
       step sizes are searched on as many problems of the validation stream at ``seed`` (the
       streams never overlap, and neither overlaps training) and cached in
       ``out_dir/tuned_lrs.json``: a rerun into the same folder with the same task, steps, seed
       and grids reuses them.
    4. Run everything, write the report into ``out_dir`` (TensorBoard under ``out_dir/tb``,
       whose previous event files are replaced).
    """
    from .checkpoint import CheckpointError, load_optimizer
    from .config import ConfigError, config_from_dict

    if not checkpoints:
        raise EvalError("no checkpoint to evaluate")
    loaded = [(str(p), *load_optimizer(p, device)) for p in checkpoints]
    names = optimizer_names([meta["variant"] for _, _, meta in loaded],
                            [checkpoint_name(p) for p, _, _ in loaded])
    task = dict(loaded[0][2]["task"])
    overrides = {k: v for k, v in (("widths", None if widths is None else list(widths)),
                                   ("n_samples", n_samples), ("init", init),
                                   *(task_overrides or {}).items()) if v is not None}
    if not overrides:
        for path, _, meta in loaded[1:]:
            if meta["task"] != task:
                raise CheckpointError(
                    f"{path} was trained on task {meta['task']}, but {loaded[0][0]} on {task}: "
                    "evaluate checkpoints of one task family together, or choose the family "
                    "with --widths/--n-samples/--init")
    task.update(overrides)
    try:
        task = dataclasses.asdict(config_from_dict({"task": task}).task)
    except ConfigError as err:
        raise EvalError(f"cannot evaluate on task {task}: {err}") from None
    family = make_family(task)
    test = family.sample(num_inits, seed, Split.TEST).to(device)
    val = family.sample(num_inits, seed, Split.VAL).to(device) if tune else None

    out_dir = Path(out_dir)
    cache_key = {"task": task, "n_steps": n_steps, "seed": seed, "num_inits": num_inits,
                 "split": "val", "grids": {"gd": list(GD_LR_GRID), "adam": list(ADAM_LR_GRID),
                                           "gd_schedule": [list(s) for s in _schedule_grid()]}}
    cached = {}
    cache_file = out_dir / TUNING_CACHE
    if tune and cache_file.is_file():
        try:
            stored = json.loads(cache_file.read_text())
        except (ValueError, OSError):
            stored = None  # unreadable: search again, and write a good one
        if isinstance(stored, dict) and stored.get("key") == _jsonable(cache_key):
            cached = {k: {**v, "lr": tuple(v["lr"]) if isinstance(v["lr"], list) else v["lr"]}
                      for k, v in stored["tuning"].items()}
    hand, tuning = baselines(val, n_steps, baseline_names, tune=tune, tuned=cached)
    opts: dict[str, InnerOptimizer] = {**hand, **{n: opt for n, (_, opt, _) in
                                                  zip(names, loaded)}}
    labels = {n: LABELS[n] for n in hand}
    for name, (_, opt, meta) in zip(names, loaded):
        labels[name] = opt.name if name == f"lstm_{meta['variant']}" else f"{opt.name} [{name}]"
    learned = list(names)
    if with_balance:
        balance = TeleportSchedule(at_steps=(0,), kind="balance")
        for name in names:
            opts[f"{name}+balance"] = WithTeleport(opts[name], balance)
            labels[f"{name}+balance"] = f"{labels[name]} update rule +balance"
            learned.append(f"{name}+balance")
    metadata = {
        "task": task, "seed": seed,
        "problems": {"evaluation": {"split": "test", "seed": seed, "count": num_inits},
                     "tuning": {"split": "val", "seed": seed, "count": num_inits} if tune
                     else None},
        "checkpoints": {n: {"path": p, "variant": m["variant"], "meta_step": m["meta_step"],
                            "trained_on": m["task"]} for n, (p, _, m) in zip(names, loaded)},
        "baselines": tuning, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "device": device,
    }
    result = evaluate(opts, test, n_steps, threshold, learned=learned, labels=labels,
                      seed=seed, metadata=metadata)
    tb = out_dir / "tb"
    # A replaced report must not keep the old curves: TensorBoard would merge both into one run.
    for stale in [*tb.glob("events.out.tfevents.*"), *tb.glob("*/events.out.tfevents.*")]:
        stale.unlink()
    paths = write_report(result, out_dir, tb)
    if tune:
        cache_file.write_text(json.dumps(_jsonable(
            {"key": cache_key, "tuning": {k: v for k, v in tuning.items() if k != "gd_tele"}}),
            indent=2) + "\n")
        paths["tuning"] = cache_file
    return result, paths
