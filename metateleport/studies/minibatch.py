"""Mini-batch training of a real-data MLP with teleports at fixed steps: the shared core of the
generalization study (generalization.py) and the Figure 6 study (figure6.py).

A ``Setup`` names the data (a set of realdata.REAL_SETS), the hidden widths, the size of the
training subset and the batch sizes; ``make(setup, seed)`` is realdata.make_problem with them
(seed s fixes the stratified training subset and the init; held-out = every other sample).
``batch_order`` draws the mini-batches, epochs of a permutation of the training samples (an
epoch's last partial batch dropped), and ``teleport_batches`` the samples each teleport reads,
each from a generator seeded by the seed alone: every condition of one seed starts from the same
init and sees the same batches and teleport batches, so that it pairs with no teleport.

A teleport is a metateleport.Teleporter: its ascent of an objective, or (``random_control``) a
move by a random group element with the same per-layer norms ||T_k||_F (gl) or ||t_k|| (diag)
as the objective teleport it controls, through ``Teleporter.move``. ``train`` runs the steps,
calls the teleports where they are due, and logs the loss on the whole training subset and on
the held-out samples, with the clock of the steps and teleports (evaluation excluded).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..stats import paired_difference, paired_log_ratio
from ..teleporter import Teleporter
from .realdata import REAL_SETS, RealProblem, RealSet, loss_fn, make_problem
from .runs import write_summary

__all__ = ["Setup", "batch_order", "evaluate", "fmt_difference", "fmt_ratio", "fmt_seeds",
           "load_summary", "make", "mix", "random_control", "run_or_load", "setup_dict",
           "teleport_batches", "train"]

#: offsets of the seeds of the batch and teleport-batch generators (apart from the init's)
BATCH_STREAM, TELEPORT_STREAM, RANDOM_STREAM = 10_000, 20_000, 30_000


@dataclass(frozen=True)
class Setup:
    """set: a key of realdata.REAL_SETS; hidden: the hidden widths; n_train: training samples
    per problem; batch: the SGD mini-batch; tele_batch: samples a teleport reads (gl is exact
    on at most d + 1, d the narrowest hidden-layer input)."""

    set: str
    hidden: tuple[int, ...]
    n_train: int
    batch: int
    tele_batch: int

    @property
    def steps_per_epoch(self) -> int:
        return self.n_train // self.batch


def make(setup: Setup, seed: int) -> RealProblem:
    """Problem ``seed`` of ``setup`` (realdata.make_problem with its widths and n_train)."""
    base = REAL_SETS[setup.set]
    return make_problem(setup.set, seed,
                        RealSet(base.loader, tuple(setup.hidden), setup.n_train, base.scale))


def batch_order(n: int, batch: int, steps: int, seed: int) -> list[torch.Tensor]:
    """``steps`` mini-batches of row indices into n training samples: epochs of a permutation
    (generator seeded with seed + BATCH_STREAM), n // batch batches each."""
    gen = torch.Generator().manual_seed(seed + BATCH_STREAM)
    out: list[torch.Tensor] = []
    while len(out) < steps:
        perm = torch.randperm(n, generator=gen)
        out += [perm[i * batch:(i + 1) * batch] for i in range(n // batch)]
    return out[:steps]


def teleport_batches(n: int, size: int, count: int, seed: int) -> list[torch.Tensor]:
    """``count`` draws of ``size`` distinct rows of n (generator seeded with seed +
    TELEPORT_STREAM): the batch of each teleport of a run."""
    gen = torch.Generator().manual_seed(seed + TELEPORT_STREAM)
    return [torch.randperm(n, generator=gen)[:size] for _ in range(count)]


def random_control(tele: Teleporter, model: nn.Module, inputs: torch.Tensor,
                   targets: torch.Tensor, layer_norms: Sequence[float], seed: int,
                   optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """The random control of a teleport: move ``model`` by a group element of ``tele.group``
    in a random direction (i.i.d. normal entries, generator seeded with seed + RANDOM_STREAM)
    with the per-layer norms ``layer_norms`` of the objective teleport it controls, on the same
    batch and with the same optimizer-state rule. Returns the TeleportReport as a dict (its
    objective_* are tele's objective at both ends)."""
    gen = torch.Generator().manual_seed(seed + RANDOM_STREAM)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    params = []
    for lin, norm in zip(linears[:-1], layer_norms):
        d = lin.out_features
        p = torch.randn((d, d) if tele.group == "gl" else (d,), generator=gen,
                        dtype=torch.float64)
        params.append(p * (norm / p.norm()))
    return tele.move(model, inputs, params, targets, optimizer).as_dict()


def evaluate(problem: RealProblem) -> dict[str, float]:
    """Training loss on the whole training subset, held-out loss and accuracy (a sample with
    a non-finite output counts as wrong; a non-finite loss as inf)."""
    with torch.no_grad():
        train = float(loss_fn(problem.model(problem.x), problem.y))
        out = problem.model(problem.x_test)
        held = float(loss_fn(out, problem.y_test))
    right = (out.argmax(1) == problem.labels_test) & torch.isfinite(out).all(1)
    return {"train_loss": train if math.isfinite(train) else math.inf,
            "held_out_loss": held if math.isfinite(held) else math.inf,
            "accuracy": float(right.float().mean())}


Hook = Callable[[RealProblem, torch.optim.Optimizer, int], dict[str, Any]]


def train(problem: RealProblem, optimizer: torch.optim.Optimizer, order: Sequence[torch.Tensor],
          teleports: Mapping[int, Hook], log_every: int) -> dict[str, Any]:
    """Train ``problem.model`` with ``optimizer``, one step per mini-batch of ``order``; before
    step t, ``teleports[t](problem, optimizer, i)`` (i: the teleport's index) if t is a key.

    Logs, at steps 0, log_every, ... and after the last step (the loss at step t is the one
    before the teleport and step at t), the training loss on the whole training subset, the
    held-out loss, and the clock: wall and this thread's CPU seconds spent in steps and
    teleports (evaluation excluded). A non-finite mini-batch loss ends the run as diverged
    (the logs after it are inf). Returns {"steps", "train_loss", "held_out_loss", "wall",
    "cpu": the logs; "teleports": each hook's dict with its "step" and the losses right after
    it; "final": evaluate() at the end; "diverged": the step it diverged at, or None}.
    """
    model, x, y = problem.model, problem.x, problem.y
    logs: dict[str, list] = {k: [] for k in ("steps", "train_loss", "held_out_loss", "wall",
                                             "cpu")}
    records, wall, cpu, diverged = [], 0.0, 0.0, None

    def log(step: int) -> None:
        now = evaluate(problem) if diverged is None else {"train_loss": math.inf,
                                                          "held_out_loss": math.inf}
        for key, value in (("steps", step), ("train_loss", now["train_loss"]),
                           ("held_out_loss", now["held_out_loss"]), ("wall", wall),
                           ("cpu", cpu)):
            logs[key].append(value)

    for t, idx in enumerate(order):
        if t % log_every == 0:
            log(t)
        w0, c0 = time.perf_counter(), time.thread_time()
        if t in teleports:
            record = teleports[t](problem, optimizer, len(records))
            wall += time.perf_counter() - w0
            cpu += time.thread_time() - c0
            after = evaluate(problem)
            records.append({"step": t, **record, "train_loss_after": after["train_loss"],
                            "held_out_loss_after": after["held_out_loss"]})
            w0, c0 = time.perf_counter(), time.thread_time()
        optimizer.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        wall += time.perf_counter() - w0
        cpu += time.thread_time() - c0
        if not math.isfinite(float(loss.detach())):
            diverged = t
            break
    steps = len(order)
    for t in range(diverged + 1 if diverged is not None else steps, steps):
        if t % log_every == 0:
            log(t)
    log(steps)
    final = evaluate(problem)
    if diverged is not None:
        final = {"train_loss": math.inf, "held_out_loss": math.inf,
                 "accuracy": final["accuracy"]}
    return {**logs, "teleports": records, "final": final, "diverged": diverged}


def load_summary(path: Path) -> dict[str, Any] | None:
    """The summary at ``path``, or None if that run has not finished."""
    return json.loads(path.read_text()) if path.is_file() else None


def run_or_load(path: Path, log: Path, compute: Callable[[], dict[str, Any]],
                line: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """The summary at ``path`` if it is there (a finished run is not run again), else
    ``compute()`` written atomically there and ``line(summary)`` logged in ``log``; either
    way as read from JSON."""
    done = load_summary(path)
    if done is not None:
        return done
    summary = json.loads(json.dumps(compute()))  # as it will read back: lists, not tuples
    write_summary(path, summary, log, line(summary))
    return summary


def mix(*ints: int) -> int:
    """One seed from several integers (numpy SeedSequence): the draws of distinct tuples are
    unrelated."""
    return int(np.random.SeedSequence([int(i) for i in ints]).generate_state(1)[0])


def fmt_seeds(rows: Sequence[dict]) -> str:
    """"20" or "20 (3 diverged)": the runs, and how many of them diverged (``train``)."""
    bad = sum(r["diverged"] is not None for r in rows)
    return f"{len(rows)} ({bad} diverged)" if bad else str(len(rows))


def fmt_ratio(a: Sequence[float], b: Sequence[float]) -> str:
    """Paired ratio a / b over seeds (paired_log_ratio; a diverged run is inf): the median
    ratio and its 95% interval, "0.97 [0.95, 1.00]"."""
    r = paired_log_ratio(np.asarray(a, dtype=np.float64)[:, None],
                         np.asarray(b, dtype=np.float64)[:, None])
    lo, hi = r["ci"]
    return f"{math.exp(r['median']):.3g} [{math.exp(lo):.3g}, {math.exp(hi):.3g}]"


def fmt_difference(a: Sequence[float], b: Sequence[float]) -> str:
    """Paired difference a - b over seeds (paired_difference): the mean and its 95%
    interval, "+0.004 [-0.002, +0.010]"."""
    r = paired_difference(np.asarray(a, dtype=np.float64)[:, None],
                          np.asarray(b, dtype=np.float64)[:, None])
    lo, hi = r["ci"]
    return f"{r['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def setup_dict(setup: Setup) -> dict[str, Any]:
    """``setup`` as JSON-ready fields."""
    return {**asdict(setup), "hidden": list(setup.hidden)}
