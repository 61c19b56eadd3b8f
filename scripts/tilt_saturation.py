"""How often the gradient form's bound binds: m1's log-steps against the tilt.

In the gradient form (model.update_form: gradient) m1's raw output o' per coordinate becomes
the log-step o = s + tilt * tanh((o' - s) / tilt), s the problem's mean, or with the tilt per
layer (model.update_tilt_over: layer) the coordinate's layer's (learned.gradient_form): a
coordinate whose |o' - s| exceeds the tilt sits in the flat part of the tanh, where its step
is at the bound and m1's gradient through it vanishes. For every committed run of the arms in
the gradient form (the general study's chosen iterates, m1 and m2 as scored), on validation
problems of the task distribution and of the digits family (never a test problem: this
informs the choice of the tilt), this prints and writes to studies/general/tilt_saturation.md,
per arm and suite, the mean over seeds of: the share of coordinates with |o' - s| > tilt and
> 2 tilt over steps 1-10, 11-50 and 51-100; the standard deviation of o' - s over the
coordinates (the spread m1 asks for before the bound), averaged over the steps; and the share
of the variance of o' around the problem's mean that lies between the layers' means (what a
tilt per layer leaves free), pooled over the steps.

    python scripts/tilt_saturation.py [--problems 16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from metateleport.checkpoint import load_optimizer
from metateleport.learned_update import layer_means
from metateleport.studies import general
from metateleport.studies.m1_probe import arm_suite_table, shape_calls

REPO = Path(__file__).resolve().parents[1]
SUITE_NAMES = ("distribution", "digits")
WINDOWS = ((0, 10), (10, 50), (50, 100))


def gradient_arms() -> list[str]:
    """The study's arms whose m1 is in the gradient form."""
    return [arm for arm, (_, overrides, _, _) in general.ARMS.items()
            if "model.update_form=gradient" in overrides]


def measure(params: Path, suite: str, problems: int,
            n_steps: int = 100) -> tuple[float, np.ndarray]:
    """(the checkpoint's tilt, (n_steps, 5)): per step, over the coordinates of ``problems``
    validation problems of ``suite``, the share with |o' - s| > tilt, > 2 tilt, the std of
    o' - s (s the mean the tilt bounds around), and the sums of squares of o' around the
    problems' means between the layers' means and in all (every group of one architecture
    that step pooled, m1_probe.shape_calls)."""
    opt, _ = load_optimizer(params)
    tilt, per_layer = opt.rule.tilt, opt.rule.tilt_over == "layer"

    def record(out: torch.Tensor, direction: torch.Tensor,
               sizes: list[int] | None) -> tuple[float, ...]:
        # coordinates, past 1x, past 2x, sum, sum of squares, between-layer and total
        # sums of squares around the problem's mean
        o = out.detach().double()
        centred = o - o.mean(-1, keepdim=True)
        layers = layer_means(centred, sizes)
        dev = centred - layers if per_layer else centred
        return (dev.numel(), float((dev.abs() > tilt).sum()),
                float((dev.abs() > 2 * tilt).sum()), float(dev.sum()), float((dev ** 2).sum()),
                float((layers ** 2).sum()), float((centred ** 2).sum()))

    n, past1, past2, total, squares, between, whole = shape_calls(
        opt, suite, problems, n_steps, record).T
    std = np.sqrt(np.maximum(squares - total ** 2 / n, 0) / (n - 1))
    return tilt, np.stack([past1 / n, past2 / n, std, between, whole], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--summaries", type=Path, default=REPO / "studies")
    args = parser.parse_args()
    torch.manual_seed(0)

    def cells(runs, suite: str) -> list[str]:
        tilts, rows = zip(*(measure(params, suite, args.problems) for _, _, params in runs))
        per_seed = np.stack(rows)
        between = per_seed[:, :, 3].sum(1) / per_seed[:, :, 4].sum(1)
        return ([f"{tilts[0]:g}"]
                + [f"{per_seed[:, a:b, k].mean():.2f}" for a, b in WINDOWS for k in (0, 1)]
                + [f"{per_seed[:, :, 2].mean():.2f}", f"{between.mean():.2f}"])

    head = ["tilt"] + [f"> {k} tilt, steps {a + 1}-{b}" for a, b in WINDOWS
                       for k in ("1x", "2x")] + ["std of o' - s", "between layers"]
    arm_suite_table(args.summaries, "tilt_saturation",
                    __doc__.split("\n\n")[0].replace("How often", "# How often"),
                    f"python scripts/tilt_saturation.py --problems {args.problems}", head,
                    gradient_arms(), SUITE_NAMES, cells)


if __name__ == "__main__":
    main()
