"""Tuned GD and Adam from balanced starts: how much of a balance_first optimizer's gain would
a hand optimizer get from the balancing alone?

For every suite of suites.SUITES: score_suite's 32 validation and 32 test problems, each
network balanced by teleport.balance_fully (model.balance_first's start, exact for every
input); GD's and Adam's step sizes searched on the balanced validation problems
(evaluation.baselines, as score_suite searches them on the problems as sampled); both run 100
steps on the balanced test problems. Each suite's result goes to
``<out>/<suite>.json`` (final losses per problem, step sizes), written once: a rerun skips the
suites already there and only rewrites the table. The table (``<out>.md``): per suite the
median loss at step 100 of tuned GD and Adam from the problems' own starts (the study's score
files of ``--reference``, the same test problems and tuning as every arm's) and from the
balanced ones, their paired ratio over problems; and for each of ``--arms`` (optimizers that
start balanced) its median over its scored seeds and its paired ratio over seeds x problems
against tuned Adam from the balanced starts. The same for real data (studies.realdata: tuned SGD and
Adam, step sizes chosen on the validation seeds, each model balanced before its first step),
scored by the optimizee's held-out accuracy on the test seeds, ``<out>/real-<set>.json``, and
each arm's accuracy minus the better balanced hand optimizer's (means over the test seeds).
Deterministic (the suites' problem seeds, the real sets' seeds); rerun with

    python scripts/balanced_hand.py [--suites depth3 ...] [--out studies/general/balanced_hand]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metateleport.evaluation import baselines, score  # noqa: E402
from metateleport.modules import inspect_module, module_weights, write_weights  # noqa: E402
from metateleport.stats import paired_difference, paired_log_ratio, quantile  # noqa: E402
from metateleport.studies import realdata  # noqa: E402
from metateleport.studies.suites import SUITES, suite_task  # noqa: E402
from metateleport.tasks import make_family  # noqa: E402
from metateleport.teleport import balance_fully, balanced_problems  # noqa: E402

STUDY = REPO / "studies" / "general"
#: the arms that start balanced: meta-trained so, and the shipped recipe's iterates at test time
ARMS = ["update_tele_diag-noguard-long-bound3-mixed-tilt3-balanced",
        "update_tele_diag-noguard-long-bound3-mixed-tilt3-balanced_test",
        "update-long-mixed-tilt3-balanced", "update-long-mixed-tilt3-balanced_test"]
REFERENCE = "update_tele_diag-noguard-long-bound3-mixed-tilt3"
N_STEPS = 100


def score_balanced(suite: str, problems: int) -> dict:
    """Tuned GD and Adam on the suite's balanced test problems (see the module docstring)."""
    family = make_family(suite_task(suite))
    val, test = (balanced_problems(family.sample(problems, 0, split))
                 for split in ("val", "test"))
    hand, tuning = baselines(val, N_STEPS, ["gd", "adam"])
    runs = score(hand, test, N_STEPS)
    return {"suite": suite, "task": suite_task(suite), "problems": problems,
            "n_steps": N_STEPS, "start": "balance_fully",
            "step_sizes": {k: tuning[k]["lr"] for k in hand},
            **{k: {"final": [float(v) for v in r.final]} for k, r in runs.items()}}


def balanced_start(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """``cls`` with a ``start(model)`` (which realdata.run calls before the first step) that
    balances the LeakyReLU MLP in place, as LearnedTorchOptimizer.start does for a
    balance_first checkpoint."""

    class Balanced(cls):
        @torch.no_grad()
        def start(self, model) -> bool:
            spec = inspect_module(model, allow_bias=True)
            write_weights(spec, balance_fully(module_weights(spec)))
            return True

    Balanced.__name__ = f"Balanced{cls.__name__}"
    return Balanced


def score_real_balanced(name: str, problems: int) -> dict:
    """Tuned SGD and Adam from balanced starts on real set ``name`` (module docstring)."""
    out = {"set": name, "problems": problems, "n_steps": N_STEPS, "start": "balance_fully"}
    for kind, cls in realdata.HAND.items():
        make = balanced_start(cls)
        tuning = realdata.tune(name, kind, N_STEPS, make=make)
        found = realdata.run_set(name, range(problems),
                                 lambda ps, make=make, lr=tuning["lr"]: make(ps, lr=lr), N_STEPS)
        out[kind] = {"lr": tuning["lr"], "at_edge": tuning["at_edge"], **found}
    return out


def _ratio(a, b) -> str:
    """The paired ratio of (S, M) losses a over b, with its interval."""
    r = paired_log_ratio(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    lo, hi = (math.exp(v) for v in r["ci"])
    return f"{math.exp(r['median']):.3g} [{lo:.3g}, {hi:.3g}]"


def _median(losses) -> str:
    """The median over all runs (a diverged one counts as +inf), and how many diverged."""
    x = np.asarray(losses, dtype=float).ravel()
    bad = int((~np.isfinite(x)).sum())
    return f"{float(quantile(x, 0.5)):.3g}" + (f" ({bad} diverged)" if bad else "")


def _arm_finals(study: Path, arm: str, suite: str) -> list[list[float]]:
    """The ``arm``'s final losses on ``suite``, one row per scored seed."""
    files = sorted((study / arm).glob(f"s[0-9]-{suite}.json"))
    return [json.loads(f.read_text())["learned"]["final"] for f in files]


def _header(first: str, unit: str, arms: list[str], versus: str) -> list[str]:
    cols = [first, f"tuned {unit[0]}, own start", "balanced", f"balanced {unit[1]} own [95% CI]",
            f"tuned {unit[2]}, own start", "balanced", f"balanced {unit[1]} own [95% CI]"]
    for arm in arms:
        cols += [f"`{arm}`: seeds", "median" if unit[1] == "/" else "accuracy", versus]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def table(out: Path, study: Path, suites: list[str], arms: list[str], reference: str) -> str:
    rows = _header("suite", ("GD", "/", "Adam"), arms,
                   "/ tuned Adam from balanced starts [95% CI]")
    for suite in suites:
        path = out / f"{suite}.json"
        ref_path = study / reference / f"s0-{suite}.json"
        if not path.exists() or not ref_path.exists():
            continue
        bal, ref = json.loads(path.read_text()), json.loads(ref_path.read_text())
        if ref["task"] != bal["task"] or len(ref["adam"]["final"]) != bal["problems"]:
            raise ValueError(f"{ref_path} scored other problems than {path}")
        cells = [suite]
        for name in ("gd", "adam"):
            own, new = ref[name]["final"], bal[name]["final"]
            cells += [_median(own), _median(new), _ratio([new], [own])]
        for arm in arms:
            finals = _arm_finals(study, arm, suite)
            if finals:
                adam = [bal["adam"]["final"]] * len(finals)  # the same problems for every seed
                cells += [str(len(finals)), _median(finals), _ratio(finals, adam)]
            else:
                cells += ["0", "-", "-"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _difference(a, b) -> str:
    r = paired_difference(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    return f"{r['mean']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]"


def real_table(out: Path, study: Path, arms: list[str], reference: str) -> str:
    """Mean held-out accuracies over the test seeds and their paired differences."""
    rows = _header("real set", ("SGD", "-", "Adam"), arms,
                   "- the better balanced hand's [95% CI]")
    for name in realdata.REAL_SETS:
        path, ref_path = out / f"real-{name}.json", study / reference / f"s0-real-{name}.json"
        if not path.exists() or not ref_path.exists():
            continue
        bal, ref = json.loads(path.read_text()), json.loads(ref_path.read_text())
        cells = [name]
        for kind in realdata.HAND:
            own, new = ref[kind]["accuracy"], bal[kind]["accuracy"]
            cells += [f"{np.mean(own):.3f}", f"{np.mean(new):.3f}", _difference([new], [own])]
        best = max(realdata.HAND, key=lambda k: float(np.mean(bal[k]["accuracy"])))
        for arm in arms:
            files = sorted((study / arm).glob(f"s[0-9]-real-{name}.json"))
            if files:
                acc = [json.loads(f.read_text())["learned"]["accuracy"] for f in files]
                cells += [str(len(acc)), f"{np.mean(acc):.3f}",
                          f"{_difference(acc, [bal[best]['accuracy']] * len(acc))} vs {best}"]
            else:
                cells += ["0", "-", "-"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _write(path: Path, result: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suites", nargs="+", choices=list(SUITES), default=list(SUITES))
    p.add_argument("--real", nargs="*", choices=list(realdata.REAL_SETS),
                   default=list(realdata.REAL_SETS))
    p.add_argument("--problems", type=int, default=32)
    p.add_argument("--out", type=Path, default=STUDY / "balanced_hand",
                   help="folder of the per-suite JSON; the table goes to <out>.md")
    p.add_argument("--study", type=Path, default=STUDY, help="the study's summaries folder")
    p.add_argument("--arms", nargs="*", default=list(ARMS), metavar="ARM",
                   help="arms from balanced starts to pair with tuned Adam from them")
    p.add_argument("--reference", default=REFERENCE,
                   help="an arm whose seed 0 score files give tuned GD and Adam as sampled")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for suite in args.suites:
        path = args.out / f"{suite}.json"
        if not path.exists():
            _write(path, score_balanced(suite, args.problems))
            print(f"{suite}: done", flush=True)
    for name in args.real:
        path = args.out / f"real-{name}.json"
        if not path.exists():
            _write(path, score_real_balanced(name, args.problems))
            print(f"real {name}: done", flush=True)
    text = (table(args.out, args.study, args.suites, args.arms, args.reference) + "\n\n"
            + real_table(args.out, args.study, args.arms, args.reference))
    command = "python scripts/balanced_hand.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    args.out.with_suffix(".md").write_text(
        "# Tuned GD and Adam from balanced starts\n\n"
        f"Regenerate: `{command}` (scripts/balanced_hand.py's docstring says what is run; "
        f"{args.problems} test problems per suite, median loss at step {N_STEPS}; the "
        "ratios are paired over problems, and over seeds x problems for the arm, with their "
        "bootstrap intervals).\n\n" + text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
