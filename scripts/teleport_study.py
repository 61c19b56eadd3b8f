"""Studies of learned teleportation (issue 10): paired, seeded comparisons of LSTM(update,tele)
against LSTM(update), LSTM(update)+random teleports and LSTM(update)+balance, per task family.

    python scripts/teleport_study.py STUDY [STUDY ...] [--jobs 2] [--table-only]

Every study has a fixed list of arms (a config plus overrides) and meta-training seeds. Run
(arm, seed) trains configs/<config>.yaml into runs/studies/<study>/<arm>/s<seed> (resumed when
interrupted) and is then scored on M = 64 validation and 64 test problems of its own family
(seed 0 of each stream: the problems eval_meta.py uses). Its summary, small and committed, goes
to studies/<study>/<arm>/s<seed>.json: the resolved config, the final loss of every problem, the
median test curve, ms per step. A run whose summary exists is skipped, so a stopped study goes
on from there, on any machine. Then, from the summaries alone (--table-only does only this):

- options are chosen on validation: of the arms grouped under one name (e.g. learned teleports
  with and without the balance input), the one with the lowest median over seeds of the
  validation median is "selected";
- every comparison pairs two arms on the same seeds and test problems: the median log-ratio of
  the final losses with a two-level bootstrap 95% CI (seeds, then problems), seeds won, problems
  won (metateleport.stats.paired_log_ratio);
- studies/<study>/table.md holds both tables; studies/<study>/study.log a line per finished run.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from seed_study import train  # noqa: E402

from metateleport.checkpoint import load_optimizer  # noqa: E402
from metateleport.optimizers import TeleportSchedule, WithTeleport, run  # noqa: E402
from metateleport.stats import paired_log_ratio, quantile  # noqa: E402
from metateleport.tasks import held_out_metrics, make_family  # noqa: E402

SEEDS = [0, 1, 2, 3, 4]
PROBLEMS = 64
_FLAT = ["task.unit_span=1.0"]  # an imbalanced_* config on the paper's family
# configs/imbalanced_update_tele.yaml is the m2 chosen here (tele_scale 0.1, norm <= 3, balance
# input and skip, lookahead input); the other m2 arms undo parts of it:
_NOLOOK = ["model.lookahead_input=false"]
_NOSKIP = [*_NOLOOK, "model.balance_skip=false"]
_COND = ["task.cond=1000.0"]  # the ill-conditioned family of scripts/oracle_headroom.py
_FIRST = [*_NOSKIP, "model.tele_scale=0.01", "model.max_tele_norm=1.0"]  # the first m2 tried

# study -> {"arms": {arm: (config, overrides, label)}, "choose": {name: [arms]},
#           "compare": [(A, B)]}; A and B are arm names or chosen names.
STUDIES = {
    "imbalanced": {
        "arms": {
            "update": ("imbalanced_update", [], "LSTM(update)"),
            "update_balance": ("imbalanced_update_balance", ["model.tele_steps=1"],
                               "LSTM(update)+balance"),
            "update_balance-every": ("imbalanced_update_balance", [],
                                     "LSTM(update)+balance after every update"),
            "update_tele": ("imbalanced_update_tele", _FIRST,
                            "LSTM(update,tele), learned norm <= 1, balance input"),
            "update_tele-nobal": ("imbalanced_update_tele",
                                  [*_FIRST, "model.balance_input=false"],
                                  "LSTM(update,tele), learned norm <= 1, G only"),
            "update_tele-s0.1": ("imbalanced_update_tele", _NOSKIP,
                                 "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input"),
            "update_tele-s0.1-first20": ("imbalanced_update_tele",
                                         [*_NOSKIP, "model.tele_steps=20"],
                                         "same, teleports in the first 20 steps only"),
            "update_tele-skip": ("imbalanced_update_tele", _NOLOOK,
                                 "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input "
                                 "and skip"),
            "update_tele-skip-look": ("imbalanced_update_tele", [],
                                      "same as skip, plus the lookahead input"),
            "update_tele-skip-reset": ("imbalanced_update_tele",
                                       [*_NOLOOK, "model.m1_state_on_tele=reset"],
                                       "same as skip, m1's state reset after every teleport"),
            "update_random_tele": ("imbalanced_update_random_tele", [],
                                   "LSTM(update)+random tele, norm 0.003"),
            "update_random_tele-0.03": ("imbalanced_update_random_tele",
                                        ["model.tele_norm=0.03"],
                                        "LSTM(update)+random tele, norm 0.03"),
            "update_random_tele-0.2": ("imbalanced_update_random_tele",
                                       ["model.tele_norm=0.2"],
                                       "LSTM(update)+random tele, norm 0.2 (the learned "
                                       "teleports' median)"),
        },
        "choose": {"tele": ["update_tele", "update_tele-nobal", "update_tele-s0.1",
                            "update_tele-s0.1-first20", "update_tele-skip",
                            "update_tele-skip-look", "update_tele-skip-reset"],
                   "random": ["update_random_tele", "update_random_tele-0.03",
                              "update_random_tele-0.2"],
                   "balance": ["update_balance", "update_balance-every"]},
        "family": "imbalanced: hidden units rescaled by log-uniform factors in [1/10, 10]",
        "headline": {"LSTM(update)": "update", "+ random teleports": "random",
                     "+ balance": "balance", "LSTM(update,tele)": "tele"},
        "compare": [("tele", "update"), ("tele", "random"), ("tele", "balance"),
                    ("update_tele", "update_tele-nobal"), ("update_tele-skip", "update_tele-s0.1"),
                    ("update_tele-skip-look", "update_tele-skip"),
                    ("update_tele-skip-reset", "update_tele-skip"),
                    ("balance", "update")],
    },
    "paper": {
        "arms": {
            "update": ("update", [], "LSTM(update)"),
            "update_balance": ("imbalanced_update_balance", [*_FLAT, "model.tele_steps=1"],
                               "LSTM(update)+balance"),
            "update_tele": ("update_tele", [], "LSTM(update,tele), norm 0.003 (shipped config)"),
            "update_tele-learned": ("paper_update_tele", _FIRST,
                                    "LSTM(update,tele), learned norm <= 1, balance input"),
            "update_tele-s0.1": ("paper_update_tele", _NOSKIP,
                                 "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input"),
            "update_tele-skip-look": ("paper_update_tele_look", [],
                                      "same as skip, plus the lookahead input"),
            "update_tele-skip": ("paper_update_tele", [],
                                 "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input "
                                 "and skip"),
            "update_random_tele": ("update_random_tele", [],
                                   "LSTM(update)+random tele, norm 0.003"),
            "update_random_tele-0.2": ("update_random_tele", ["model.tele_norm=0.2"],
                                       "LSTM(update)+random tele, norm 0.2 (the learned "
                                       "teleports' median)"),
        },
        "choose": {"tele": ["update_tele", "update_tele-learned", "update_tele-s0.1",
                            "update_tele-skip", "update_tele-skip-look"],
                   "random": ["update_random_tele", "update_random_tele-0.2"]},
        "family": "the paper's: U[0, 1] data and weights, 20 x 20",
        "headline": {"LSTM(update)": "update", "+ random teleports": "random",
                     "+ balance": "update_balance", "LSTM(update,tele)": "tele"},
        "compare": [("tele", "update"), ("tele", "random"),
                    ("tele", "update_balance"), ("update_tele-learned", "update"),
                    ("update_tele-skip", "update"), ("update_tele-skip", "update_tele-s0.1"),
                    ("update_tele-skip-look", "update_tele-skip"), ("update_balance", "update")],
    },
    "cond": {
        "arms": {
            "update": ("imbalanced_update", [*_FLAT, *_COND], "LSTM(update)"),
            "update_balance": ("imbalanced_update_balance", [*_FLAT, *_COND],
                               "LSTM(update)+balance after every update"),
            "update_tele": ("cond_update_tele", [],
                            "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input "
                            "and skip"),
            "update_random_tele": ("update_random_tele", [*_COND, "model.tele_norm=0.2"],
                                   "LSTM(update)+random tele, norm 0.2"),
        },
        "choose": {},
        "family": "ill-conditioned: X with log-spaced singular values, condition number 1e3",
        "headline": {"LSTM(update)": "update", "+ random teleports": "update_random_tele",
                     "+ balance": "update_balance", "LSTM(update,tele)": "update_tele"},
        "compare": [("update_tele", "update"), ("update_tele", "update_random_tele"),
                    ("update_tele", "update_balance"), ("update_balance", "update")],
    },
    "digits": {
        "arms": {
            "update": ("digits_update", [], "LSTM(update)"),
            "update_balance": ("digits_update", ["model.variant=update_balance",
                                                 "model.tele_steps=1"],
                               "LSTM(update)+balance after the first update"),
            "update_random_tele": ("digits_update", ["model.variant=update_random_tele",
                                                     "model.tele_norm=0.2"],
                                   "LSTM(update)+random tele, norm 0.2"),
            "update_tele": ("digits_update_tele", [],
                            "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input "
                            "and skip"),
            "update-held_out": ("digits_update", ["train.meta_loss_on=held_out"],
                                "LSTM(update), meta-trained on the held-out loss"),
            "update_tele-held_out": ("digits_update_tele", ["train.meta_loss_on=held_out"],
                                     "LSTM(update,tele), meta-trained on the held-out loss"),
        },
        "choose": {},
        "family": "real data: scikit-learn's digits, 40 images per problem, 64-32-10 MLP "
                  "with biases",
        # 3 seeds, so that the held-out meta-loss arms fit beside the others in one session
        "seeds": [0, 1, 2],
        "headline": {"LSTM(update)": "update", "+ random teleports": "update_random_tele",
                     "+ balance": "update_balance", "LSTM(update,tele)": "update_tele"},
        "compare": [("update_tele", "update"), ("update_tele", "update_random_tele"),
                    ("update_tele", "update_balance"), ("update_balance", "update"),
                    ("update_tele-held_out", "update-held_out"),
                    ("update-held_out", "update"), ("update_tele-held_out", "update_tele")],
    },
    "first_order": {
        "arms": {
            "exact": ("update_tele", ["model.tele_norm=0.01"],
                      "LSTM(update,tele), norm 0.01, exact action"),
            "first_order": ("update_tele", ["model.tele_norm=0.01",
                                            "model.tele_action=first_order"],
                            "LSTM(update,tele), norm 0.01, first-order action (I+T, I-T)"),
        },
        "choose": {},
        "compare": [("first_order", "exact")],
    },
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("studies", nargs="+", choices=list(STUDIES))
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once (1 thread each)")
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "studies",
                   help="run folders (not committed)")
    p.add_argument("--summaries", type=Path, default=REPO / "studies",
                   help="per-run summaries and tables (committed)")
    p.add_argument("--table-only", action="store_true",
                   help="only rebuild the tables from the summaries")
    p.add_argument("--arms", nargs="+", default=None,
                   help="train only these arms (default: all of each study)")
    p.add_argument("--ship", nargs="+", default=[], metavar="ARM:NAME",
                   help="copy the run of ARM (of the one study given) with the lowest "
                        "validation median into checkpoints/NAME.pt and NAME.yaml (its run "
                        "folder must be on this machine)")
    args = p.parse_args(argv)
    # absolute: the runs train with the repository as working folder (seed_study.train)
    args.runs, args.summaries = args.runs.resolve(), args.summaries.resolve()
    return args


@torch.no_grad()
def score(params: Path) -> dict:
    """Final losses of every validation and test problem, the median test curve and the time
    per step; for an LSTM(update) run also its test losses with a balancing teleport after the
    first update (the update rule as trained, balanced at test time only)."""
    opt, meta = load_optimizer(params)
    family = make_family(meta["task"])
    n_steps = meta["config"]["train"]["n_steps"]
    out: dict = {"n_steps": n_steps}
    skip = getattr(opt.group_net, "skip", None)
    if skip is not None:
        # the learned a of T_ii += a * r_i (the balance signal is the first extra input)
        out["balance_skip_weight"] = float(skip.weight[0, 0])
    rules = {"": opt}
    if meta["variant"] == "update":
        rules["plus_balance_"] = WithTeleport(opt, TeleportSchedule(kind="balance",
                                                                    at_steps=(0,)))
    for prefix, rule in rules.items():
        for split in ("val", "test"):
            if prefix and split == "val":
                continue
            torch.manual_seed(0)  # the random-teleport ablation draws from torch's generator
            problems = family.sample(PROBLEMS, 0, split)
            traj = run(rule, problems, n_steps)
            out[f"{prefix}{split}_final"] = [float(v) for v in traj.losses[-1]]
            if problems.X_test is not None:
                held = held_out_metrics(traj.weights, problems)
                for key, values in held.items():
                    out[f"{prefix}{split}_held_out_{key}"] = [float(v) for v in values]
            if split == "test" and not prefix:
                out["test_median_curve"] = [float(v) for v in quantile(traj.losses, 0.5, 1)]
                out["ms_per_step"] = 1000 * float(traj.seconds[-1]) / n_steps
    return out


def run_one(study: str, arm: str, seed: int, args) -> dict:
    summary = args.summaries / study / arm / f"s{seed}.json"
    if summary.is_file():
        return json.loads(summary.read_text())
    config, overrides, label = STUDIES[study]["arms"][arm]
    folder = args.runs / study / arm / f"s{seed}"
    start = time.time()
    params = train(config, seed, folder, overrides)
    seconds = time.time() - start
    data = {"study": study, "arm": arm, "label": label, "seed": seed, "config_file": config,
            "overrides": overrides, "config": yaml.safe_load((folder / "config.yaml").read_text()),
            "train_seconds_this_session": seconds, **score(params)}
    summary.parent.mkdir(parents=True, exist_ok=True)
    tmp = summary.with_suffix(".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(summary)
    with open(args.summaries / study / "study.log", "a") as log:
        log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {arm} seed {seed}: trained in "
                  f"{seconds:.0f} s this session; test median "
                  f"{float(quantile(data['test_final'], 0.5)):.4g}\n")
    return data


def _median(values) -> float:
    return float(quantile(values, 0.5))


def seeds_of(study: str) -> list[int]:
    """The meta-training seeds of ``study`` (its "seeds", else SEEDS)."""
    return STUDIES[study].get("seeds", SEEDS)


def load_runs(study: str, args) -> dict[str, dict[int, dict]]:
    """arm -> seed -> summary, for the finished runs of ``study``."""
    runs: dict[str, dict[int, dict]] = {}
    for arm in STUDIES[study]["arms"]:
        for seed in seeds_of(study):
            f = args.summaries / study / arm / f"s{seed}.json"
            if f.is_file():
                runs.setdefault(arm, {})[seed] = json.loads(f.read_text())
    return runs


def validation_score(by_seed: dict[int, dict]) -> float:
    """Median over seeds of the median validation loss at the last step."""
    return _median([_median(by_seed[s]["val_final"]) for s in sorted(by_seed)])


def complete(study: str, runs, arm: str) -> bool:
    """Every seed of ``arm`` has finished."""
    return len(runs.get(arm, {})) == len(seeds_of(study))


def choose(study: str, runs) -> dict[str, str]:
    """name -> the arm of its group with the best ``validation_score`` (only complete arms
    compete, so that a half-done arm is not chosen on fewer seeds)."""
    chosen = {}
    for name, arms in STUDIES[study]["choose"].items():
        have = [a for a in arms if complete(study, runs, a)]
        if have:
            chosen[name] = min(have, key=lambda a: validation_score(runs[a]))
    return chosen


def compare(runs, a: str, b: str, key: str = "test_final") -> dict:
    """Paired log-ratio of A's and B's per-problem values ``key`` on their common seeds."""
    seeds = sorted(set(runs[a]) & set(runs[b]))
    return {"seeds": len(seeds), **paired_log_ratio([runs[a][s][key] for s in seeds],
                                                    [runs[b][s][key] for s in seeds])}


def table(study: str, args) -> str:
    spec = STUDIES[study]
    root = args.summaries / study
    runs = load_runs(study, args)
    lines = [f"# Study `{study}`", "",
             f"Regenerate: `python scripts/teleport_study.py {study}` (trains what is missing) "
             f"or `--table-only`. Median loss at the last step over {PROBLEMS} problems; test "
             "problems are used for nothing but this report.", "",
             "| arm | seeds | validation median per seed | test median per seed | "
             "median over seeds (test) | ms/step |", "|---|---|---|---|---|---|"]
    for arm, by_seed in runs.items():
        seeds = sorted(by_seed)
        val = [_median(by_seed[s]["val_final"]) for s in seeds]
        test = [_median(by_seed[s]["test_final"]) for s in seeds]
        ms = _median([by_seed[s]["ms_per_step"] for s in seeds])
        lines.append(f"| {spec['arms'][arm][2]} (`{arm}`) | {len(seeds)} | "
                     f"{' / '.join(f'{v:.3g}' for v in val)} | "
                     f"{' / '.join(f'{v:.3g}' for v in test)} | {_median(test):.3g} | "
                     f"{ms:.1f} |")
        if "plus_balance_test_final" in by_seed[seeds[0]]:
            tb = [_median(by_seed[s]["plus_balance_test_final"]) for s in seeds]
            lines.append(f"| same, balanced after its first update at test time only | "
                         f"{len(seeds)} | - | {' / '.join(f'{v:.3g}' for v in tb)} | "
                         f"{_median(tb):.3g} | - |")
    chosen = choose(study, runs)
    lines += ["", "Chosen on validation (lowest median over seeds of the validation median; "
              f"arms with all {len(seeds_of(study))} seeds):", ""]
    for name, arm in chosen.items():
        have = [a for a in spec["choose"][name] if complete(study, runs, a)]
        lines.append(f"- {name}: `{arm}` ("
                     + ", ".join(f"`{a}` {validation_score(runs[a]):.3g}" for a in have) + ")")
    lines += ["", "Paired comparisons on the test problems (log-ratio < 0: A ends lower):", "",
              "| A | B | seeds | median log(A/B) [95% CI] | A/B | seeds won by A | "
              "problems won by A |", "|---|---|---|---|---|---|---|"]
    for a_name, b_name in spec["compare"]:
        a, b = chosen.get(a_name, a_name), chosen.get(b_name, b_name)
        if a not in runs or b not in runs:
            continue
        c = compare(runs, a, b)
        lines.append(f"| `{a}` | `{b}` | {c['seeds']} | {c['median']:+.3f} "
                     f"[{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}] | {math.exp(c['median']):.3g} | "
                     f"{c['seed_wins']}/{c['seeds']} | {c['problem_wins']}/{c['pairs']} |")
    lines += held_out_table(spec, runs)
    text = "\n".join(lines) + "\n"
    root.mkdir(parents=True, exist_ok=True)
    (root / "table.md").write_text(text)
    return text


def held_out_table(spec: dict, runs) -> list[str]:
    """For families with held-out samples: the optimizee's held-out accuracy and loss at the
    last step, per arm, and paired comparisons of the held-out loss."""
    held = {arm: by_seed for arm, by_seed in runs.items()
            if all("test_held_out_loss" in r for r in by_seed.values())}
    if not held:
        return []
    lines = ["", f"Generalization: the optimizee's held-out accuracy and loss (per held-out "
             f"sample) after the last step, median over the {PROBLEMS} test problems:", "",
             "| arm | held-out accuracy per seed | median over seeds | held-out loss per seed "
             "| median over seeds |", "|---|---|---|---|---|"]
    for arm, by_seed in held.items():
        seeds = sorted(by_seed)
        acc = [_median(by_seed[s]["test_held_out_accuracy"]) for s in seeds]
        loss = [_median(by_seed[s]["test_held_out_loss"]) for s in seeds]
        lines.append(f"| `{arm}` | {' / '.join(f'{v:.3f}' for v in acc)} | {_median(acc):.3f} "
                     f"| {' / '.join(f'{v:.3g}' for v in loss)} | {_median(loss):.3g} |")
    lines += ["", "Paired comparisons of the held-out loss (log-ratio < 0: A generalizes "
              "better):", "", "| A | B | seeds | median log(A/B) [95% CI] | seeds won by A | "
              "problems won by A |", "|---|---|---|---|---|---|"]
    for a, b in spec["compare"]:
        if a not in held or b not in held:
            continue
        c = compare(held, a, b, "test_held_out_loss")
        lines.append(f"| `{a}` | `{b}` | {c['seeds']} | {c['median']:+.3f} "
                     f"[{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}] | {c['seed_wins']}/{c['seeds']} "
                     f"| {c['problem_wins']}/{c['pairs']} |")
    return lines


def headline(args) -> str:
    """studies/headline.md: per family, LSTM(update,tele) (as chosen on validation) against
    LSTM(update), the random-teleport ablation and the balancing teleport (each as chosen),
    from the summaries of every study that has a "headline"."""
    lines = ["# When learned teleportation helps", "",
             "Regenerate: `python scripts/teleport_study.py "
             + " ".join(s for s in STUDIES if "headline" in STUDIES[s])
             + " --table-only`. Per family, the median over meta-training seeds of the median "
             f"test loss at the last step ({PROBLEMS} test problems); each arm as chosen on "
             "validation (the study tables say among what). Ratios: LSTM(update,tele) / other, "
             "the paired median over seeds and problems with its 95% bootstrap CI; "
             "seeds won: seeds on which LSTM(update,tele) ends lower (median over problems).",
             "", "| family | " + " | ".join(next(iter(
                 s["headline"] for s in STUDIES.values() if "headline" in s)))
             + " | LSTM(update,tele) / each other [95% CI], seeds won |",
             "|---|---|---|---|---|---|"]
    for study, spec in STUDIES.items():
        if "headline" not in spec:
            continue
        runs = load_runs(study, args)
        chosen = choose(study, runs)
        arms = {label: chosen.get(name, name) for label, name in spec["headline"].items()}
        if not all(complete(study, runs, a) for a in arms.values()):
            continue
        cells = [f"{_median([_median(runs[a][s]['test_final']) for s in seeds_of(study)]):.3g}"
                 f" (`{a}`)"
                 for a in arms.values()]
        tele = arms["LSTM(update,tele)"]
        ratios = []
        for label, a in arms.items():
            if a == tele:
                continue
            c = compare(runs, tele, a)
            ratios.append(f"{label}: {math.exp(c['median']):.3g} [{math.exp(c['ci'][0]):.3g}, "
                          f"{math.exp(c['ci'][1]):.3g}], {c['seed_wins']}/{c['seeds']}")
        lines.append(f"| {spec['family']} | " + " | ".join(cells) + " | "
                     + "; ".join(ratios) + " |")
    text = "\n".join(lines) + "\n"
    (args.summaries / "headline.md").write_text(text)
    return text


def ship(study: str, items: list[str], args) -> None:
    runs = load_runs(study, args)
    for item in items:
        arm, _, name = item.partition(":")
        if arm not in runs or not name:
            raise SystemExit(f"--ship {item!r}: expected ARM:NAME with an arm of {study} that "
                             f"has finished runs ({', '.join(runs)})")
        # on the validation loss the arm was meta-trained to lower (training or held-out)
        first = next(iter(runs[arm].values()))
        key = ("val_held_out_loss" if first["config"]["train"].get("meta_loss_on") == "held_out"
               else "val_final")
        seed = min(runs[arm], key=lambda s: _median(runs[arm][s][key]))
        folder = args.runs / study / arm / f"s{seed}"
        if not (folder / "params.pt").is_file():
            raise SystemExit(f"--ship {item!r}: {folder}/params.pt is not on this machine; "
                             "retrain it first (python scripts/teleport_study.py ... trains "
                             "runs whose summary is missing: move the summary aside)")
        for suffix, src in ((".pt", "params.pt"), (".yaml", "config.yaml")):
            shutil.copyfile(folder / src, REPO / "checkpoints" / f"{name}{suffix}")
        print(f"shipped {study}/{arm} seed {seed} (validation median "
              f"{_median(runs[arm][seed][key]):.3g}, {key}) as checkpoints/{name}.pt")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.ship and len(args.studies) != 1:
        raise SystemExit("--ship needs exactly one study")
    torch.set_num_threads(1)
    if not args.table_only:
        jobs = [(study, arm, seed) for study in args.studies for seed in seeds_of(study)
                for arm in STUDIES[study]["arms"] if args.arms is None or arm in args.arms]
        with ThreadPoolExecutor(args.jobs) as pool:
            for f in [pool.submit(run_one, *job, args) for job in jobs]:
                f.result()
    for study in args.studies:
        print(table(study, args))
    print(headline(args))
    if args.ship:
        ship(args.studies[0], args.ship, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
