"""Headroom of teleportation per family, update rule, norm and schedule (metateleport.oracle):

    python scripts/oracle_headroom.py [--families paper imbalanced cond] [--rules gd PATH ...]
                                      [--eps 0.01 0.1 1 5] [--schedules once every10]
                                      [--problems 16] [--out studies/oracle] [--table-only]

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

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metateleport.checkpoint import load_optimizer  # noqa: E402
from metateleport.evaluation import tune_lr  # noqa: E402
from metateleport.optimizers import GD, TeleportSchedule, WithTeleport, run  # noqa: E402
from metateleport.oracle import OracleTeleport  # noqa: E402
from metateleport.stats import quantile  # noqa: E402
from metateleport.tasks import MLPTaskFamily  # noqa: E402

FAMILIES = {"paper": {}, "imbalanced": {"unit_span": 10.0}, "cond": {"cond": 1e3}}
SCHEDULES = {"once": (1, 1), "every10": (10, None)}  # (period, first)
N_STEPS = 100
GD_GRID = [float(x) for x in np.logspace(-7, -2, 11)]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--rules", nargs="+", default=["gd", "checkpoints/update.pt"])
    p.add_argument("--eps", nargs="+", type=float, default=[0.01, 0.1, 1.0, 5.0])
    p.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=list(SCHEDULES))
    p.add_argument("--problems", type=int, default=16)
    p.add_argument("--out", type=Path, default=REPO / "studies" / "oracle")
    p.add_argument("--table-only", action="store_true")
    return p.parse_args(argv)


def make_rule(rule: str, family: MLPTaskFamily):
    if rule == "gd":
        lr, _ = tune_lr(lambda lr: GD(lr), family.sample(16, 1, "val"), N_STEPS, GD_GRID)
        return GD(lr, name=f"GD({lr:.2g})")
    opt, _ = load_optimizer(REPO / rule if not Path(rule).is_absolute() else rule)
    opt.name = f"{opt.name} [{Path(rule).stem}]"
    return opt


def one(family_name: str, rule: str, eps: float, schedule: str, M: int) -> dict:
    family = MLPTaskFamily(**FAMILIES[family_name])
    base = make_rule(rule, family)
    problems = family.sample(M, 0, "val")
    period, first = SCHEDULES[schedule]
    oracle = OracleTeleport(base, eps, period=period, first=first)
    arms = {"none": base,
            "random": WithTeleport(base, TeleportSchedule(at_steps=None, kind="random",
                                                          every=period, first=first,
                                                          max_norm=eps)),
            "balance": WithTeleport(base, TeleportSchedule(at_steps=None, kind="balance",
                                                           every=period, first=first)),
            "oracle": oracle}
    finals, start = {}, time.time()
    for name, opt in arms.items():
        torch.manual_seed(0)
        finals[name] = run(opt, problems, N_STEPS).losses[-1].double()
    return {"family": family_name, "rule": rule, "rule_name": base.name, "eps": eps,
            "schedule": schedule, "problems": M, "steps": N_STEPS, "seconds": time.time() - start,
            "final": {k: [float(v) for v in f] for k, f in finals.items()},
            "oracle_teleports": oracle.stats}


def _gain(a, b) -> float:
    """median over problems of log(a / b): > 0 when b ends lower."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.log(np.asarray(a)) - np.log(np.asarray(b))
    r[~np.isfinite(r)] = np.inf
    return float(quantile(r, 0.5))


def table(out: Path) -> str:
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
                     f"{_gain(f['none'], f['oracle']):+.3f} | "
                     f"{_gain(f['random'], f['oracle']):+.3f} |")
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    return text


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for family in args.families:
            for rule in args.rules:
                for schedule in args.schedules:
                    for eps in args.eps:
                        key = f"{family}-{Path(rule).stem}-{schedule}-{eps:g}"
                        path = args.out / f"{key}.json"
                        if path.is_file():
                            continue
                        data = one(family, rule, eps, schedule, args.problems)
                        path.write_text(json.dumps(data) + "\n")
                        print(f"{key}: {data['seconds']:.0f} s", flush=True)
    print(table(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
