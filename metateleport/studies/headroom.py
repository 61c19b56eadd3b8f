"""Headroom of teleportation per family, update rule, norm and schedule (metateleport.oracle).

For each combination, M validation problems (seed 0 of the validation stream) run N = 100 steps of
the update rule (a) without teleports, (b) with random teleports of norm eps, (c) with balancing
teleports (any norm; for reference) and (d) with oracle teleports of norm <= eps on the same
schedule ("once": after the first update only; "every10": after the updates of steps 0, 10, ...,
90), each oracle teleport optimized for the log-loss 10 steps later. A rule is "gd" (GD at the step
size with the lowest median validation loss at step 100 over a log grid 1e-7 .. 1e-2, searched on
16 problems of validation seed 1) or a params checkpoint (its update rule only). Each result goes
to OUT/<key>.json (skipped when present, so the table can be built up over sessions); OUT/table.md
holds the table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..baselines import GD
from ..checkpoint import load_optimizer
from ..evaluation import score, tune_lr
from ..inner import InnerOptimizer, Teleporting
from ..oracle import with_oracle
from ..stats import ArrayLike, quantile
from ..tasks import FAMILIES as REGISTRY
from ..tasks import TaskFamily
from ..teleport import BalanceTeleport, RandomTeleport, Schedule

__all__ = ["FAMILIES", "GD_GRID", "N_STEPS", "SCHEDULES", "fill", "gain", "headroom",
           "headroom_table", "make_rule"]

#: the table's family name -> the registered family (at its defaults)
FAMILIES = {"paper": "paper", "imbalanced": "imbalanced", "cond": "ill_conditioned"}
#: schedule name -> teleport.Schedule(every, until)
SCHEDULES = {"once": (1, 1), "every10": (10, None)}
N_STEPS = 100
GD_GRID = [float(x) for x in np.logspace(-7, -2, 11)]


def make_rule(rule: str, family: TaskFamily, root: Path) -> InnerOptimizer:
    """GD tuned on ``family`` for rule "gd", else the update rule of the params checkpoint at
    ``rule`` (relative to ``root`` unless absolute)."""
    if rule == "gd":
        lr, _ = tune_lr(lambda lr: GD(lr), family.sample(16, 1, "val"), N_STEPS, GD_GRID)
        return GD(lr, name=f"GD({lr:.2g})")
    opt, _ = load_optimizer(root / rule if not Path(rule).is_absolute() else rule)
    opt.name = f"{opt.name} [{Path(rule).stem}]"
    return opt


def headroom(family_name: str, rule: str, eps: float, schedule: str, M: int,
             root: Path) -> dict[str, Any]:
    """The final losses of no, random, balancing and oracle teleports around one update rule
    on M validation problems of one family (the module docstring); JSON-ready."""
    family = REGISTRY[FAMILIES[family_name]]()
    base = make_rule(rule, family, root)
    problems = family.sample(M, 0, "val")
    when = Schedule(*SCHEDULES[schedule])
    oracle = with_oracle(base, eps, when)
    arms = {"none": base,
            "random": Teleporting(base, RandomTeleport(eps), when),
            "balance": Teleporting(base, BalanceTeleport(), when),
            "oracle": oracle}
    start = time.time()
    finals = {name: r.final.double() for name, r in score(arms, problems, N_STEPS).items()}
    return {"family": family_name, "rule": rule, "rule_name": base.name, "eps": eps,
            "schedule": schedule, "problems": M, "steps": N_STEPS, "seconds": time.time() - start,
            "final": {k: [float(v) for v in f] for k, f in finals.items()},
            "oracle_teleports": oracle.move.stats}


def fill(out: Path, families: Sequence[str], rules: Sequence[str], schedules: Sequence[str],
         eps: Sequence[float], problems: int, root: Path,
         log: Callable[[str], None] = print) -> None:
    """Write OUT/<family>-<rule>-<schedule>-<eps>.json for every combination that has none,
    logging its time."""
    out.mkdir(parents=True, exist_ok=True)
    for family in families:
        for rule in rules:
            for schedule in schedules:
                for e in eps:
                    key = f"{family}-{Path(rule).stem}-{schedule}-{e:g}"
                    path = out / f"{key}.json"
                    if path.is_file():
                        continue
                    data = headroom(family, rule, e, schedule, problems, root)
                    path.write_text(json.dumps(data) + "\n")
                    log(f"{key}: {data['seconds']:.0f} s")


def gain(a: ArrayLike, b: ArrayLike) -> float:
    """median over problems of log(a / b): > 0 when b ends lower."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.log(np.asarray(a)) - np.log(np.asarray(b))
    r[~np.isfinite(r)] = np.inf
    return float(quantile(r, 0.5))


def headroom_table(out: Path) -> str:
    """OUT/table.md from every OUT/*.json, written and returned."""
    rows = [json.loads(f.read_text()) for f in sorted(out.glob("*.json"))]
    lines = ["# Teleportation headroom (oracle)", "",
             "`python scripts/oracle_headroom.py` (defaults); median final loss at step 100 "
             "over the problems; gain = median over problems of log(L_other / L_oracle), "
             "> 0 when the oracle's teleports end lower.", "",
             "| family | update rule | eps | schedule | no teleport | random | balance | oracle "
             "| gain vs none | gain vs random |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["family"], r["rule"], r["schedule"], r["eps"])):
        f = r["final"]
        med = {k: float(quantile(v, 0.5)) for k, v in f.items()}
        lines.append(f"| {r['family']} | {r['rule_name']} | {r['eps']:g} | {r['schedule']} | "
                     f"{med['none']:.3g} | {med['random']:.3g} | {med['balance']:.3g} | "
                     f"{med['oracle']:.3g} | "
                     f"{gain(f['none'], f['oracle']):+.3f} | "
                     f"{gain(f['random'], f['oracle']):+.3f} |")
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    return text
