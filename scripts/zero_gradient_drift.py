"""How far the optimizers move weights the training loss does not depend on, on real digits.

On a digits problem (studies.realdata: 48 training images, a 64-32-10 MLP with biases) the
pixels that are constant over the training images are zero after standardization, so the
first layer's weights from them have a gradient of exactly zero at every step: tuned SGD and
Adam never move them, and whatever a learned optimizer moves them by is drift of its own.
For every committed run of the arms below (the general study's chosen iterates, through
LearnedTorchOptimizer as realdata.score_real runs them) and for tuned SGD and Adam, on the 32
test problems, this prints and writes to studies/general/zero_gradient_drift.md: the distance
moved from the initialization over all parameters (||theta - theta_0|| / ||theta_0||, as the
equal-loss study reports it) and over the weights with a gradient (the zero-gradient ones
left out of both norms), the share of the first layer's movement on the zero-gradient
weights, and the held-out accuracy as trained and with those weights put back to their
initial values (which leaves every training output as it was), paired.

    python scripts/zero_gradient_drift.py [--arms A ...] [--problems 32]
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch

from metateleport.checkpoint import load_optimizer
from metateleport.stats import difference_text, paired_difference
from metateleport.studies import general
from metateleport.studies.realdata import (
    HAND,
    as_scored,
    evaluate,
    hand_results,
    make_problem,
    run,
)

REPO = Path(__file__).resolve().parents[1]
ARMS = ("update_tele_diag-noguard-long-bound3", "update_tele_diag-noguard-long", "update",
        "update-long")


def _measure(make_opt, seed: int, teleport: bool) -> tuple[float, ...]:
    """(distance over all parameters, over the weights with a gradient, share of the first
    layer's squared movement on zero-gradient weights, accuracy, accuracy with them reset)
    of one run on digits test problem ``seed``."""
    problem = make_problem("digits", seed)
    params = list(problem.model.parameters())
    start = [p.detach().clone() for p in params]
    dead = problem.x.std(0) == 0  # (64,) constant pixels: zero after standardization
    run(problem, make_opt, 100, teleport)
    first = problem.model[0].weight
    live = [torch.ones_like(p, dtype=torch.bool) for p in params]
    live[0] = ~dead.expand_as(first)  # params[0] is the first layer's weight
    moved = [(p.detach() - s).double() for p, s in zip(params, start)]
    total = torch.sqrt(sum((m ** 2).sum() for m in moved)) / torch.sqrt(
        sum((s.double() ** 2).sum() for s in start))
    on_live = torch.sqrt(sum((m[k] ** 2).sum() for m, k in zip(moved, live))) / torch.sqrt(
        sum((s.double()[k] ** 2).sum() for s, k in zip(start, live)))
    first_sq = (moved[0] ** 2).sum()
    share = float((moved[0][~live[0]] ** 2).sum() / first_sq) if first_sq > 0 else 0.0
    accuracy = evaluate(problem)[1]
    with torch.no_grad():
        first[:, dead] = start[0][:, dead]
    return float(total), float(on_live), share, accuracy, evaluate(problem)[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(general.ARMS))
    p.add_argument("--problems", type=int, default=32)
    p.add_argument("--summaries", type=Path, default=REPO / "studies")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    hand = hand_results("digits", args.problems, 100)
    rows = ["| optimizer | seeds | moved, all parameters | moved, weights with a gradient | "
            "first layer's movement on zero-gradient weights | held-out accuracy | with them "
            "reset: paired difference |", "|---|---|---|---|---|---|---|"]
    runs: list[tuple[str, list]] = []
    for kind in HAND:
        opt = functools.partial(HAND[kind], lr=hand[kind]["tuning"]["lr"])
        runs.append((f"tuned {kind} (lr {hand[kind]['tuning']['lr']:.3g})",
                     [[_measure(opt, s, False) for s in range(args.problems)]]))
    for arm in args.arms:
        found = []
        for seed in general.ARMS[arm][3]:
            params = args.summaries / general.STUDY / arm / f"s{seed}.pt"
            if not params.is_file():
                continue
            learned, _ = load_optimizer(params)
            found.append([_measure(as_scored(learned), s, learned.move is not None)
                          for s in range(args.problems)])
        if found:
            runs.append((general.ARMS[arm][2], found))
    for label, found in runs:
        a = np.array(found)  # (seeds, problems, 5)
        reset = difference_text(paired_difference(a[..., 4], a[..., 3]), "+.4f")
        rows.append(f"| {label} | {a.shape[0]} | {np.median(a[..., 0]):.3g} | "
                    f"{np.median(a[..., 1]):.3g} | {np.median(a[..., 2]):.2f} | "
                    f"{np.median(a[..., 3]):.3f} | {reset} |")
    dead = np.median([int((make_problem("digits", s).x.std(0) == 0).sum())
                      for s in range(args.problems)])
    text = (f"Real digits, {args.problems} test problems, 100 steps; medians over seeds and "
            f"problems. A problem has a median of {dead:.0f} of 64 pixels constant over its "
            "training images.\n\n" + "\n".join(rows) + "\n")
    out = args.summaries / general.STUDY / "zero_gradient_drift.md"
    out.write_text("# Drift on zero-gradient weights (real digits)\n\nRegenerate: `python "
                   "scripts/zero_gradient_drift.py`.\n\n" + text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
