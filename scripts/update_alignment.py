"""How far each optimizer's steps depart from the gradient on real digits, against the held-out
accuracy its optimizee reaches.

The teleporting generalists' held-out accuracy on real digits differs by m1's update form
(studies/general/tables.md: tuned SGD minus 0.006 for the gradient form at tilt 1, 0.025 at
tilt 3, 0.028 for the mixed form at tilt 3, 0.059 for the direct form). This measures, on the
validation problems of real digits (realdata.VAL_SEEDS, never a test problem), per step of
each optimizer (its teleports excluded: the parameters just before and after ``opt.step``):

- cos: the cosine between the step and minus the gradient (1 for SGD);
- spread: the standard deviation over coordinates of log(|step_i| / |g_i|), the log of each
  coordinate's own step size (0 for SGD; coordinates with a zero step left out); and the same
  within the first layer alone (its weight and bias: in the first layer a column of steps is
  an input feature) and within the later layers alone;

both over the coordinates whose gradient is not zero (the drift of the others, weights of
pixels constant on a problem's training images, is scripts/zero_gradient_drift.py's: resetting
it changes no accuracy), each averaged over the steps that moved, then over problems; beside
the optimizee's held-out accuracy and training loss after 100 steps.

Rows: tuned SGD and tuned Adam (step sizes chosen on the same problems, realdata.tune) and
every committed seed of the arms below, averaged over seeds; then the rank correlation
(Spearman) of accuracy with each other column over the learned optimizers' seeds. Prints the
table and writes studies/general/update_alignment.md.

    python scripts/update_alignment.py [--problems 16]
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from metateleport.checkpoint import load_optimizer
from metateleport.stats import spearman
from metateleport.studies import general
from metateleport.studies.general_runs import committed
from metateleport.studies.realdata import HAND, VAL_SEEDS, as_scored, make_problem, run, tune

REPO = Path(__file__).resolve().parents[1]
SET = "digits"
N_STEPS = 100
#: the teleporting candidates of every update form, and LSTM(update) in the direct and mixed
#: forms
ARMS = ("update_tele_diag-noguard-long-bound3",
        "update_tele_diag-noguard-long-bound3-moments",
        "update_tele_diag-noguard-long-bound3-gradient",
        "update_tele_diag-noguard-long-bound3-gradient-layer",
        "update_tele_diag-noguard-long-bound3-gradient-layer3-first1",
        "update_tele_diag-noguard-long-bound3-gradient-tilt3",
        "update_tele_diag-noguard-long-bound3-adam-tilt3",
        "update_tele_diag-noguard-long-bound3-mixed-tilt3",
        "update_tele_diag-noguard-long-bound3-mixed-tilt2",
        "update-long", "update-long-mixed-tilt3", "update-long-mixed-tilt2")
COLUMNS = ("accuracy", "training loss", "cos", "spread", "spread, first layer",
           "spread, later layers")


def step_geometry(step: torch.Tensor, grad: torch.Tensor) -> tuple[float, float] | None:
    """(cos, spread) of one step against the gradient it was taken at (flat tensors), both
    over the coordinates whose gradient is not zero (a weight of a pixel constant on the
    training images; their drift is scripts/zero_gradient_drift.py's), or None if the step did
    not move them or the gradient is zero."""
    seen = grad != 0
    step, grad = step[seen].double(), grad[seen].double()
    if not (step.norm() > 0 and grad.norm() > 0):
        return None
    cos = float(-(step @ grad) / (step.norm() * grad.norm()))
    spread = log_step_spread(step, grad)
    return cos, 0.0 if math.isnan(spread) else spread


def log_step_spread(step: torch.Tensor, grad: torch.Tensor) -> float:
    """The standard deviation of log(|step_i| / |g_i|) over the coordinates whose gradient
    is not zero and that moved (nan if fewer than two): step_geometry's spread alone."""
    keep = (grad != 0) & (step != 0)
    ratio = (step[keep].double().abs() / grad[keep].double().abs()).log()
    return float(ratio.std()) if ratio.numel() > 1 else math.nan


def measure(make_opt: Callable, seed: int, teleport: bool) -> dict[str, float]:
    """One validation problem of real digits trained for N_STEPS full-batch steps of
    make_opt(params) (with ``teleport``, opt.teleport after each step; realdata.run):
    {"accuracy", "training loss" (inf if diverged), "cos", "spread", and the spread within
    the first layer (its weight and bias, the coordinates that read the input features) and
    within the later layers (these four averaged over the steps that moved; nan if none
    did)}."""
    geometry = []
    problem = make_problem(SET, seed)
    first = sum(p.numel() for p in problem.model[0].parameters())

    def observe(before: torch.Tensor, after: torch.Tensor, grad: torch.Tensor) -> None:
        step = after - before
        found = step_geometry(step, grad)
        if found is not None:
            geometry.append((*found, log_step_spread(step[:first], grad[:first]),
                             log_step_spread(step[first:], grad[first:])))

    result = run(problem, make_opt, N_STEPS, teleport, on_step=observe)
    means = np.nanmean(geometry, 0) if geometry else [math.nan] * 4
    return {"accuracy": result["accuracy"], "training loss": result["final"],
            **{k: float(v) for k, v in zip(COLUMNS[2:], means)}}


def over_problems(make_opt: Callable, problems: int, teleport: bool = False) -> dict[str, float]:
    """``measure`` over the first ``problems`` validation seeds: the median training loss and
    the mean of the others."""
    rows = [measure(make_opt, s, teleport) for s in VAL_SEEDS[:problems]]
    return {k: float(np.median([r[k] for r in rows]) if k == "training loss"
                     else np.nanmean([r[k] for r in rows])) for k in COLUMNS}


def learned(params: Path, problems: int) -> dict[str, float]:
    """``over_problems`` for a committed chosen iterate, through the torch.optim face, its
    teleports after every step as realdata.score_real runs it."""
    opt, _ = load_optimizer(params)
    return over_problems(as_scored(opt), problems, teleport=opt.move is not None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--summaries", type=Path, default=REPO / "studies")
    parser.add_argument("--arms", nargs="+", default=list(ARMS))
    parser.add_argument("--out", type=Path, default=None,
                        help="the table's file (default <summaries>/general/update_alignment.md)")
    args = parser.parse_args(argv)
    if not 1 <= args.problems <= len(VAL_SEEDS):
        parser.error(f"--problems must be within 1..{len(VAL_SEEDS)}, got {args.problems}")
    torch.set_num_threads(1)  # as general_study.py: beside the study's runs on a 2-core machine
    head = ["optimizer", "seeds"] + list(COLUMNS)
    lines = ["# " + " ".join(__doc__.split("\n\n")[0].split()), "",
             f"`python scripts/update_alignment.py --problems {args.problems}`, real "
             f"{SET}, validation problems (seeds {VAL_SEEDS[0]}..{VAL_SEEDS[args.problems - 1]}"
             f"), {N_STEPS} steps.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name: str, seeds: int, values: dict[str, float]) -> None:
        cells = [f"{values['accuracy']:.3f}", f"{values['training loss']:.3g}",
                 f"{values['cos']:.3f}"] + [f"{values[k]:.2f}" for k in COLUMNS[3:]]
        lines.append(f"| {name} | {seeds} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)

    for kind in HAND:
        lr = tune(SET, kind, N_STEPS, val_seeds=VAL_SEEDS[:args.problems])["lr"]
        row(f"tuned {kind} (lr {lr:.3g})", 1,
            over_problems(functools.partial(HAND[kind], lr=lr), args.problems))
    points = []
    for arm in args.arms:
        if arm not in general.ARMS:
            parser.error(f"unknown arm {arm!r}")
        runs = committed(args.summaries, [arm], general.ARMS[arm][3])
        if not runs:
            continue
        per_seed = [learned(params, args.problems) for *_, params in runs]
        points += per_seed
        row(general.ARMS[arm][2], len(runs),
            {k: float(np.mean([v[k] for v in per_seed])) for k in COLUMNS})
    if len(points) > 2:
        acc = [p["accuracy"] for p in points]
        with_ = "; with ".join(f"{k}: {spearman(acc, [p[k] for p in points]):+.2f}"
                               for k in COLUMNS[1:])
        lines += ["", f"Over the {len(points)} learned seeds, Spearman's rank correlation of "
                  f"held-out accuracy with {with_}."]
        print(lines[-1])
    out = args.out or args.summaries / general.STUDY / "update_alignment.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
