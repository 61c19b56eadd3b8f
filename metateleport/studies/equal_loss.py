"""Held-out accuracy at equal training loss on the real sets (docs/results.md, "The
generalist"): is a learned optimizer's accuracy gap to tuned SGD the training loss it reaches
in 100 steps, or the solution its path finds?

For each run of the general study (an arm's committed chosen iterate, studies/general/<arm>/
s<seed>.pt) and real set, on the test problems of studies.realdata, it traces the training
loss and held-out accuracy after every step: the learned optimizer's 100 steps (as
realdata.score_real runs it: with its guard, teleporting after every step), and tuned SGD's
and Adam's (the step sizes realdata.tune chose for 100 steps) for ``long_steps``. It pairs,
problem by problem:

- "at the learned loss": the learned optimizer at step 100 against the hand optimizer at the
  first step where its training loss is at or below the learned one's (a problem where the
  hand optimizer never gets there within ``long_steps`` is paired with its last step, and
  counted);
- "stopped at the hand loss": the learned optimizer at the first step where its training loss
  is at or below the hand optimizer's at step 100 (never: its step 100, counted) against the
  hand optimizer at step 100;

and it records how far each moved from its initialization (||theta - theta_0|| / ||theta_0||
over all parameters). A summary per (arm, seed, set) lands in
``<summaries>/general/equal_loss/``; ``table`` rebuilds the markdown from those alone.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import load_optimizer
from ..stats import difference_text, median, paired_difference
from .realdata import HAND, REAL_SETS, as_scored, hand_results, make_problem, run
from .runs import write_summary

__all__ = ["ARMS", "HAND_STEPS", "N_STEPS", "first_reaching", "hand_traces", "score_run",
           "table"]

N_STEPS = 100
#: the steps at which the hand optimizers' path is tabulated
HAND_STEPS = (10, 30, 100, 300, 1000, 2000)
#: the general study's arms this looks at by default: the shipped teleporting generalist, the
#: bound-1 arm it replaced, and the generalist LSTM(update)
ARMS = ("update_tele_diag-noguard-long-bound3", "update_tele_diag-noguard-long", "update")
FOLDER = Path("general") / "equal_loss"


def first_reaching(losses: Sequence[float], target: float) -> int | None:
    """The first index i with losses[i] <= target, None if there is none."""
    for i, v in enumerate(losses):
        if v <= target:
            return i
    return None


def _traced(name: str, seed: int, make_opt: Callable, n_steps: int,
            teleport: bool) -> dict[str, Any]:
    """realdata.run with its trace on problem ``seed`` of ``name``."""
    return run(make_problem(name, seed), make_opt, n_steps, teleport, trace=True)


def hand_traces(name: str, problems: int, long_steps: int) -> dict[str, dict[str, Any]]:
    """kind -> {"lr", "loss", "accuracy": (problems, long_steps + 1) arrays, "moved": per
    problem after long_steps, "moved100": after step 100} for tuned SGD and Adam."""
    hand = hand_results(name, problems, N_STEPS)
    out = {}
    for kind in HAND:
        lr = hand[kind]["tuning"]["lr"]
        longer = [_traced(name, s, functools.partial(HAND[kind], lr=lr), long_steps, False)
                  for s in range(problems)]
        if any(r["diverged"] for r in longer):
            raise RuntimeError(f"tuned {kind} diverges on {name} within {long_steps} steps")
        out[kind] = {"lr": lr, "loss": np.array([r["trace"]["loss"] for r in longer]),
                     "accuracy": np.array([r["trace"]["accuracy"] for r in longer]),
                     "moved": [r["trace"]["moved"][-1] for r in longer],
                     "moved100": [r["trace"]["moved"][N_STEPS] for r in longer]}
    return out


def score_run(params: Path, name: str, hand: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The summary of one learned run on set ``name`` against ``hand`` (hand_traces), JSON
    ready: {"learned": {"final", "accuracy", "moved"} per problem, and per hand kind
    {"lr", "at_learned_loss": {"step", "accuracy"}, "reached", "stopped_at_hand_loss":
    {"step", "accuracy"}, "stopped", "hand100": {"final", "accuracy", "moved"}}}."""
    learned, _ = load_optimizer(params)
    moves = learned.move is not None
    problems = hand["sgd"]["loss"].shape[0]
    rs = [_traced(name, s, as_scored(learned), N_STEPS, moves) for s in range(problems)]
    if any(r["diverged"] for r in rs):
        raise RuntimeError(f"{params} diverges on {name}: no training loss to match")
    out: dict[str, Any] = {"learned": {"final": [r["final"] for r in rs],
                                       "accuracy": [r["accuracy"] for r in rs],
                                       "moved": [r["trace"]["moved"][-1] for r in rs]}}
    for kind, h in hand.items():
        at, stopped = [], []
        for i, r in enumerate(rs):
            j = first_reaching(h["loss"][i], r["final"])
            at.append((j, float(h["accuracy"][i, -1 if j is None else j])))
            k = first_reaching(r["trace"]["loss"], float(h["loss"][i, N_STEPS]))
            stopped.append((k, r["trace"]["accuracy"][N_STEPS if k is None else k]))
        out[kind] = {
            "lr": h["lr"],
            "at_learned_loss": {"step": [j for j, _ in at], "accuracy": [a for _, a in at]},
            "reached": sum(j is not None for j, _ in at),
            "stopped_at_hand_loss": {"step": [k for k, _ in stopped],
                                     "accuracy": [a for _, a in stopped]},
            "stopped": sum(k is not None for k, _ in stopped),
            "hand100": {"final": h["loss"][:, N_STEPS].tolist(),
                        "accuracy": h["accuracy"][:, N_STEPS].tolist(),
                        "moved": h["moved100"]}}
    return out


def _hand_path(hand: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The hand optimizers' path at HAND_STEPS (within the traced length)."""
    out = {}
    for kind, h in hand.items():
        steps = [s for s in HAND_STEPS if s < h["loss"].shape[1]]
        out[kind] = {"lr": h["lr"], "steps": steps,
                     "loss": [float(np.median(h["loss"][:, s])) for s in steps],
                     "accuracy": [float(np.median(h["accuracy"][:, s])) for s in steps],
                     "moved_end": float(np.median(h["moved"]))}
    return out


def score_all(summaries: Path, arms: Sequence[str] = ARMS, sets: Sequence[str] = tuple(REAL_SETS),
              problems: int = 32, long_steps: int = 2000,
              log: Callable[[str], None] = print) -> None:
    """Every (arm, seed, set) of the general study's committed runs of ``arms`` without a
    summary in ``<summaries>/general/equal_loss/`` gets one; the hand optimizers' traces are
    computed once per set, only where some run needs them, and their path is written beside
    (``hand-<set>.json``). Each summary records how far its accuracies lie from the run's
    committed real-data score (``<arm>/s<seed>-real-<set>.json``, the same test problems),
    "committed_max_difference": the same code rounds float32 otherwise on another CPU, and
    the trajectories part."""
    root = summaries / "general"
    for name in sets:
        todo = [(arm, int(p.stem[1:])) for arm in arms
                for p in sorted((root / arm).glob("s[0-9]*.pt"))
                if not (summaries / FOLDER / f"{arm}-{p.stem}-{name}.json").is_file()]
        if not todo:
            continue
        log(f"{name}: tuned SGD and Adam for {long_steps} steps on {problems} problems")
        hand = hand_traces(name, problems, long_steps)
        write_summary(summaries / FOLDER / f"hand-{name}.json",
                      {"set": name, "problems": problems, "long_steps": long_steps,
                       **_hand_path(hand)},
                      summaries / FOLDER / "equal_loss.log", f"hand optimizers on {name}")
        for arm, seed in todo:
            params = root / arm / f"s{seed}.pt"
            got = score_run(params, name, hand)
            committed = root / arm / f"s{seed}-real-{name}.json"
            if committed.is_file():
                theirs = json.loads(committed.read_text())["learned"]["accuracy"][:problems]
                mine = got["learned"]["accuracy"][:len(theirs)]
                got["committed_max_difference"] = float(np.max(np.abs(np.subtract(theirs,
                                                                                  mine))))
            write_summary(summaries / FOLDER / f"{arm}-s{seed}-{name}.json",
                          {"arm": arm, "seed": seed, "set": name, "problems": problems,
                           "long_steps": long_steps, **got},
                          summaries / FOLDER / "equal_loss.log", f"{arm} seed {seed} on {name}")
            log(f"{name} {arm} s{seed}: done")


def _diff(a: list[list[float]], b: list[list[float]]) -> str:
    return difference_text(paired_difference(a, b))


def _steps(steps: list[int]) -> str:
    return f"{median(steps):.0f}" if steps else "-"


def table(summaries: Path, labels: dict[str, str] | None = None) -> str:
    """Markdown from the summaries in ``<summaries>/general/equal_loss/`` alone: per set, the
    hand optimizers' path (median training loss and held-out accuracy at HAND_STEPS), then
    per arm and hand kind the paired accuracy differences (mean and 95% two-level bootstrap
    interval over seeds and problems) at step 100, at the learned loss and stopped at the
    hand loss, with the steps and distances moved (medians)."""
    folder = summaries / FOLDER
    labels = labels or {}
    blocks = []
    for name in REAL_SETS:
        hand_file = folder / f"hand-{name}.json"
        if not hand_file.is_file():
            continue
        hand = json.loads(hand_file.read_text())
        rows = [f"{name}: tuned SGD and Adam (step sizes chosen for {N_STEPS} steps) along "
                f"their path, median over {hand['problems']} test problems", "",
                "| optimizer | lr | step | training loss | held-out accuracy |",
                "|---|---|---|---|---|"]
        for kind in HAND:
            h = hand[kind]
            for s, loss, acc in zip(h["steps"], h["loss"], h["accuracy"]):
                rows.append(f"| {kind} | {h['lr']:.3g} | {s} | {loss:.3g} | {acc:.3f} |")
        blocks.append("\n".join(rows))
        rows = ["| optimizer | seeds | training loss at step 100 | held-out accuracy | moved | "
                "hand | hand's loss at step 100 | its accuracy | moved | - hand's at step 100 "
                "| hand's steps to the learned loss | - hand's there | learned steps to the "
                "hand's step-100 loss | learned there - hand's at step 100 |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for arm in dict.fromkeys(labels or ARMS):
            found = sorted(folder.glob(f"{arm}-s[0-9]*-{name}.json"))
            runs = [json.loads(f.read_text()) for f in found]
            if not runs:
                continue
            acc = [r["learned"]["accuracy"] for r in runs]
            for kind in HAND:
                ks = [r[kind] for r in runs]
                hand100 = [k["hand100"]["accuracy"] for k in ks]
                steps_to = [s for k in ks for s in k["at_learned_loss"]["step"] if s is not None]
                stop_at = [s for k in ks for s in k["stopped_at_hand_loss"]["step"]
                           if s is not None]
                n = sum(len(a) for a in acc)
                rows.append(
                    f"| {labels.get(arm, arm)} | {len(runs)} | "
                    f"{median([v for r in runs for v in r['learned']['final']]):.3g} | "
                    f"{median([v for a in acc for v in a]):.3f} | "
                    f"{median([v for r in runs for v in r['learned']['moved']]):.3g} | {kind} | "
                    f"{median(ks[0]['hand100']['final']):.3g} | "
                    f"{median(ks[0]['hand100']['accuracy']):.3f} | "
                    f"{median(ks[0]['hand100']['moved']):.3g} | "
                    f"{_diff(acc, hand100)} | "
                    f"{_steps(steps_to)} ({sum(k['reached'] for k in ks)}/{n}) | "
                    f"{_diff(acc, [k['at_learned_loss']['accuracy'] for k in ks])} | "
                    f"{_steps(stop_at)} ({sum(k['stopped'] for k in ks)}/{n}) | "
                    f"{_diff([k['stopped_at_hand_loss']['accuracy'] for k in ks], hand100)} |")
        blocks.append("\n".join(rows))
        arms = [a for a in dict.fromkeys(labels or ARMS)
                if any(folder.glob(f"{a}-s[0-9]*-{name}.json"))]
        if len(arms) > 1:
            last = arms[-1]
            rows = [f"{name}, rescored on one machine: held-out accuracy at step 100 against "
                    f"{labels.get(last, last)} on the seeds both have", "",
                    "| optimizer | seeds | accuracy - the last one's |", "|---|---|---|"]
            theirs = _accuracies(folder, last, name)
            for arm in arms[:-1]:
                mine = _accuracies(folder, arm, name)
                both = sorted(set(mine) & set(theirs))
                rows.append(f"| {labels.get(arm, arm)} | {len(both)} | "
                            f"{_diff([mine[s] for s in both], [theirs[s] for s in both])} |")
            blocks.append("\n".join(rows))
    return "\n\n".join(blocks) + "\n"


def _accuracies(folder: Path, arm: str, name: str) -> dict[int, list[float]]:
    """seed -> the learned accuracies at step 100 of ``arm``'s summaries on set ``name``."""
    out = {}
    for f in folder.glob(f"{arm}-s[0-9]*-{name}.json"):
        d = json.loads(f.read_text())
        out[int(d["seed"])] = d["learned"]["accuracy"]
    return out
