"""The paper's Figure 6 with controls (issue 18 item 5; docs/generalization.md): AdaGrad,
SGD+momentum, RMSProp and Adam (torch.optim), each with and without gradient-norm teleports.

Data: digits (MNIST, the paper's set, is not available offline), an MLP of two hidden layers
trained on mini-batches of a training subset (``Figure6Study.setup``); held-out = every other
image. Conditions per optimizer, each seed paired with ``none`` (same init, same batches, same
teleport batches):

- ``none``: the optimizer alone;
- ``gl`` / ``diag``: Teleporter(GradNormSq, direction "maximize") at the steps ``teleport_at``,
  each on its own batch of ``setup.tele_batch`` training samples; the optimizer's state is reset
  under gl (the public reference's choice: no state transforms with a move that depends on the
  batch) and transformed under diag (state_transport.py: exact);
- ``gl-random`` / ``diag-random``: at the same steps, random group elements with the per-layer
  norms of the paired objective teleports (minibatch.random_control), same state rule;
- ``diag-reset``: the diag teleport with the state reset instead, the control of the transport.

Step sizes are searched on the validation seeds, never on the test seeds: the optimizer's lr
on ``lr_grids`` without teleports, then the teleport's step size on ``tele_grid`` per group at
that lr, each by the lowest median (over the validation seeds) of the mean log training loss
over the logged steps (rewarding a lower loss sooner as well as at the end). Summaries:
studies/<name>/<optimizer>/<condition>/s<seed>.json, the choice in <optimizer>/tuning.json.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..objectives import GradNormSq
from ..stats import median, quantile
from ..teleporter import Teleporter
from .minibatch import (
    Setup,
    batch_order,
    fmt_difference,
    fmt_ratio,
    fmt_seeds,
    make,
    mix,
    random_control,
    run_or_load,
    setup_dict,
    teleport_batches,
    train,
)

__all__ = ["CONDITIONS", "OPTIMIZERS", "Figure6Study", "figure", "make_optimizer", "run",
           "run_condition", "table", "tune"]

#: optimizer -> (label, torch.optim class, its options besides lr)
OPTIMIZERS: dict[str, tuple[str, type[torch.optim.Optimizer], dict[str, Any]]] = {
    "adagrad": ("AdaGrad", torch.optim.Adagrad, {}),
    "momentum": ("SGD+momentum 0.9", torch.optim.SGD, {"momentum": 0.9}),
    "rmsprop": ("RMSProp", torch.optim.RMSprop, {}),
    "adam": ("Adam", torch.optim.Adam, {}),
}
CONDITIONS = ("none", "gl", "gl-random", "diag", "diag-random", "diag-reset")


def _grid(lo: float, hi: float, n: int = 7) -> tuple[float, ...]:
    return tuple(float(v) for v in np.logspace(lo, hi, n))


@dataclass(frozen=True)
class Figure6Study:
    """Everything a run reads: setup (digits, 64-64-64-10, 600 training images, batch 32,
    teleports on 48 samples: digits' pixels span ~60 dimensions, fewer on a random batch);
    steps of the optimizer, log_every; teleport_at: the steps teleported before; tele_steps:
    the Teleporter's normalized steps; tele_grid: its step sizes searched; seeds (test,
    paired) and val_seeds (the searches only); lr_grids per optimizer."""

    name: str = "figure6"
    setup: Setup = Setup("digits", (64, 64), 600, 32, 48)
    steps: int = 300
    log_every: int = 10
    teleport_at: tuple[int, ...] = (0, 50, 100, 150)
    tele_steps: int = 10
    tele_grid: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
    seeds: tuple[int, ...] = tuple(range(20))
    val_seeds: tuple[int, ...] = tuple(range(1000, 1005))
    lr_grids: dict[str, tuple[float, ...]] = field(default_factory=lambda: {
        "adagrad": _grid(-3, 0), "momentum": _grid(-3, 0), "rmsprop": _grid(-4, -1),
        "adam": _grid(-4, -1)})
    optimizers: tuple[str, ...] = tuple(OPTIMIZERS)

    def teleporter(self, condition: str, step_size: float) -> Teleporter:
        group = condition.split("-")[0]
        state = "transform" if condition in ("diag", "diag-random") else "reset"
        return Teleporter(GradNormSq(), group=group, steps=self.tele_steps,
                          step_size=step_size, direction="maximize", optimizer_state=state)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """OPTIMIZERS[name] at step size lr."""
    _, cls, options = OPTIMIZERS[name]
    return cls(params, lr=lr, **options)


def _train_once(study: Figure6Study, opt_name: str, condition: str, seed: int, lr: float,
                step_size: float | None, norms: list[list[float]] | None) -> dict[str, Any]:
    """One run: ``opt_name`` at ``lr``, the teleports of ``condition`` at ``step_size``;
    ``norms``: per teleport, the layer norms a random control copies."""
    setup = study.setup
    problem = make(setup, seed)
    order = batch_order(setup.n_train, setup.batch, study.steps, seed)
    hooks = {}
    if condition != "none":
        tele = study.teleporter(condition, step_size)
        batches = teleport_batches(setup.n_train, setup.tele_batch, len(study.teleport_at),
                                   seed)

        def hook(p, opt, i):
            idx = batches[i]
            if norms is None:
                return tele(p.model, p.x[idx], p.labels[idx], opt).as_dict()
            return random_control(tele, p.model, p.x[idx], p.labels[idx],
                                  norms[min(i, len(norms) - 1)],
                                  mix(seed, CONDITIONS.index(condition), i), opt)

        hooks = {t: hook for t in study.teleport_at}
    opt = make_optimizer(opt_name, problem.model.parameters(), lr)
    return train(problem, opt, order, hooks, study.log_every)


def _score(result: dict[str, Any]) -> float:
    """The search criterion: the mean log training loss over the logged steps (inf if any
    is not finite)."""
    losses = np.asarray(result["train_loss"], dtype=np.float64)
    return float(np.log(losses).mean()) if np.isfinite(losses).all() else math.inf


def tune(study: Figure6Study, opt_name: str, summaries: Path) -> dict[str, Any]:
    """The lr of ``opt_name`` and the teleport step size per group, searched on the
    validation seeds (module docstring); written once to <optimizer>/tuning.json."""
    folder = summaries / study.name / opt_name

    def search(condition, lr, grid):
        """The best of ``grid``: lrs without teleports (lr None), or step sizes at lr."""
        def one(seed, v):
            return _score(_train_once(study, opt_name, condition, seed,
                                      v if lr is None else lr, None if lr is None else v, None))

        medians = [median([one(s, v) for s in study.val_seeds]) for v in grid]
        best = grid[int(np.argmin(medians))]
        return {"chosen": best, "grid": list(grid), "medians": medians,
                "at_edge": best in (grid[0], grid[-1])}

    def compute():
        lr = search("none", None, study.lr_grids[opt_name])
        lr_value = lr["chosen"]
        out = {"optimizer": opt_name, "val_seeds": list(study.val_seeds), "lr": lr}
        for group in ("gl", "diag"):
            out[f"{group}_step_size"] = search(group, lr_value, study.tele_grid)
        return out

    return run_or_load(folder / "tuning.json", summaries / study.name / "study.log", compute,
                       lambda d: f"{opt_name}: lr {d['lr']['chosen']:.3g}, teleport step gl "
                                 f"{d['gl_step_size']['chosen']:.3g}, diag "
                                 f"{d['diag_step_size']['chosen']:.3g}")


def run_condition(study: Figure6Study, opt_name: str, condition: str, seed: int,
                  summaries: Path) -> dict[str, Any]:
    """The summary of (optimizer, condition, seed): read if present, else run and written. A
    random control runs its objective teleport's condition first (for the norms)."""
    tuning = tune(study, opt_name, summaries)
    lr = tuning["lr"]["chosen"]
    step_size = (None if condition == "none"
                 else tuning[f"{condition.split('-')[0]}_step_size"]["chosen"])
    norms = None
    if condition.endswith("-random"):
        partner = run_condition(study, opt_name, condition.removesuffix("-random"), seed,
                                summaries)
        norms = [t["layer_norms"] for t in partner["teleports"]]

    def compute():
        start = time.thread_time()
        result = _train_once(study, opt_name, condition, seed, lr, step_size, norms)
        return {"study": study.name, "optimizer": opt_name, "condition": condition,
                "seed": seed, "setup": setup_dict(study.setup), "lr": lr,
                "tele_step_size": step_size, "tele_steps": study.tele_steps,
                "teleport_at": list(study.teleport_at),
                "norms_from": None if norms is None else condition.removesuffix("-random"),
                "cpu_seconds": time.thread_time() - start, **result}

    def line(d):
        return (f"{opt_name} {condition} seed {seed}: final training loss "
                f"{d['final']['train_loss']:.4g}, accuracy {d['final']['accuracy']:.3f}")

    path = summaries / study.name / opt_name / condition / f"s{seed}.json"
    return run_or_load(path, summaries / study.name / "study.log", compute, line)


def run(study: Figure6Study, summaries: Path, optimizers: list[str] | None = None) -> None:
    """Every missing (optimizer, condition, seed), seed by seed."""
    for opt_name in optimizers or list(study.optimizers):
        for seed in study.seeds:
            for condition in CONDITIONS:
                run_condition(study, opt_name, condition, seed, summaries)


def _load(study: Figure6Study, opt_name: str, summaries: Path) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for condition in CONDITIONS:
        for seed in study.seeds:
            f = summaries / study.name / opt_name / condition / f"s{seed}.json"
            if f.is_file():
                out.setdefault(condition, {})[seed] = json.loads(f.read_text())
    return out


def table(study: Figure6Study, summaries: Path) -> str:
    """Markdown from the summaries alone: per optimizer and condition, the training loss (on
    the whole training subset) at the middle step and at the end as paired ratios to no
    teleport, held-out accuracy as a paired difference, each with its 95% interval over the
    seeds both have finished, and the median seconds per run (wall; steps and teleports)."""
    mid = study.steps // 3
    k = mid // study.log_every
    lines = [f"Digits, MLP {'-'.join(str(w) for w in (64,) + study.setup.hidden + (10,))}, "
             f"{study.setup.n_train} training images, batch {study.setup.batch}, "
             f"{study.steps} steps; teleports before steps "
             f"{', '.join(str(t) for t in study.teleport_at)}, {study.tele_steps} normalized "
             f"steps each on {study.setup.tele_batch} samples.\n",
             "Row none: medians over seeds; other rows: paired ratio (loss) or difference "
             "(accuracy) to none, with 95% intervals.\n",
             "| optimizer (lr) | condition | seeds (diverged) | teleport step | training loss "
             f"at step {mid} | final training loss | held-out accuracy | s per run |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for opt_name in study.optimizers:
        runs = _load(study, opt_name, summaries)
        if "none" not in runs:
            continue
        base = runs["none"]
        first = next(iter(base.values()))
        label = f"{OPTIMIZERS[opt_name][0]} ({first['lr']:.3g})"
        b = list(base.values())
        lines.append(
            f"| {label} | none | {fmt_seeds(b)} | - | "
            f"{median([r['train_loss'][k] for r in b]):.4g} | "
            f"{median([r['final']['train_loss'] for r in b]):.4g} | "
            f"{np.median([r['final']['accuracy'] for r in b]):.3f} | "
            f"{np.median([r['wall'][-1] for r in b]):.2f} |")
        for condition in CONDITIONS[1:]:
            seeds = sorted(set(runs.get(condition, {})) & set(base))
            if not seeds:
                continue
            a, z = [runs[condition][s] for s in seeds], [base[s] for s in seeds]

            def pair(fmt, get, a=a, z=z):
                return fmt([get(r) for r in a], [get(r) for r in z])

            lines.append(
                f"| {label} | {condition} | {fmt_seeds(a)} | {a[0]['tele_step_size']:.3g} | "
                f"{pair(fmt_ratio, lambda r: r['train_loss'][k])} | "
                f"{pair(fmt_ratio, lambda r: r['final']['train_loss'])} | "
                f"{pair(fmt_difference, lambda r: r['final']['accuracy'])} | "
                f"{np.median([r['wall'][-1] for r in a]):.2f} |")
    return "\n".join(lines)


def figure(study: Figure6Study, summaries: Path, out: Path) -> Path | None:
    """Median training loss against steps (top) and against wall seconds (bottom), one column
    per optimizer, every condition, written to ``out`` (png). None, and nothing written, when
    matplotlib is not installed or nothing has finished."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    data = {o: _load(study, o, summaries) for o in study.optimizers}
    data = {o: r for o, r in data.items() if "none" in r}
    if not data:
        return None
    fig, axes = plt.subplots(2, len(data), figsize=(4 * len(data), 6.5), squeeze=False)
    for j, (opt_name, runs) in enumerate(data.items()):
        for condition in CONDITIONS:
            rows = list(runs.get(condition, {}).values())
            if not rows:
                continue
            steps = rows[0]["steps"]
            loss = quantile(np.array([r["train_loss"] for r in rows]), 0.5, 0)
            wall = np.median(np.array([r["wall"] for r in rows]), 0)
            style = {"label": condition, "lw": 1.2,
                     "ls": "--" if condition.endswith(("random", "reset")) else "-"}
            axes[0, j].plot(steps, loss, **style)
            axes[1, j].plot(wall, loss, **style)
        axes[0, j].set_title(OPTIMIZERS[opt_name][0])
        axes[0, j].set_xlabel("step")
        axes[1, j].set_xlabel("wall seconds (median)")
        for ax in axes[:, j]:
            ax.set_yscale("log")
    axes[0, 0].set_ylabel("training loss (median over seeds)")
    axes[1, 0].set_ylabel("training loss (median over seeds)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
