"""Real data through the torch.optim face: a learned optimizer against tuned SGD and Adam on
scikit-learn's breast cancer and digits sets, scored by the optimizee's held-out accuracy.

A problem of set ``name`` and seed s is an nn.Module MLP, nn.Linear -> LeakyReLU(0.1) ->
nn.Linear with biases at nn.Linear's default init, trained full-batch on a training subset of
the set; every other sample of the set is its held-out set. Seed s fixes both: the subset by a
torch.Generator seeded with s, the init by torch.manual_seed(s) inside torch.random.fork_rng
(the caller's global generator is left as it was). The subset is stratified: each class gets
its share of the n training samples (to within one sample), so that no small subset misses a
class of digits. Features are standardized with the mean and std of the problem's own training
samples (a feature constant on them is only centred): breast cancer's 30 features span about
1e-3 .. 1e3, which no single step size suits. Targets are one-hot, and the loss is the mean over
samples of half the squared error, 1/n sum_i 1/2 ||y_i - f(x_i)||^2 (the task families sum over
samples instead; the mean keeps the hand optimizers' step sizes comparable across sets).

Test problems are seeds 0 .. problems-1; SGD's and Adam's step sizes are chosen on the
validation seeds VAL_SEEDS (a disjoint range) from the log grids GRIDS, by the median final
training loss (a non-finite run counts as inf). Nothing of the test problems enters any choice.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_optimizer
from ..stats import paired_difference
from ..torch_optim import LearnedTorchOptimizer

__all__ = ["GRIDS", "REAL_SETS", "VAL_SEEDS", "RealProblem", "RealSet", "as_scored", "evaluate",
           "hand_results", "loss_fn", "make_problem", "real_table", "run", "run_set", "score_real",
           "score_validation", "tune", "validation_gap", "versus_best_hand"]


@dataclass(frozen=True)
class RealSet:
    """A scikit-learn set as a problem source: ``loader`` (a sklearn.datasets function),
    features multiplied by ``scale`` before standardization, ``hidden`` units (one hidden
    layer, or a tuple: one width per hidden layer), ``n_train`` training samples per problem."""

    loader: str
    hidden: int | tuple[int, ...]
    n_train: int
    scale: float = 1.0


REAL_SETS: dict[str, RealSet] = {
    "breast_cancer": RealSet("load_breast_cancer", 32, 30),  # 569 x 30, 2 classes: 30-32-2
    "digits": RealSet("load_digits", 32, 48, 1 / 16),  # 1797 x 64 (pixels / 16): 64-32-10
}
#: validation seeds (step-size choice only); test seeds are 0 .. problems - 1
VAL_SEEDS = tuple(range(1000, 1016))
#: hand optimizer -> its step-size grid (log-spaced)
GRIDS: dict[str, tuple[float, ...]] = {
    "sgd": tuple(float(v) for v in np.logspace(-3, 1, 9)),
    "adam": tuple(float(v) for v in np.logspace(-4, 0, 9)),
}
HAND: dict[str, type[torch.optim.Optimizer]] = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


@functools.cache
def _load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, d) float64, labels (N,) int) of set ``name``."""
    try:
        from sklearn import datasets
    except ImportError:
        raise ImportError("the real-data scorer needs scikit-learn: pip install -c "
                          "constraints.txt -e \".[digits]\"") from None
    spec = REAL_SETS[name]
    data = getattr(datasets, spec.loader)()
    return data.data.astype(np.float64) * spec.scale, data.target.astype(np.int64)


@dataclass
class RealProblem:
    """One problem: ``model`` (float32 nn.Sequential), training inputs ``x`` (n, d), one-hot
    targets ``y`` (n, c) and labels (n,), the held-out ``x_test``, ``y_test``, ``labels_test``,
    and ``train_idx`` (n,), the training samples' rows in the set."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    labels: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    labels_test: torch.Tensor
    train_idx: np.ndarray


def _stratified(labels: np.ndarray, n: int, gen: torch.Generator) -> np.ndarray:
    """n row indices: a random order, then each class's samples spread evenly (the j-th of a
    class with m samples at (j + 1/2) / m), so the first n hold every class in proportion."""
    order = torch.randperm(len(labels), generator=gen).numpy()
    lab = labels[order]
    rank = np.zeros(len(lab))
    for c in np.unique(lab):
        where = lab == c
        rank[where] = (np.arange(where.sum()) + 0.5) / where.sum()
    return np.sort(order[np.argsort(rank, kind="stable")[:n]])


def make_problem(name: str, seed: int, spec: RealSet | None = None) -> RealProblem:
    """Problem ``seed`` of set ``name`` (see the module docstring); ``spec``: other widths
    and n_train for the same data (its loader and scale are not read), REAL_SETS[name]'s by
    default."""
    spec = REAL_SETS[name] if spec is None else spec
    features, labels = _load(name)
    train = _stratified(labels, spec.n_train, torch.Generator().manual_seed(seed))
    test = np.setdiff1d(np.arange(len(labels)), train)
    mean, std = features[train].mean(0), features[train].std(0)
    std[std == 0] = 1.0
    x = torch.tensor((features - mean) / std, dtype=torch.float32)
    lab = torch.as_tensor(labels)
    classes = int(labels.max()) + 1
    y = nn.functional.one_hot(lab, classes).float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        widths = (features.shape[1],) + (spec.hidden if isinstance(spec.hidden, tuple)
                                         else (spec.hidden,))
        layers: list[nn.Module] = []
        for d_in, d_out in zip(widths, widths[1:]):
            layers += [nn.Linear(d_in, d_out), nn.LeakyReLU(0.1)]
        model = nn.Sequential(*layers, nn.Linear(widths[-1], classes))
    t, h = torch.as_tensor(train), torch.as_tensor(test)
    return RealProblem(model, x[t], y[t], lab[t], x[h], y[h], lab[h], train)


def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over samples of half the squared error: out, y (n, c) -> scalar."""
    return 0.5 * ((y - out) ** 2).sum(1).mean()


def evaluate(problem: RealProblem) -> tuple[float, float, float]:
    """(training loss, held-out accuracy, held-out loss) of ``problem.model`` as it stands; a
    held-out sample with a non-finite output counts as wrong."""
    model = problem.model
    with torch.no_grad():
        final = float(loss_fn(model(problem.x), problem.y))
        out = model(problem.x_test)
        held = float(loss_fn(out, problem.y_test))
    right = (out.argmax(1) == problem.labels_test) & torch.isfinite(out).all(1)
    return final, float(right.float().mean()), held


def _flat(model: nn.Module) -> torch.Tensor:
    """All parameters of ``model`` as one float64 vector (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()


def run(problem: RealProblem, make_opt: Callable[[Any], torch.optim.Optimizer], n_steps: int,
        teleport: bool = False, trace: bool = False,
        on_step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None
        ) -> dict[str, Any]:
    """Train ``problem.model`` for n_steps full-batch steps of make_opt(model.parameters()),
    each ``opt.step(closure)``, after ``opt.start(model)`` where the optimizer has that
    method (LearnedTorchOptimizer.start); with ``teleport`` (a LearnedTorchOptimizer) also
    ``opt.teleport`` after every step. A non-finite loss ends the run as diverged. Returns
    {"final": final training loss (inf if diverged), "accuracy": held-out accuracy (a sample
    with a non-finite output counts as wrong), "held_out_loss", "diverged", and "refused" and
    "tele_refused" (the guard's refused steps and teleports) where the optimizer counts them};
    with ``trace`` also "trace": {"loss", "accuracy", "moved"}, the training loss, held-out
    accuracy and distance from the initial parameters (||theta - theta_0|| / ||theta_0|| over
    all of them) before the first step and after every step (and its teleport) up to the last
    one taken (evaluated without gradients: the trajectory is the same as without ``trace``).
    ``on_step``: called after every step that returned a finite loss, before its teleport, as
    on_step(before, after, grad): all parameters before and after that step and the gradient
    it was taken at, each one float64 vector."""
    model, x, y = problem.model, problem.x, problem.y
    opt = make_opt(model.parameters())
    if callable(getattr(opt, "start", None)):
        opt.start(model)  # e.g. a checkpoint meta-trained from balanced starts balances it
    start = _flat(model) if trace else None

    def record() -> tuple[float, float, float, float]:
        final, accuracy, held = evaluate(problem)
        return final, accuracy, held, float((_flat(model) - start).norm() / start.norm())

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss.detach()

    steps = [record()] if trace else []
    diverged = False
    for _ in range(n_steps):
        before = _flat(model) if on_step is not None else None
        if not math.isfinite(float(opt.step(closure))):
            diverged = True
            break
        if on_step is not None:
            on_step(before, _flat(model),
                    torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double())
        if teleport:
            opt.teleport(model, x, problem.labels)
        if trace:
            steps.append(record())
    final, accuracy, held = evaluate(problem)
    diverged = diverged or not math.isfinite(final)
    result: dict[str, Any] = {"final": math.inf if diverged else final, "accuracy": accuracy,
                              "held_out_loss": held if math.isfinite(held) else math.inf,
                              "diverged": diverged}
    shared = opt.state.get("learned", {}) if isinstance(opt, LearnedTorchOptimizer) else {}
    if "guard_refused" in shared:
        result["refused"] = int(shared["guard_refused"])
        result["tele_refused"] = int(shared.get("tele_refused", 0))
    if trace:
        result["trace"] = {"loss": [v[0] for v in steps], "accuracy": [v[1] for v in steps],
                           "moved": [v[3] for v in steps]}
    return result


def run_set(name: str, seeds, make_opt, n_steps: int, teleport: bool = False) -> dict[str, Any]:
    """run() on the problems ``seeds`` of ``name``, gathered per key: {"final": [...], ...,
    "diverged": count, "refused" and "tele_refused": the guard's refused steps and teleports
    (if counted)}."""
    rs = [run(make_problem(name, s), make_opt, n_steps, teleport) for s in seeds]
    out: dict[str, Any] = {k: [r[k] for r in rs] for k in ("final", "accuracy", "held_out_loss")}
    out["diverged"] = sum(r["diverged"] for r in rs)
    if all("refused" in r for r in rs):
        out["refused"] = sum(r["refused"] for r in rs)
        out["tele_refused"] = sum(r["tele_refused"] for r in rs)
    return out


def tune(name: str, kind: str, n_steps: int, grid: tuple[float, ...] | None = None,
         val_seeds: tuple[int, ...] | None = None,
         make: type[torch.optim.Optimizer] | None = None) -> dict[str, Any]:
    """{"lr": the value of ``grid`` (default GRIDS[kind]) with the lowest median final
    training loss of HAND[kind] (or ``make``, an optimizer class of that kind) over the
    validation problems ``val_seeds`` (default VAL_SEEDS; first on ties), "medians": {lr:
    that median}, "at_edge": whether it is the grid's first or last value}."""
    make = HAND[kind] if make is None else make
    grid = GRIDS[kind] if grid is None else grid
    val_seeds = VAL_SEEDS if val_seeds is None else val_seeds
    medians = {}
    for lr in grid:
        finals = run_set(name, val_seeds, functools.partial(make, lr=lr), n_steps)["final"]
        medians[lr] = float(np.median(finals))
    best = min(grid, key=lambda lr: medians[lr])
    return {"lr": best, "medians": medians, "at_edge": best in (grid[0], grid[-1])}


@functools.cache
def _hand_cached(name: str, seeds: tuple, n_steps: int, grids: tuple,
                 val_seeds: tuple) -> dict[str, Any]:
    """{kind: {**_runs on the problems ``seeds`` at the step size tune chose on ``val_seeds``,
    "tuning": tune's result}} for every (kind, grid) of ``grids``."""
    out = {}
    for kind, grid in grids:
        tuning = tune(name, kind, n_steps, grid, val_seeds)
        out[kind] = {**run_set(name, seeds, functools.partial(HAND[kind], lr=tuning["lr"]),
                             n_steps), "tuning": tuning}
    return out


def hand_results(name: str, problems: int = 32, n_steps: int = 100) -> dict[str, Any]:
    """Tuned SGD and Adam on the test problems of ``name``: {kind: {"final", "accuracy",
    "held_out_loss" (per test problem), "diverged", "tuning" (tune's result)}}, computed once
    per (set, problems, n_steps, GRIDS, VAL_SEEDS) in this process."""
    key = (name, tuple(range(problems)), n_steps, tuple(GRIDS.items()), tuple(VAL_SEEDS))
    return copy.deepcopy(_hand_cached(*key))


def as_scored(learned) -> Callable[[Any], LearnedTorchOptimizer]:
    """``make_opt`` for run() of a LearnedOptimizer ``learned`` (checkpoint.load_optimizer's)
    as score_real runs it: LearnedTorchOptimizer with nn.LSTM's kernel (fused=False), as every
    committed score was taken."""
    return functools.partial(LearnedTorchOptimizer, learned=learned, fused=False)


def score_real(params: Path | None, name: str, problems: int = 32, n_steps: int = 100, *,
               hand: dict[str, Any] | None = None, teleport: bool = True) -> dict[str, Any]:
    """The checkpoint ``params`` (LearnedTorchOptimizer with the checkpoint's guard) and tuned
    SGD and Adam on test problems 0 .. problems-1 of ``name``, JSON-ready: {"set", "n_steps",
    "problems", "lr": {kind: chosen step size}, "sgd", "adam" and (params given) "learned":
    {"final", "accuracy", "held_out_loss" per test problem, "diverged", "refused" (learned,
    when its guard counts)}}. ``hand``: a previous hand_results(name, problems, n_steps) to
    reuse. ``teleport``: a checkpoint that teleports (m2, random or balance) also does after
    every step, as its class docstring asks; False scores its m1 alone."""
    if name not in REAL_SETS:
        raise ValueError(f"unknown real set {name!r}; allowed: {list(REAL_SETS)}")
    hand = hand if hand is not None else hand_results(name, problems, n_steps)
    out: dict[str, Any] = {"set": name, "n_steps": n_steps, "problems": problems,
                           "lr": {k: v["tuning"]["lr"] for k, v in hand.items()}, **hand}
    if params is not None:
        learned, _ = load_optimizer(params)
        moves = teleport and learned.move is not None
        out["learned"] = {"params": str(params), "variant": learned.variant, "teleport": moves,
                          **run_set(name, range(problems), as_scored(learned), n_steps,
                                  moves)}
    return out


def score_validation(params: Path, name: str, n_steps: int = 100) -> dict[str, Any]:
    """The checkpoint ``params`` and tuned SGD and Adam (their step sizes chosen there, as
    tune does) on the validation problems VAL_SEEDS of ``name``, never a test problem,
    JSON-ready: {"set", "n_steps", "seeds", "sgd", "adam", "learned": {"final", "accuracy",
    "held_out_loss" per validation problem, "diverged", ...}}, run as score_real runs a
    checkpoint (its m2 teleports after every step). What a choice among learned optimizers may
    read about real data (validation_gap)."""
    if name not in REAL_SETS:
        raise ValueError(f"unknown real set {name!r}; allowed: {list(REAL_SETS)}")
    hand = _hand_cached(name, tuple(VAL_SEEDS), n_steps, tuple(GRIDS.items()), tuple(VAL_SEEDS))
    hand = {kind: {**{k: v for k, v in r.items() if k != "tuning"}, "lr": r["tuning"]["lr"]}
            for kind, r in copy.deepcopy(hand).items()}
    learned, _ = load_optimizer(params)
    moves = learned.move is not None
    return {"set": name, "n_steps": n_steps, "seeds": list(VAL_SEEDS), **hand,
            "learned": {"params": str(params), "teleport": moves,
                        **run_set(name, VAL_SEEDS, as_scored(learned), n_steps, moves)}}


def validation_gap(found: dict[str, Any]) -> float:
    """Of a score_validation result: the learned optimizer's mean held-out accuracy over the
    validation problems minus the better tuned hand optimizer's (by that mean)."""
    best = max(float(np.mean(found[kind]["accuracy"])) for kind in HAND)
    return float(np.mean(found["learned"]["accuracy"])) - best


def versus_best_hand(found: dict[int, dict[str, Any]], hands: Sequence[str] = tuple(HAND),
                     key: str = "accuracy") -> tuple[str, np.ndarray, dict]:
    """For the score_real results of one optimizer's seeds on one set (seed -> result, the
    same test problems; or results with other ``hands`` and accuracy ``key``, such as
    studies.suites.score_suite's on digits): the better tuned hand optimizer, by median
    held-out accuracy (its results are the same in every seed's file), the learned accuracies
    (S, M) and their paired difference against its (stats.paired_difference)."""
    seeds = sorted(found)
    first = found[seeds[0]]
    best = max(hands, key=lambda k: float(np.median(first[k][key])))
    acc = np.array([found[s]["learned"][key] for s in seeds])
    return best, acc, paired_difference(acc, [first[best][key]] * len(seeds))


def real_table(scores: list[dict[str, Any]]) -> str:
    """A markdown table of score_real results (several checkpoints on one set, whose SGD and
    Adam rows are taken from the first): per optimizer the median final training loss (a
    diverged problem counts as inf), the median held-out accuracy, diverged problems and the
    guard's refused steps ("-" where no guard counts them)."""
    first = scores[0]
    rows = [(s["learned"]["params"] + (" (+teleport)" if s["learned"]["teleport"] else ""),
             "", s["learned"]) for s in scores if "learned" in s]
    rows += [(kind, f"{first['lr'][kind]:.3g}", first[kind]) for kind in HAND]
    n, steps = first["problems"], first["n_steps"]
    lines = [f"{first['set']}, {n} test problems, {steps} steps:", "",
             f"| optimizer | lr | median training loss at step {steps} | median held-out "
             "accuracy | diverged | refused |", "| --- | --- | --- | --- | --- | --- |"]
    for name, lr, r in rows:
        lines.append(f"| {name} | {lr} | {np.median(r['final']):.3g} | "
                     f"{np.median(r['accuracy']):.3f} | {r['diverged']}/{n} | "
                     f"{r.get('refused', '-')} |")
    return "\n".join(lines)
