"""The generalist issue's done-when, criterion by criterion, for every candidate teleporting
arm (``CANDIDATES``), read off the committed summaries alone: ``done_when_table``, a section of
studies/general/tables.md; and what the shipping rule read of every arm it chooses from
(``shipping_table``).

Per arm, over every test suite (the issue's families, the distribution's own stream, the
specialists' families and the held-out suite): diverged problems; the suites where its median
loss ratio to tuned Adam and to tuned GD is below 1 (and of those, with the paired interval
excluding 1); against the LSTM(update) meta-trained the same way (the same budget, the same
m1 options) the suites where it ends lower and higher with the interval excluding 1; the
suites with an Adam-equivalent speedup of at least 10x (the median; the issue's goal); the
specialist comparisons within 2x (median ratio, every specialist row of specialist_pairs);
and on real data the paired held-out accuracy difference to the better tuned hand optimizer
(the issue asks for at most 0.03 below).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..stats import difference_text, median
from .arms import StudyError
from .general import ACCURACY_MARGIN, ARMS, SHIPPED, STUDY
from .general_tables import _scored, adam_speeds, hand_tests, specialist_pairs, versus_test
from .realdata import REAL_SETS, versus_best_hand
from .suites import SUITES

__all__ = ["CANDIDATES", "GL_SPECIALISTS", "done_when_table", "frontier_table", "shipping_table"]

#: the teleporting arms a shipped generalist may come from, each with the LSTM(update)
#: meta-trained the same way (the done-when's "generalist LSTM(update)")
CANDIDATES: dict[str, str] = {
    "update_tele_diag-noguard-long-bound3": "update-long",
    "update_tele_diag-noguard-long-bound3-gradient": "update-long-gradient",
    "update_tele_diag-noguard-long-bound3-gradient-tilt3": "update-long-gradient-tilt3",
    "update_tele_diag-noguard-long-bound3-moments": "update-long-moments",
    "update_tele_diag-noguard-long-bound3-adam-tilt3": "update-long-adam-tilt3",
    "update_tele_diag-noguard-long-bound3-mixed-tilt3": "update-long-mixed-tilt3",
    "update_tele_diag-noguard-long-bound3-mixed-tilt2": "update-long-mixed-tilt2",
    "update_tele_diag-noguard-long-bound3-gradient-layer": "update-long-gradient-layer",
    "update_tele_diag-noguard-long-bound3-gradient-layer3-first1":
        "update-long-gradient-layer3-first1",
    "update_tele_diag-noguard-long-bound3-mixed-layer3-first1":
        "update-long-mixed-layer3-first1",
    "update_tele_diag-noguard-long-bound3-mixed-tilt3-balanced":
        "update-long-mixed-tilt3-balanced",
    "update_tele_diag-noguard-long-bound3-mixed-tilt3-balanced_test":
        "update-long-mixed-tilt3-balanced_test",
    "update_tele_diag-noguard-long-bound3-mixed-layer3-first1-balanced_test":
        "update-long-mixed-layer3-first1-balanced_test",
    "update_tele_diag-noguard-long-bound3-mixed-layer3-first1-balanced":
        "update-long-mixed-layer3-first1-balanced",
    "update_tele_diag-noguard-long-bound3-mixed-tilt3-scale1": "update-long-mixed-tilt3-scale1",
    "update_tele_diag-noguard-long-bound3-mixed-tilt3-scale1-balanced_test":
        "update-long-mixed-tilt3-scale1-balanced_test",
    "update_tele_diag-noguard-long-bound3-mixed-tilt3-scale3": "update-long-mixed-tilt3-scale3",
    "update_tele_diag-noguard-long-bound3-mixed-tilt3-scale3-balanced_test":
        "update-long-mixed-tilt3-scale3-balanced_test",
    "update_tele_diag-noguard-long-bound3-mixed-tilt3-scale1-meta_lr0.001":
        "update-long-mixed-tilt3-scale1-meta_lr0.001",
    "update_tele_diag-noguard-long-bound3-mixed-tilt3-scale1-meta_lr0.001-balanced_test":
        "update-long-mixed-tilt3-scale1-meta_lr0.001-balanced_test",
    **{f"update_tele_diag-noguard-long-bound3-mixed-tilt3-scale1-budget{budget}{suffix}":
       f"update-long-mixed-tilt3-scale1-budget{budget}{suffix}"
       for budget in ("3200", "6400", "3200-hidden40") for suffix in ("", "-balanced_test")},
}


#: the shipped specialists whose m2 writes a full invertible matrix per hidden layer (the gl
#: group): moves exact on the training batch only, which no diag arm can make
GL_SPECIALISTS = ("paper_update_tele", "paper_update_tele_look", "imbalanced_update_tele",
                  "cond_update_tele", "digits_update_tele")


def _real_gap(summaries: Path, arm: str, name: str) -> tuple[str, dict] | None:
    """On real set ``name``'s test problems: the better tuned hand optimizer and ``arm``'s
    paired held-out accuracy difference to it (versus_best_hand), None until scored."""
    found = _scored(summaries, arm, f"real-{name}")
    if not found:
        return None
    best, _, versus = versus_best_hand(found, ("sgd", "adam"))
    return best, versus


def _count(tests: list[dict]) -> str:
    """'k (j)': of paired_log_ratio results, how many have a median below 0, and of those
    how many an interval below 0."""
    below = [t for t in tests if t["median"] < 0]
    return f"{len(below)} ({sum(t['ci'][1] < 0 for t in below)})"


def _row(summaries: Path, arm: str, update: str) -> str | None:
    scored = {suite: _scored(summaries, arm, suite) for suite in SUITES}
    scored = {suite: done for suite, done in scored.items() if done}
    if not scored:
        return None
    seeds = min(len(done) for done in scored.values())
    diverged = sum(d["learned"]["diverged"] for done in scored.values() for d in done.values())
    problems = sum(np.size(d["learned"]["final"]) for done in scored.values()
                   for d in done.values())
    vs: dict[str, list[dict]] = {"adam": [], "gd": []}
    lower = higher = fast = 0
    for suite, done in scored.items():
        for hand, test in hand_tests(done).items():
            vs[hand].append(test)
        t = versus_test(done, _scored(summaries, update, suite))
        if t is not None:
            lower += t["ci"][1] < 0
            higher += t["ci"][0] > 0
        fast += float(np.median(adam_speeds(done))) >= 10
    pairs = [np.median(a) <= 2 * np.median(b)
             for *_, a, b in specialist_pairs(summaries, arm)]
    real = []
    for name in REAL_SETS:
        gap = _real_gap(summaries, arm, name)
        real.append("-" if gap is None else f"{difference_text(gap[1])} vs {gap[0]}")
    n = len(scored)
    return (f"| {ARMS[arm][2]} | {seeds} | {diverged}/{problems} | {_count(vs['adam'])} of {n} "
            f"| {_count(vs['gd'])} of {n} | {lower} / {higher} of {n} | {fast} of {n} | "
            f"{sum(pairs)} of {len(pairs)} | " + " | ".join(real) + " |")


def done_when_table(summaries: Path) -> str:
    """Markdown, one row per CANDIDATES arm with scored runs (see the module docstring)."""
    rows = ["| arm | seeds | diverged | below tuned Adam (interval) | below tuned GD (interval) "
            "| vs its LSTM(update): lower / higher, intervals excluding 1 | Adam-equivalent "
            ">= 10x | specialist rows within 2x | "
            + " | ".join(f"real {name}: accuracy - best hand's" for name in REAL_SETS) + " |",
            "|---|---|---|---|---|---|---|---|" + "---|" * len(REAL_SETS)]
    rows += [r for arm, update in CANDIDATES.items()
             if (r := _row(summaries, arm, update)) is not None]
    return "\n".join(rows) + "\n"


def shipping_table(summaries: Path) -> str:
    """Markdown, one row per arm of SHIPPED (per checkpoint): its seeds trained, median
    validation score, and per real set the median over seeds of its held-out accuracy on the
    validation problems minus the better tuned hand optimizer's, whether it is within
    ACCURACY_MARGIN (general_runs.shipped_choice's rule) and what ships."""
    from .general_runs import _by_seed, real_validation_gaps, shipped_choice, within_margin
    from .realdata import validation_gap

    rows = ["| checkpoint | arm | seeds | validation score (median) | "
            + " | ".join(f"{name}: validation accuracy - best hand's" for name in REAL_SETS)
            + f" | within {ACCURACY_MARGIN} | ships |", "|---|---|---|---|"
            + "---|" * len(REAL_SETS) + "---|---|"]
    for name, (arms, _) in SHIPPED.items():
        try:
            chosen = shipped_choice(summaries, name)
        except StudyError:  # nothing qualifies yet
            chosen = None
        for arm in arms:
            seeds = ARMS[arm][3]
            done = _by_seed(summaries / STUDY / arm, seeds)
            if not done:
                continue
            per_set = []
            for real in REAL_SETS:
                found = [summaries / STUDY / arm / f"s{s}-val-real-{real}.json" for s in done]
                gaps = [validation_gap(json.loads(f.read_text())) for f in found if f.is_file()]
                per_set.append(f"{median(gaps):+.3f} ({len(gaps)})" if gaps else "-")
            gaps = real_validation_gaps(summaries, arm)
            within = "-" if gaps is None else "yes" if within_margin(gaps) else "no"
            ships = f"seed {chosen[1]}" if chosen and chosen[0] == arm else ""
            score = median([d["validation_score"] for d in done.values()])
            rows.append(f"| {name} | {ARMS[arm][2]} | {len(done)}/{len(seeds)} | {score:.3f} | "
                        + " | ".join(per_set) + f" | {within} | {ships} |")
    return "\n".join(rows) + "\n"


def frontier_table(summaries: Path) -> str:
    """Markdown, one row per teleporting arm in the diag group (random teleports aside) scored
    on a specialist's suite and on real data: the done-when's two criteria that no such arm has
    met together. Its seeds scored; its specialist rows outside the gl group (GL_SPECIALISTS)
    within 2x at the median, and the farthest of them; per real set the paired held-out
    accuracy minus the better tuned hand optimizer's; and whether both hold (every such row
    within 2x, every set's mean at most ACCURACY_MARGIN below)."""
    rows = ["| arm | seeds | specialist rows outside the gl group within 2x | the farthest | "
            + " | ".join(f"real {name}: accuracy - best hand's" for name in REAL_SETS)
            + " | both |", "|---|---|---|---|" + "---|" * len(REAL_SETS) + "---|"]
    for arm, (_, overrides, label, _) in ARMS.items():
        if "model.tele_group=diag" not in overrides or arm.startswith("update_random"):
            continue
        gaps = [_real_gap(summaries, arm, name) for name in REAL_SETS]
        pairs = [(suite, name, float(np.median(a)) / float(np.median(b)), len(seeds))
                 for suite, name, _, _, seeds, a, b in specialist_pairs(summaries, arm)
                 if name.removesuffix(".pt (shipped)") not in GL_SPECIALISTS]
        if None in gaps or not pairs:
            continue
        within = sum(r <= 2 for _, _, r, _ in pairs)
        suite, name, far, _ = max(pairs, key=lambda p: p[2])
        both = within == len(pairs) and all(g["mean"] >= -ACCURACY_MARGIN for _, g in gaps)
        rows.append(f"| {label} | {max(p[3] for p in pairs)} | {within} of {len(pairs)} | "
                    f"{far:.2f}x {name} on {suite} | "
                    + " | ".join(difference_text(g) for _, g in gaps)
                    + f" | {'yes' if both else 'no'} |")
    return "\n".join(rows) + "\n"
