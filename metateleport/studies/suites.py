"""Test suites for a learned optimizer off and on its family, and VeLO's Adam-equivalent speedup.

``SUITES`` names the families of the generalist issue's table (the paper's task moved along one
axis each) and the in-distribution test stream of the task distribution, fixed before any
generalist run was scored; the shipped specialists' own families; and ``HELD_OUT``, families
outside the distribution's ranges, fixed before any run was scored on them.
``score_suite(params, suite)`` runs the checkpoint and GD and Adam (step sizes searched on the
suite's validation problems, evaluation.baselines) on the suite's test problems and returns,
JSON-ready: per optimizer the final losses, the number of diverged problems and the guard's
refusals, on a family with held-out samples (digits) the optimizee's held-out loss and
accuracy per problem (``held_out_loss``, ``held_out_accuracy``), and for the learned one the
Adam-equivalent speedup per problem: how many steps of tuned Adam reach the loss the optimizer
has at step N, over N (``adam_equivalent``; inf where Adam never gets there within
``ADAM_CAP`` steps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_optimizer
from ..evaluation import baselines, score
from ..stats import ArrayLike, steps_to_threshold
from ..tasks import make_family

__all__ = ["ADAM_CAP", "HELD_OUT", "SUITES", "TRAINED", "adam_equivalent", "score_suite",
           "suite_task"]

#: suite -> the task section it evaluates on (keys not given: the defaults of config.TaskConfig)
SUITES: dict[str, dict[str, Any]] = {
    "distribution": {"family": "distribution"},
    "depth3": {"widths": [20, 20, 20, 20]},
    "wide_middle": {"widths": [20, 50, 20]},
    "wide": {"widths": [40, 40, 40]},
    "unit_span10": {"family": "imbalanced", "unit_span": 10.0},
    "small": {"widths": [10, 10, 10], "n_samples": 10},
    "normal_init": {"init": "normal"},
    "cond1000": {"family": "ill_conditioned", "cond": 1000.0},
    # the shipped specialists' own families (update.pt, paper_update_tele*.pt: the paper's
    # task; imbalanced_* and cond_*: unit_span10 and cond1000 above; digits_*.pt)
    "paper": {},
    "digits": {"family": "digits", "widths": [64, 32, 10], "n_samples": 40, "init": "torch",
               "bias": True},
    # HELD_OUT: outside the distribution's ranges (configs/general_*.yaml: 1-3 hidden layers,
    # widths 8-64, init scales 0.5-2, unit and layer spans 1-10, condition numbers 1-1e3),
    # fixed on 2026-12-01 before any run was scored on them
    "depth4": {"widths": [20, 20, 20, 20, 20]},
    "wide96": {"widths": [96, 96, 96]},
    "narrow6": {"widths": [6, 6, 6], "n_samples": 6},
    "init_scale3": {"init_scale": 3.0},
    "unit_span30": {"family": "imbalanced", "unit_span": 30.0},
    "cond1e4": {"family": "ill_conditioned", "cond": 10000.0},
}
#: the suites outside the task distribution
HELD_OUT = ("depth4", "wide96", "narrow6", "init_scale3", "unit_span30", "cond1e4")
#: Adam steps run to find where it reaches the learned optimizer's final loss
ADAM_CAP = 1000


def adam_equivalent(adam_losses: ArrayLike, targets: ArrayLike, n_steps: int) -> np.ndarray:
    """Per problem: (first step at which Adam's loss is <= the target) / n_steps, inf where it
    never is. adam_losses (T+1, M), targets (M,) (a non-finite target is never reached)."""
    target = torch.as_tensor(targets, dtype=torch.float64).numpy()
    # a diverged run's loss is no target: -inf is never reached
    return steps_to_threshold(adam_losses, np.where(np.isfinite(target), target, -np.inf)) / n_steps


def suite_task(suite: str) -> dict[str, Any]:
    """The task section of ``suite`` with every key config.TaskConfig defaults filled in: what
    make_family builds the suite's problems from, and what score_suite records."""
    from ..config import config_from_dict, config_to_dict

    return config_to_dict(config_from_dict({"task": SUITES[suite]}))["task"]


#: score_suite's ``guard`` for the checkpoint's own guard
TRAINED = "trained"


@torch.no_grad()
def score_suite(params: Path, suite: str, problems: int = 32, n_steps: int = 100,
                guard: float | None | str = TRAINED, teleport: bool = True) -> dict:
    """The checkpoint ``params`` against tuned GD and Adam on ``problems`` test problems of
    ``suite`` (see the module docstring); ``guard``: the checkpoint's own loss guard
    (TRAINED), None for none, or the factor of a LossGuard put in its place; ``teleport``
    False: the checkpoint's m1 alone, its teleports (m2, random or balance) switched off."""
    from ..inner import LossGuard

    opt, _ = load_optimizer(params)
    if guard != TRAINED:
        opt.guard = None if guard is None else LossGuard(float(guard))
    if not teleport:
        opt.move = None
    task = suite_task(suite)
    family = make_family(task)
    test, val = family.sample(problems, 0, "test"), family.sample(problems, 0, "val")
    hand, tuning = baselines(val, n_steps, ["gd", "adam"])
    runs = score({"learned": opt, **hand}, test, n_steps)
    adam = score({"adam": hand["adam"]}, test, ADAM_CAP)["adam"]
    out: dict[str, Any] = {"suite": suite, "task": task, "n_steps": n_steps,
                           "step_sizes": {k: tuning[k]["lr"] for k in ("gd", "adam")}}
    for name, r in runs.items():
        out[name] = {"final": [float(v) for v in r.final],
                     "diverged": int((~torch.isfinite(r.final)).sum())}
        if r.refused is not None:
            out[name]["refused_fraction"] = float(r.refused.sum()) / (n_steps * problems)
        for metric, v in (r.held_out or {}).items():
            out[name][f"held_out_{metric}"] = [float(x) for x in v]
    out["learned"]["adam_equivalent"] = [
        float(v) for v in adam_equivalent(adam.losses, runs["learned"].final, n_steps)]
    return out
