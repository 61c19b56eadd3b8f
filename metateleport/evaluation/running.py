"""Running: every optimizer on the same problems, seeded, and timed; the one scorer.

``score`` is what every evaluation of optimizers on a batch of problems runs through: eval_meta.py
(``evaluate``), the studies (metateleport.studies: a run's summary, the seed study, the test-time
ablations, the oracle's headroom). It runs each optimizer from torch's generator seeded at
``seed``, so an optimizer that draws random numbers (random teleports) gives the same curves on
every rerun and every optimizer sees the same draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..inner import InnerOptimizer, run
from ..tasks import Problems, has_held_out, held_out_metrics
from .summaries import EvalResult, summarize

__all__ = ["Scored", "evaluate", "score"]


@dataclass
class Scored:
    """What one optimizer did on M problems in N inner steps.

    losses: (N+1, M), the loss at W_0..W_N of every problem (as ``optimizers.run`` returns it).
    seconds: (N+1,), the wall time at which W_t was reached. held_out: the optimizee's held-out
    "loss" and "accuracy" after the last step, (M,) each (tasks.held_out_metrics), for problems
    with held-out samples; None for the others. refused: (M,) the steps its loss guard refused
    per problem (None without a guard).
    """

    losses: torch.Tensor
    seconds: torch.Tensor
    held_out: dict[str, torch.Tensor] | None
    refused: torch.Tensor | None = None

    @property
    def final(self) -> torch.Tensor:
        """(M,): the loss of every problem after the last step."""
        return self.losses[-1]

    @property
    def ms_per_step(self) -> float:
        return 1000.0 * float(self.seconds[-1]) / (self.losses.shape[0] - 1)


def score(
    optimizers: Mapping[str, InnerOptimizer],
    problems: Problems,
    n_steps: int,
    *,
    seed: int = 0,
    warmup_steps: int = 0,
) -> dict[str, Scored]:
    """Run every optimizer on the same ``problems`` (B = M) for ``n_steps``, in order.

    Each first runs ``warmup_steps`` untimed steps (one-off costs such as the allocator and lazy
    library initialization then do not land on whichever optimizer happens to run first; an
    optimizer that keeps statistics, like the oracle's, counts them too), then its timed run
    from torch's generator seeded at ``seed``. Returns {name: Scored}, in the order given.
    """
    out = {}
    for name, opt in optimizers.items():
        if warmup_steps > 0:
            run(opt, problems, min(warmup_steps, n_steps))
        torch.manual_seed(seed)
        traj = run(opt, problems, n_steps)
        held = held_out_metrics(traj.weights, problems) if has_held_out(problems) else None
        out[name] = Scored(traj.losses, traj.seconds, held, traj.refused)
    return out


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

    The runs are ``score``'s: ``warmup_steps`` untimed steps each, then a timed run from
    torch's generator seeded at ``seed``. See ``summarize`` for threshold, learned, labels and
    the summary. Problems with held-out samples (real-data families) also get the optimizee's
    held-out loss and accuracy.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    runs = score(optimizers, problems, n_steps, seed=seed, warmup_steps=warmup_steps)
    held_out = ({name: r.held_out for name, r in runs.items()} if has_held_out(problems)
                else None)
    return summarize({name: r.losses for name, r in runs.items()},
                     {name: r.seconds for name, r in runs.items()}, threshold, learned,
                     labels=labels, n_boot=n_boot, seed=seed, metadata=metadata,
                     held_out=held_out, refused={name: r.refused for name, r in runs.items()
                                                 if r.refused is not None})
