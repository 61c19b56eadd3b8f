"""The paper's generalization experiment with controls (issue 18 item 4; docs/generalization.md).

A LeakyReLU MLP is trained by SGD on mini-batches of a training subset of a real set (digits,
and breast cancer as a second set; ``GeneralizationStudy.setups``). At a fixed checkpoint (the
start of epoch ``teleport_epoch`` of ``epochs``) one teleport moves it along the orbit of its
weights, then SGD trains on with the same step size and the same batches:

- towards larger or smaller curvature of the minimum (objectives.Curvature) and towards a
  sharper or flatter point (objectives.Sharpness), each with the group ``gl`` (exact on the
  teleport's batch only) and ``diag`` (exact for every input);
- the random control of each: a random group element with the per-layer norms of the objective
  teleport it controls (minibatch.random_control), on the same batch;
- no teleport (``none``), the pair of every condition: the same seed gives the same init, the
  same batches and the same teleport batch.

SGD's step size is chosen once per set on the validation seeds (no teleport, the lowest median
held-out loss at the end; ``tune``). Every finished (condition, seed) writes
studies/<name>/<set>/<condition>/s<seed>.json and is skipped when present; ``table`` reads those
files alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..objectives import Curvature, Sharpness
from ..stats import median
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

__all__ = ["GROUPS", "MOVES", "GeneralizationStudy", "conditions", "run",
           "run_condition", "table", "tune"]

GROUPS = ("gl", "diag")
#: move -> (objective, direction)
MOVES: dict[str, tuple[str, str]] = {
    "curvature_up": ("curvature", "maximize"),
    "curvature_down": ("curvature", "minimize"),
    "sharper": ("sharpness", "maximize"),
    "flatter": ("sharpness", "minimize"),
}


@dataclass(frozen=True)
class GeneralizationStudy:
    """Everything a run of the study reads. setups: set -> Setup; epochs of SGD, teleport at
    the start of ``teleport_epoch``; seeds: the test seeds (paired), val_seeds: the step-size
    choice only; lr_grid: SGD's step sizes; teleport: group -> (steps, step_size) of the
    Teleporter (normalized steps); sharpness_directions: unit directions per radius of
    objectives.Sharpness (the reference's radii 0.1 .. 0.9)."""

    name: str = "generalization"
    setups: dict[str, Setup] = field(default_factory=lambda: {
        # digits' standardized pixels span ~60 dimensions on 600 images and fewer on a random
        # batch: 48 samples are of full rank on every seed (d + 1 = 65 would not be)
        "digits": Setup("digits", (64,), 600, 32, 48),
        "breast_cancer": Setup("breast_cancer", (32,), 200, 16, 30),
    })
    epochs: int = 40
    teleport_epoch: int = 20
    seeds: tuple[int, ...] = tuple(range(20))
    val_seeds: tuple[int, ...] = tuple(range(1000, 1005))
    lr_grid: tuple[float, ...] = tuple(float(v) for v in np.logspace(-2, 0, 5))
    teleport: dict[str, tuple[int, float]] = field(
        default_factory=lambda: {"gl": (10, 0.02), "diag": (10, 0.3)})
    sharpness_directions: int = 20

    def teleporter(self, group: str, move: str) -> Teleporter:
        """The Teleporter of (group, move): plain SGD has no state, so the state rule is the
        Figure 6 study's (transform under diag, reset under gl) and changes nothing here."""
        objective, direction = MOVES[move]
        obj = (Curvature() if objective == "curvature"
               else Sharpness(n_directions=self.sharpness_directions))
        steps, step_size = self.teleport[group]
        return Teleporter(obj, group=group, steps=steps, step_size=step_size,
                          direction=direction,
                          optimizer_state="transform" if group == "diag" else "reset")


def conditions() -> list[str]:
    """"none", then per group each move and its random control ("gl-flatter-random")."""
    out = ["none"]
    for group in GROUPS:
        for move in MOVES:
            out += [f"{group}-{move}", f"{group}-{move}-random"]
    return out


def _folder(study: GeneralizationStudy, summaries: Path, name: str) -> Path:
    return summaries / study.name / name


def _train_once(study: GeneralizationStudy, name: str, condition: str, seed: int, lr: float,
                norms: list[float] | None) -> dict[str, Any]:
    """One run of ``condition`` at ``seed``: SGD at ``lr``, the teleport (if any) at the
    checkpoint; ``norms``: the layer norms of the objective teleport a random control copies."""
    setup = study.setups[name]
    problem = make(setup, seed)
    steps = study.epochs * setup.steps_per_epoch
    order = batch_order(setup.n_train, setup.batch, steps, seed)
    hooks = {}
    if condition != "none":
        group, move = condition.split("-")[:2]
        tele = study.teleporter(group, move)
        idx = teleport_batches(setup.n_train, setup.tele_batch, 1, seed)[0]
        if norms is None:
            def hook(p, opt, i):
                return tele(p.model, p.x[idx], p.labels[idx], opt).as_dict()
        else:
            def hook(p, opt, i):
                return random_control(tele, p.model, p.x[idx], p.labels[idx], norms,
                                      mix(seed, conditions().index(condition)), opt)
        hooks[study.teleport_epoch * setup.steps_per_epoch] = hook
    opt = torch.optim.SGD(problem.model.parameters(), lr=lr)
    return train(problem, opt, order, hooks, setup.steps_per_epoch)


def tune(study: GeneralizationStudy, name: str, summaries: Path) -> dict[str, Any]:
    """SGD's step size for set ``name``: of ``lr_grid``, the lowest median held-out loss at the
    end over the validation seeds, no teleport (first on ties). Written once to
    <name>/tuning.json and read from there afterwards."""
    folder = _folder(study, summaries, name)

    def compute():
        medians = {lr: median([_train_once(study, name, "none", s, lr, None)["final"]
                               ["held_out_loss"] for s in study.val_seeds])
                   for lr in study.lr_grid}
        lr = min(study.lr_grid, key=lambda v: medians[v])
        return {"lr": lr, "grid": list(study.lr_grid), "val_seeds": list(study.val_seeds),
                "medians": [medians[v] for v in study.lr_grid],
                "at_edge": lr in (study.lr_grid[0], study.lr_grid[-1])}

    return run_or_load(folder / "tuning.json", summaries / study.name / "study.log", compute,
                       lambda d: f"{name}: SGD lr {d['lr']:.3g} chosen on validation seeds")


def run_condition(study: GeneralizationStudy, name: str, condition: str, seed: int,
                  summaries: Path) -> dict[str, Any]:
    """The summary of (set, condition, seed): read if present, else run and written. A random
    control runs its objective teleport first (for its layer norms)."""
    lr = tune(study, name, summaries)["lr"]
    norms = None
    if condition.endswith("-random"):
        partner = run_condition(study, name, condition.removesuffix("-random"), seed, summaries)
        norms = partner["teleports"][0]["layer_norms"]

    def compute():
        start = time.thread_time()
        result = _train_once(study, name, condition, seed, lr, norms)
        return {"study": study.name, "set": name, "condition": condition, "seed": seed,
                "setup": setup_dict(study.setups[name]), "lr": lr, "epochs": study.epochs,
                "teleport_epoch": study.teleport_epoch,
                "teleport": None if condition == "none"
                else study.teleport[condition.split("-")[0]],
                "norms_from": None if norms is None else condition.removesuffix("-random"),
                "cpu_seconds": time.thread_time() - start, **result}

    def line(d):
        return (f"{name} {condition} seed {seed}: held-out loss "
                f"{d['final']['held_out_loss']:.4g}, accuracy {d['final']['accuracy']:.3f}")

    return run_or_load(_folder(study, summaries, name) / condition / f"s{seed}.json",
                       summaries / study.name / "study.log", compute, line)


def run(study: GeneralizationStudy, summaries: Path, sets: list[str] | None = None) -> None:
    """Every missing (set, condition, seed), seed by seed (a stopped session leaves whole
    seeds paired)."""
    for name in sets or list(study.setups):
        for seed in study.seeds:
            for condition in conditions():
                run_condition(study, name, condition, seed, summaries)


def _load(study: GeneralizationStudy, name: str, summaries: Path) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for condition in conditions():
        for seed in study.seeds:
            f = _folder(study, summaries, name) / condition / f"s{seed}.json"
            if f.is_file():
                out.setdefault(condition, {})[seed] = json.loads(f.read_text())
    return out


def table(study: GeneralizationStudy, summaries: Path) -> str:
    """Markdown, one table per set, from the summaries alone: per condition, the objective's
    median ratio after / before the teleport (on its batch), the held-out loss right after it
    (ratio to right before, on the held-out samples), and at the end of training the held-out
    loss and training loss as paired ratios to no teleport and held-out accuracy as a paired
    difference, each with its 95% interval over the seeds both have finished."""
    parts = []
    for name in study.setups:
        runs = _load(study, name, summaries)
        if "none" not in runs:
            continue
        setup, base = study.setups[name], runs["none"]
        first = next(iter(base.values()))
        parts.append(
            f"### {name}: {setup.n_train} training samples, MLP "
            f"{'-'.join(str(w) for w in first['setup']['hidden'])}, SGD lr {first['lr']:.3g}, "
            f"batch {setup.batch}, {study.epochs} epochs, teleport at epoch "
            f"{study.teleport_epoch} on {setup.tele_batch} samples\n")
        b = list(base.values())
        parts.append(
            f"No teleport (seeds: {fmt_seeds(b)}): held-out loss median "
            f"{median([r['final']['held_out_loss'] for r in b]):.4g}, accuracy median "
            f"{np.median([r['final']['accuracy'] for r in b]):.3f}, training loss median "
            f"{median([r['final']['train_loss'] for r in b]):.4g}.\n")
        parts.append("| condition | seeds (diverged) | objective after / before | held-out loss "
                     "right after / before | held-out loss vs none | accuracy - none | "
                     "training loss vs none |")
        parts.append("| --- | --- | --- | --- | --- | --- | --- |")
        for condition in conditions()[1:]:
            seeds = sorted(set(runs.get(condition, {})) & set(base))
            if not seeds:
                continue
            a = [runs[condition][s] for s in seeds]
            z = [base[s] for s in seeds]
            tel = [r["teleports"][0] for r in a]
            before = [r["held_out_loss"][study.teleport_epoch] for r in a]
            obj = median([t["objective_after"] / t["objective_before"] for t in tel])
            jump = median([t["held_out_loss_after"] / h for t, h in zip(tel, before)])
            col = [[r["final"][k] for r in rows] for k in ("held_out_loss", "accuracy",
                                                            "train_loss") for rows in (a, z)]
            parts.append(
                f"| {condition} | {fmt_seeds(a)} | {obj:.3g} | {jump:.3g} | "
                f"{fmt_ratio(col[0], col[1])} | {fmt_difference(col[2], col[3])} | "
                f"{fmt_ratio(col[4], col[5])} |")
        parts.append("")
    return "\n".join(parts)
