"""Probes of what m1 writes, for the generalist study's diagnostic scripts
(scripts/tilt_saturation.py, scripts/mixed_share.py): ``shape_calls`` runs a learned optimizer
on validation problems of a test suite and records every call of its update form, and
``arm_suite_table`` writes one such measure per arm and suite, over the arm's committed seeds,
as a markdown table under studies/general/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from ..evaluation import score
from ..tasks import make_family
from .general import ARMS, STUDY
from .general_runs import committed
from .suites import suite_task

__all__ = ["arm_suite_table", "shape_calls"]


def shape_calls(opt, suite: str, problems: int, n_steps: int,
                record: Callable[[torch.Tensor, torch.Tensor, list[int] | None],
                                 tuple[float, ...]]) -> np.ndarray:
    """(n_steps, k): ``opt`` (a LearnedOptimizer) run for ``n_steps`` on ``problems``
    validation problems of ``suite`` (split val, seed 0), each call of its update form
    (opt.rule.shape(out, direction, sizes)) recorded as ``record(out, direction, sizes)``
    (sizes: the problems' layers' numbers of coordinates, or None), k floats, and
    summed per step. m1 shapes the update once per group of problems of one architecture at
    every step (a mixed suite has several), so each step pools its groups; RuntimeError if
    the steps do not all have the same number of calls."""
    rule = opt.rule
    calls: list[tuple[float, ...]] = []
    shape = rule.shape

    def recording(out: torch.Tensor, direction: torch.Tensor,
                  sizes: list[int] | None = None) -> torch.Tensor:
        calls.append(record(out, direction, sizes))
        return shape(out, direction, sizes)

    rule.shape = recording
    try:
        task = suite_task(suite)
        score({"learned": opt}, make_family(task).sample(problems, 0, "val"), n_steps)
    finally:
        rule.shape = shape
    if len(calls) % n_steps:
        raise RuntimeError(f"{len(calls)} calls of m1's update form in {n_steps} steps: not "
                           "the same number of groups at every step")
    return np.asarray(calls).reshape(n_steps, len(calls) // n_steps, -1).sum(1)


def arm_suite_table(summaries: Path, name: str, title: str, command: str, head: list[str],
                    arms: Iterable[str], suites: Iterable[str],
                    cells: Callable[[list[tuple[str, int, Path]], str], list[str]]) -> Path:
    """Write studies/general/``name``.md: ``title``, the ``command`` that regenerates it, and
    a table with columns arm, suite, seeds and ``head``, one row per arm with committed runs
    and suite, its cells ``cells(runs, suite)`` (runs: general_runs.committed's, the arm's
    seeds). Prints each row as it comes; returns the file written."""
    suites = list(suites)
    header = ["arm", "suite", "seeds"] + head
    lines = [title, "", f"`{command}`, validation problems (split val, seed 0).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in arms:
        runs = committed(summaries, [arm], ARMS[arm][3])
        if not runs:
            continue
        for suite in suites:
            line = f"| {arm} | {suite} | {len(runs)} | " + " | ".join(cells(runs, suite)) + " |"
            print(line, flush=True)
            lines.append(line)
    out = summaries / STUDY / f"{name}.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")
    return out
