"""Result summaries: loss curves of every optimizer on one batch of problems, reduced to the
numbers of the report (docs/design.md section 7).

``summarize`` turns the loss curves (N+1, M) and wall times (N+1,) of each optimizer into:

- the loss at steps 1, 10, 30, 100 (those <= N) and at N: median and mean over problems with 95%
  percentile-bootstrap intervals;
- the number of steps to reach a loss threshold (median over problems; never reached = inf);
- wall-clock milliseconds per inner step, and the loss reached within a common wall time;
- for every learned optimizer, its per-initialization win rate against every other optimizer.

A diverged run (non-finite loss) counts as an infinite loss everywhere: a median is infinite when
at least half of the runs diverged, a mean as soon as one did. The median is the usual one (mean
of the two middle values for even M), as ``numpy.median``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..stats import bootstrap_ci, quantile, steps_to_threshold, win_rate

__all__ = ["REPORT_STEPS", "EvalResult", "summarize"]

REPORT_STEPS = (1, 10, 30, 100)


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
    refused: Mapping[str, torch.Tensor] | None = None,
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
    ``held_out`` = {metric: {median, median_ci, mean, mean_ci}}. ``not_improved``: problems
    whose final loss is not below their initial one (finite or not). With ``refused``
    (refused[name] (M,), the steps a loss guard refused per problem, inner.Trajectory):
    ``guard`` = {"refused_fraction": refused steps over all steps, "problems_refused": problems
    with at least one}, reported beside ``diverged`` and ``not_improved`` so that a guard that
    freezes a problem is seen, not hidden.
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
            "not_improved": int((~(finals[name] < curves[name][0])).sum()),
            "steps_to_threshold": {"median": float(quantile(reach, 0.5)),
                                   "never": int(np.isinf(reach).sum())},
            "ms_per_step": 1000.0 * float(times[name][-1]) / n_steps,
        }
        within = int((times[name] <= budget * (1 + 1e-9)).nonzero().max())
        summary[name]["at_time"] = {"seconds": budget, "step": within,
                                    "median": float(quantile(curves[name][within], 0.5))}
        if refused and name in refused:
            r = torch.as_tensor(refused[name]).detach().to("cpu", torch.float64)
            summary[name]["guard"] = {"refused_fraction": float(r.sum()) / (n_steps * len(r)),
                                      "problems_refused": int((r > 0).sum())}
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

