"""The tables of the studies, from the committed run summaries alone.

- ``table``: studies/<study>/table.md: per arm the validation and test medians per seed, the arms
  chosen on validation, and the paired comparisons on the test problems (the median log-ratio of
  the final losses with a two-level bootstrap 95% CI over seeds and problems, seeds won,
  problems won: metateleport.stats.paired_log_ratio), plus, for families with held-out samples,
  the optimizee's held-out accuracy and loss, and for the frontier study the cost and quality
  of every LSTM size (studies.frontier);
- ``headline``: studies/headline.md, one row per family: LSTM(update,tele) against LSTM(update),
  random teleports and the balancing teleport, each as chosen on validation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from ..stats import median, paired_log_ratio
from .arms import PROBLEMS, STUDIES, seeds_of
from .frontier import frontier_lines
from .hand import hand_table
from .runs import load_runs
from .selection import choose, complete, validation_score

__all__ = ["compare", "headline", "held_out_table", "table"]

def compare(runs: Mapping[str, Mapping[int, dict]], a: str, b: str,
            key: str = "test_final") -> dict:
    """Paired log-ratio of A's and B's per-problem values ``key`` on their common seeds."""
    seeds = sorted(set(runs[a]) & set(runs[b]))
    return {"seeds": len(seeds), **paired_log_ratio([runs[a][s][key] for s in seeds],
                                                    [runs[b][s][key] for s in seeds])}


def table(study: str, summaries: Path) -> str:
    """The table of ``study`` from its summaries in ``summaries``, written to
    ``summaries``/<study>/table.md and returned."""
    spec = STUDIES[study]
    root = summaries / study
    runs = load_runs(study, summaries)
    lines = [f"# Study `{study}`", "",
             f"Regenerate: `python scripts/teleport_study.py {study}` (trains what is missing) "
             f"or `--table-only`. Median loss at the last step over {PROBLEMS} problems; test "
             "problems are used for nothing but this report.", "",
             "| arm | seeds | validation median per seed | test median per seed | "
             "median over seeds (test) | ms/step |", "|---|---|---|---|---|---|"]
    for arm, by_seed in runs.items():
        seeds = sorted(by_seed)
        val = [median(by_seed[s]["val_final"]) for s in seeds]
        test = [median(by_seed[s]["test_final"]) for s in seeds]
        ms = median([by_seed[s]["ms_per_step"] for s in seeds])
        lines.append(f"| {spec['arms'][arm][2]} (`{arm}`) | {len(seeds)} | "
                     f"{' / '.join(f'{v:.3g}' for v in val)} | "
                     f"{' / '.join(f'{v:.3g}' for v in test)} | {median(test):.3g} | "
                     f"{ms:.1f} |")
        if "plus_balance_test_final" in by_seed[seeds[0]]:
            tb = [median(by_seed[s]["plus_balance_test_final"]) for s in seeds]
            lines.append(f"| same, balanced after its first update at test time only | "
                         f"{len(seeds)} | - | {' / '.join(f'{v:.3g}' for v in tb)} | "
                         f"{median(tb):.3g} | - |")
    chosen = choose(study, runs)
    if spec["choose"]:
        lines += ["", "Chosen on validation (lowest median over seeds of the validation median; "
                  "arms with all their seeds):", ""]
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
    lines += hand_table(study, summaries)
    lines += frontier_lines(study, runs)
    text = "\n".join(lines) + "\n"
    root.mkdir(parents=True, exist_ok=True)
    (root / "table.md").write_text(text)
    return text


def held_out_table(spec: Mapping, runs: Mapping[str, Mapping[int, dict]]) -> list[str]:
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
        acc = [median(by_seed[s]["test_held_out_accuracy"]) for s in seeds]
        loss = [median(by_seed[s]["test_held_out_loss"]) for s in seeds]
        lines.append(f"| `{arm}` | {' / '.join(f'{v:.3f}' for v in acc)} | {median(acc):.3f} "
                     f"| {' / '.join(f'{v:.3g}' for v in loss)} | {median(loss):.3g} |")
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


def headline(summaries: Path) -> str:
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
        runs = load_runs(study, summaries)
        chosen = choose(study, runs)
        arms = {label: chosen.get(name, name) for label, name in spec["headline"].items()}
        # every headline arm has the study's seeds (an arm may have more: "arm_seeds")
        if not all(set(seeds_of(study)) <= set(runs.get(a, {})) for a in arms.values()):
            continue
        cells = [f"{median([median(runs[a][s]['test_final']) for s in seeds_of(study)]):.3g}"
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
    (summaries / "headline.md").write_text(text)
    return text

