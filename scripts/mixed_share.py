"""Which direction m1 follows in the mixed form: the share of Adam's term in each update.

In the mixed form (model.update_form: mixed) m1 writes two log-steps per coordinate, and the
update is the gradient form's term along the gradient over its RMS plus the adam form's term
along Adam's direction (learned_update.LearnedUpdate.shape). For every committed run of the
general study's arms in the mixed form (the chosen iterates, m1 and m2 as scored), on
validation problems of a few suites (never a test problem), this prints and writes to
studies/general/mixed_share.md, per arm and suite, the mean over seeds and problems of the
share of the update's squared norm that Adam's term carries, ||D_adam||^2 / (||D_grad||^2 +
||D_adam||^2), over steps 1-10, 11-50 and 51-100, and the mean difference of the two common
log-steps (Adam's minus the gradient's; each term's step is exp of it times the base step).

    python scripts/mixed_share.py [--problems 16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from metateleport.checkpoint import load_optimizer
from metateleport.learned_update import gradient_form
from metateleport.studies import general
from metateleport.studies.m1_probe import arm_suite_table, shape_calls

REPO = Path(__file__).resolve().parents[1]
SUITE_NAMES = ("distribution", "digits", "wide", "depth3", "unit_span10", "normal_init",
               "init_scale3", "paper")
WINDOWS = ((0, 10), (10, 50), (50, 100))


def mixed_arms() -> list[str]:
    """The study's arms whose m1 is in the mixed form."""
    return [arm for arm, (_, overrides, _, _) in general.ARMS.items()
            if "model.update_form=mixed" in overrides]


def measure(params: Path, suite: str, problems: int, n_steps: int = 100) -> np.ndarray:
    """(n_steps, 2): per step, over ``problems`` validation problems of ``suite``, the mean
    share of Adam's term in the update's squared norm and the mean of s_adam - s_grad (the
    two common log-steps); every group of one architecture that step pooled, weighted by its
    problems (m1_probe.shape_calls)."""
    opt, _ = load_optimizer(params)
    rule = opt.rule
    if rule.form != "mixed":
        raise ValueError(f"{params}: m1's form is {rule.form}, not mixed")

    def record(out: torch.Tensor, direction: torch.Tensor,
               sizes: list[int] | None) -> tuple[float, ...]:
        # problems, sum of shares, sum of the log-step gaps
        o, d = out.detach().double(), direction.detach().double()
        per = sizes if rule.tilt_over == "layer" else None
        grad, adam = (gradient_form(o[..., k], d[..., k], rule.step, rule.tilt, per)
                      for k in range(2))
        g2, a2 = (grad ** 2).sum(-1), (adam ** 2).sum(-1)
        share = torch.where(g2 + a2 > 0, a2 / (g2 + a2), torch.full_like(a2, float("nan")))
        gap = (o[..., 1] - o[..., 0]).mean(-1)
        return share.numel(), float(share.nansum()), float(gap.sum())

    n, share, gap = shape_calls(opt, suite, problems, n_steps, record).T
    return np.stack([share / n, gap / n], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--summaries", type=Path, default=REPO / "studies")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as general_study.py: beside the study's runs on a 2-core machine
    torch.manual_seed(0)

    def cells(runs, suite: str) -> list[str]:
        per_seed = np.stack([measure(params, suite, args.problems) for _, _, params in runs])
        return ([f"{per_seed[:, a:b, 0].mean():.2f}" for a, b in WINDOWS]
                + [f"{per_seed[:, :, 1].mean():+.2f}"])

    head = [f"Adam's share, steps {a + 1}-{b}" for a, b in WINDOWS] + ["s_adam - s_grad"]
    arm_suite_table(args.summaries, "mixed_share",
                    __doc__.split("\n\n")[0].replace("Which", "# Which"),
                    f"python scripts/mixed_share.py --problems {args.problems}", head,
                    mixed_arms(), SUITE_NAMES, cells)


if __name__ == "__main__":
    main()
