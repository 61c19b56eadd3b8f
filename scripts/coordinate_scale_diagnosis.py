"""Is Adam's per-coordinate normalization what makes tuned Adam hard to beat on a suite?

For each suite (studies.suites.SUITES; validation problems only, never the test problems):
tuned Adam against the same update with one second moment per problem (v the mean of g^2 over
the problem's coordinates, as m1's input, the gradient over its RMS, has one scale per
problem) and against tuned GD. Each step size is searched on 32 validation problems of one
seed (a grid of 10^-5 .. 1 in quarter decades, the median loss at step 100) and reported as
the median loss at step 100 on 32 validation problems of another seed. Prints and writes
studies/general/coordinate_scale.md; the general study's moments and adam-form arms cite it.

    python scripts/coordinate_scale_diagnosis.py [--suites digits normal_init ...]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metateleport.baselines import GD, Adam, _NoTeleport
from metateleport.inner import run
from metateleport.studies.suites import SUITES, suite_task
from metateleport.tasks import make_family

REPO = Path(__file__).resolve().parents[1]
GRID = [float(10 ** e) for e in np.arange(-5, 0.01, 0.25)]
SEEDS = {"tune": 0, "report": 1}
STEPS = 100


@dataclass
class ProblemAdam(_NoTeleport):
    """Adam with v the mean of g^2 over each problem's coordinates (one scale per problem)."""

    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    name: str = "Adam, one v per problem"

    def init_state(self, problems):
        return {"m": [torch.zeros_like(w) for w in problems.weights],
                "v": problems.weights[0].new_zeros(problems.batch_size), "step": 0}

    def update(self, weights, grads, state, ctx):
        t = state["step"] + 1
        m = [self.beta1 * m_ + (1 - self.beta1) * g for m_, g in zip(state["m"], grads)]
        sq = (sum(g.pow(2).flatten(1).sum(1) for g in grads)
              / sum(g[0].numel() for g in grads))
        v = self.beta2 * state["v"] + (1 - self.beta2) * sq
        root = (v / (1 - self.beta2 ** t)).sqrt().clamp_min(1e-30)
        deltas = [-self.lr * (m_ / (1 - self.beta1 ** t)) / root.view(-1, *[1] * (m_.dim() - 1))
                  for m_ in m]
        return deltas, {"m": m, "v": v, "step": t}


OPTIMIZERS = {"adam": Adam, "adam_one_v": ProblemAdam, "gd": GD}


def _median_final(opt, problems) -> float:
    with torch.no_grad():
        final = run(opt, problems, STEPS).losses[-1]
    return float(torch.where(torch.isfinite(final), final, torch.full_like(final, np.inf))
                 .median())


def diagnose(suite: str) -> dict[str, tuple[float, float]]:
    """optimizer -> (step size chosen on the tuning seed, median loss on the report seed)."""
    task = suite_task(suite)
    family = make_family(task)
    tune, report = (family.sample(32, SEEDS[k], "val") for k in ("tune", "report"))
    out = {}
    for name, make in OPTIMIZERS.items():
        lr = min(GRID, key=lambda v: _median_final(make(lr=v), tune))
        out[name] = (lr, _median_final(make(lr=lr), report))
    return out


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="+", default=["digits", "normal_init", "unit_span10",
                                                        "paper"], choices=list(SUITES))
    args = parser.parse_args(argv)
    rows = ["| suite | tuned Adam | Adam, one v per problem | tuned GD | one v / Adam |",
            "|---|---|---|---|---|"]
    for suite in args.suites:
        r = diagnose(suite)
        cells = [f"{loss:.4g} (lr {lr:.2g})" for lr, loss in r.values()]
        rows.append(f"| {suite} | " + " | ".join(cells)
                    + f" | {r['adam_one_v'][1] / r['adam'][1]:.2f} |")
        print(rows[-1], flush=True)
    text = ("# Adam's per-coordinate normalization, on validation problems\n\n"
            "Regenerate: `python scripts/coordinate_scale_diagnosis.py` (median loss at step "
            f"{STEPS} of 32 validation problems of seed {SEEDS['report']}, each step size "
            f"searched on seed {SEEDS['tune']}).\n\n" + "\n".join(rows) + "\n")
    if not argv:  # the default suites: the committed table
        (REPO / "studies" / "general" / "coordinate_scale.md").write_text(text)
    return text


if __name__ == "__main__":
    main()
