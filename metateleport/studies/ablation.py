"""What the learned teleports of a trained LSTM(update,tele) do: test-time ablations of the runs of
one study arm, without retraining.

For every meta-training seed whose run folder RUNS/<study>/<arm>/s<seed> holds params.pt, the
trained optimizer runs on the test problems of its family (seed 0 of the test stream, as in the
study) as trained, and with its m2 replaced at test time by:

- "none": no teleports (m1 alone, as co-trained with m2);
- "balance": the closed-form balancing teleport after every update;
- "skip only": m2's LSTM head silenced, so T = a * (balance signal) on the diagonal;
- "LSTM only": the skip silenced (a = 0), so T is what m2's LSTM writes.

The final losses of each seed go to SUMMARIES/<study>/<arm>/ablation-s<seed>.json, committed
like the study summaries (a seed with a JSON is not run again), and the table of the median test
loss per seed to SUMMARIES/<study>/ablation-<arm>.md.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_optimizer
from ..evaluation import score
from ..inner import InnerOptimizer, Teleporting
from ..learned import LearnedOptimizer
from ..stats import median
from ..tasks import make_family
from ..teleport import BalanceTeleport, Schedule
from .arms import PROBLEMS, SEEDS, StudyError

__all__ = ["VERSIONS", "ablate", "ablation_table", "run_ablation", "versions"]

VERSIONS = ("as trained", "none", "balance", "skip only", "LSTM only")


def versions(opt: LearnedOptimizer) -> dict[str, InnerOptimizer]:
    """name -> the trained optimizer with its m2 ablated as the module docstring says."""
    skip_only, lstm_only = copy.deepcopy(opt), copy.deepcopy(opt)
    with torch.no_grad():
        skip_only.group_net.head.weight.zero_()
        skip_only.group_net.head.bias.zero_()
        if lstm_only.group_net.skip is not None:
            lstm_only.group_net.skip.weight.zero_()
    return {"as trained": opt,
            "none": Teleporting(opt),
            "balance": Teleporting(opt, BalanceTeleport(), Schedule()),
            "skip only": skip_only, "LSTM only": lstm_only}


@torch.no_grad()
def ablate(params: Path, problems: int = PROBLEMS) -> dict[str, Any]:
    """{"balance_skip_weight": the learned a, version: final loss of every test problem} of the
    run whose params.pt is ``params``; StudyError if it is not an LSTM(update,tele) with a
    balance skip."""
    opt, meta = load_optimizer(params)
    if opt.group_net is None or opt.group_net.skip is None:
        raise StudyError(f"{params}: not an LSTM(update,tele) with a balance skip")
    family = make_family(meta["task"])
    n_steps = meta["config"]["train"]["n_steps"]
    test = family.sample(problems, 0, "test")
    out: dict[str, Any] = {"balance_skip_weight": float(opt.group_net.skip.weight[0, 0])}
    for name, scored in score(versions(opt.eval()), test, n_steps).items():
        out[name] = [float(v) for v in scored.final]
    return out


def ablation_table(study: str, arm: str, results: Mapping[int, Mapping[str, Any]],
                   problems: int = PROBLEMS) -> str:
    """The Markdown table of ``results`` (seed -> ``ablate``'s output)."""
    seeds = sorted(results)
    lines = [f"# Test-time ablations of `{study}/{arm}`", "",
             f"Regenerate: `python scripts/teleport_ablation.py --study {study} --arm "
             f"{arm}`. Median test loss at the last step over {problems} problems, per "
             "meta-training seed; the trained m1 is kept, its teleports replaced.", "",
             "| m2 at test time | " + " | ".join(f"seed {s}" for s in seeds)
             + " | median over seeds |", "|---|" + "---|" * (len(seeds) + 1)]
    for name in VERSIONS:
        per_seed = [median(results[s][name]) for s in seeds]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3g}" for v in per_seed)
                     + f" | {median(per_seed):.3g} |")
    lines.append("| (learned a of the skip) | "
                 + " | ".join(f"{results[s]['balance_skip_weight']:.3f}" for s in seeds) + " | |")
    return "\n".join(lines) + "\n"


def run_ablation(study: str, arm: str, runs: Path, summaries: Path,
                 problems: int = PROBLEMS) -> str:
    """Ablate every seed of ``study``/``arm`` that has a run folder in ``runs`` and no JSON yet
    in ``summaries``, then write and return the table of all seeds with a JSON. StudyError if
    there is none."""
    results = {}
    for seed in SEEDS:
        f = summaries / study / arm / f"ablation-s{seed}.json"
        params = runs / study / arm / f"s{seed}" / "params.pt"
        if not f.is_file() and params.is_file():
            f.write_text(json.dumps(ablate(params, problems)) + "\n")
        if f.is_file():
            results[seed] = json.loads(f.read_text())
    if not results:
        raise StudyError(f"no runs of {study}/{arm} under {runs}")
    text = ablation_table(study, arm, results, problems)
    (summaries / study / f"ablation-{arm}.md").write_text(text)
    return text
