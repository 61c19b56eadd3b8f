"""Generalization against the hand-designed optimizers, for studies whose family has held-out
samples (the digits study): the learned optimizers' held-out accuracy and training loss paired
with tuned GD's and Adam's on the same test problems, and with LSTM(update) meta-trained the same
way; and, as a test set never used in meta-training or in any choice, the same checkpoints on
scikit-learn's breast cancer set through the torch.optim face (studies.realdata).

- ``score_hand``: tuned GD and Adam on the study's own test problems, into
  ``<summaries>/<study>/hand.json`` (step sizes searched on its validation problems, by the
  final training loss: evaluation.tuning.baselines);
- ``score_real_runs``: every run whose parameters were kept (``<arm>/s<seed>.pt``, studies with
  "keep_params") on each real set, into ``<arm>/s<seed>-real-<set>.json``;
- ``hand_table``: the paired table of both, from those summaries alone.

Each writes a summary only where none exists, so a stopped session goes on from there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..evaluation import score
from ..evaluation.tuning import baselines
from ..stats import difference_text, median, paired_difference, paired_log_ratio
from ..tasks import make_family
from .arms import PROBLEMS, STUDIES, seeds_of
from .realdata import REAL_SETS, score_real, versus_best_hand
from .runs import load_runs, write_summary

__all__ = ["HAND", "hand_table", "reference_arm", "score_hand", "score_real_runs"]

#: the tuned hand-designed optimizers, by results name
HAND = ("gd", "adam")


def reference_arm(arm: str) -> str:
    """The LSTM(update) arm meta-trained the same way as ``arm`` (same meta-loss)."""
    return "update-held_out" if arm.endswith("-held_out") else "update"


@torch.no_grad()
def score_hand(study: str, summaries: Path, problems: int = PROBLEMS,
               log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Tuned GD and Adam on the validation (step-size search) and test problems of ``study``'s
    family, as its runs were scored (runs.score_run): the task section and step count of its
    first finished run. Written once to ``<summaries>/<study>/hand.json`` and returned; None
    while the study has no finished run."""
    out = summaries / study / "hand.json"
    if out.is_file():
        return json.loads(out.read_text())
    runs = load_runs(study, summaries)
    first = next((r for by_seed in runs.values() for r in by_seed.values()), None)
    if first is None:
        return None
    start = time.time()
    family = make_family(first["config"]["task"])
    n_steps = first["config"]["train"]["n_steps"]
    opts, tuning = baselines(family.sample(problems, 0, "val"), n_steps, HAND)
    data: dict[str, Any] = {"study": study, "n_steps": n_steps, "problems": problems,
                            "tuning": tuning}
    for name, scored in score(opts, family.sample(problems, 0, "test"), n_steps).items():
        data[name] = {"test_final": [float(v) for v in scored.final],
                      **{f"test_held_out_{k}": [float(x) for x in v]
                         for k, v in (scored.held_out or {}).items()}}
    write_summary(out, data, summaries / study / "study.log",
                  f"hand optimizers {', '.join(HAND)} tuned and scored in "
                  f"{time.time() - start:.0f} s")
    log(f"{study} hand: done")
    return data


def score_real_runs(study: str, summaries: Path, sets: tuple[str, ...] = ("breast_cancer",),
                    problems: int = 32, log: Callable[[str], None] = print) -> None:
    """Score every kept run of ``study`` on each real set of ``sets`` (realdata.score_real,
    with the checkpoint's guard and its teleports) unless its summary exists."""
    for arm in STUDIES[study]["arms"]:
        for seed in seeds_of(study, arm):
            params = summaries / study / arm / f"s{seed}.pt"
            if not params.is_file():
                continue
            for name in sets:
                out = summaries / study / arm / f"s{seed}-real-{name}.json"
                if out.is_file():
                    continue
                start = time.time()  # the tuned SGD and Adam are computed once per process
                data = {"arm": arm, "seed": seed, **score_real(params, name, problems)}
                write_summary(out, data, summaries / study / "study.log",
                              f"{arm} seed {seed} scored on real {name} in "
                              f"{time.time() - start:.0f} s")
                log(f"{study} {arm} s{seed} real {name}: done")


def _real_rows(study: str, summaries: Path, arms: list[str]) -> list[str]:
    rows = []
    for name in REAL_SETS:
        for arm in arms:
            found = {s: json.loads(f.read_text()) for s in seeds_of(study, arm)
                     if (f := summaries / study / arm / f"s{s}-real-{name}.json").is_file()}
            if not found:
                continue
            best, acc, diff = versus_best_hand(found)
            best_acc = next(iter(found.values()))[best]["accuracy"]
            diverged = sum(r["learned"]["diverged"] for r in found.values())
            rows.append(f"| {name} | `{arm}` | {len(found)} | {float(np.mean(acc)):.3f} | "
                        f"{float(np.mean(best_acc)):.3f} ({best}) | "
                        f"{difference_text(diff)} | {diverged} |")
    if not rows:
        return []
    return ["", "The same checkpoints on real sets never used in meta-training or in any choice "
            "(studies.realdata, through LearnedTorchOptimizer with its guard; SGD and Adam tuned "
            "on disjoint validation seeds); held-out accuracy, mean over seeds and problems, "
            "paired with the better hand optimizer's (the one with the higher median accuracy):",
            "", "| set | arm | seeds | accuracy | best hand | difference [95% CI] | diverged |",
            "|---|---|---|---|---|---|---|", *rows]


def hand_table(study: str, summaries: Path) -> list[str]:
    """Lines of the study's table: every arm's held-out accuracy against tuned GD's and Adam's
    (paired over seeds and test problems, the hand optimizer's scores repeated on every seed)
    and against its reference LSTM(update) (reference_arm; common seeds), its training loss
    against the reference's, then the real-set rows. Empty without hand.json."""
    f = summaries / study / "hand.json"
    if not f.is_file():
        return []
    hand = json.loads(f.read_text())
    runs = load_runs(study, summaries)
    lines = ["", f"Against the hand-designed optimizers (`hand.json`: GD and Adam, step sizes "
             f"searched on the {hand['problems']} validation problems by the final training "
             "loss; GD "
             f"{hand['tuning']['gd']['lr']:.3g}, Adam {hand['tuning']['adam']['lr']:.3g}), on "
             "the same test problems. Held-out accuracy: mean over seeds and problems, and the "
             "paired mean difference A - B [95% CI, two-level bootstrap]; training loss: the "
             "paired median ratio to the reference LSTM(update) meta-trained the same way.", "",
             "| arm | seeds | held-out accuracy | - GD | - Adam | - reference | reference | "
             "training loss / reference |", "|---|---|---|---|---|---|---|---|"]
    for name in HAND:
        acc = hand[name]["test_held_out_accuracy"]
        lines.append(f"| {name} (tuned) | - | {float(np.mean(acc)):.3f} | | | | | "
                     f"median loss {median(hand[name]['test_final']):.3g} |")
    for arm, by_seed in runs.items():
        if not all("test_held_out_accuracy" in r for r in by_seed.values()):
            continue
        seeds = sorted(by_seed)
        acc = np.array([by_seed[s]["test_held_out_accuracy"] for s in seeds])
        cells = [difference_text(paired_difference(
            acc, np.array([hand[h]["test_held_out_accuracy"]] * len(seeds)))) for h in HAND]
        ref = reference_arm(arm)
        common = sorted(set(seeds) & set(runs.get(ref, {}))) if ref != arm else []
        if common:
            a = np.array([by_seed[s]["test_held_out_accuracy"] for s in common])
            b = np.array([runs[ref][s]["test_held_out_accuracy"] for s in common])
            c = paired_log_ratio([by_seed[s]["test_final"] for s in common],
                                 [runs[ref][s]["test_final"] for s in common])
            cells += [f"{difference_text(paired_difference(a, b))} ({len(common)} seeds)",
                      f"`{ref}`",
                      f"{np.exp(c['median']):.3g} [{np.exp(c['ci'][0]):.3g}, "
                      f"{np.exp(c['ci'][1]):.3g}]"]
        else:
            cells += ["", "", ""]
        lines.append(f"| `{arm}` | {len(seeds)} | {float(acc.mean()):.3f} | "
                     + " | ".join(cells) + " |")
    return lines + _real_rows(study, summaries, list(runs))
