"""Does an exact balancing before the first step close the generalist's gap on rescaled units?

The shipped diag generalist ends 4-8x above the diag specialist on unit_span10, whose units a
diag move can balance exactly (teleport.balance_teleport, one sweep over the hidden layers:
each unit's incoming and outgoing norms made equal, exactly so in the last hidden layer; the
function unchanged for every input). This probe runs
checkpoints on the *validation* problems of the given suites (never the test problems), from
the problems' own initialization and from its balanced image, and prints the median loss at
step 100 of each and their paired ratio over problems. Seeded (the suites' problem seeds);
rerun with

    python scripts/balance_first_probe.py [--checkpoints A.pt B.pt] [--suites unit_span10 ...]
        [--out studies/general/balance_first.md]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metateleport.checkpoint import load_optimizer  # noqa: E402
from metateleport.evaluation.running import score  # noqa: E402
from metateleport.stats import paired_log_ratio  # noqa: E402
from metateleport.studies.suites import SUITES, suite_task  # noqa: E402
from metateleport.tasks import make_family  # noqa: E402
from metateleport.teleport import balance_teleport, balanced_problems  # noqa: E402


def balanced(problems):
    """The problems (one shape, or mixed: every group) with every network balanced by one
    sweep; the function is the same for every input, up to float rounding."""
    return balanced_problems(problems, balance_teleport)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", nargs="+", type=Path,
                   default=[REPO / "checkpoints" / "general_update_tele.pt",
                            REPO / "studies/general/update_tele_diag-noguard-long-bound3/s1.pt"])
    p.add_argument("--suites", nargs="+", choices=list(SUITES),
                   default=["unit_span10", "unit_span30", "paper", "distribution"])
    p.add_argument("--problems", type=int, default=32)
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = ["| checkpoint | suite | median loss, as sampled | balanced first | balanced / as "
            "sampled [95% CI] |", "|---|---|---|---|---|"]
    print("\n".join(rows))
    opts = {ckpt: load_optimizer(ckpt)[0] for ckpt in args.checkpoints}
    for suite in args.suites:
        val = make_family(suite_task(suite)).sample(args.problems, 0, "val")
        starts = {"plain": val, "balanced": balanced(val)}
        for ckpt, opt in opts.items():
            runs = {name: score({name: opt}, probs, 100)[name].final
                    for name, probs in starts.items()}
            r = paired_log_ratio(runs["balanced"][None], runs["plain"][None])
            lo, hi = (math.exp(v) for v in r["ci"])
            name = ckpt.relative_to(REPO) if ckpt.is_relative_to(REPO) else ckpt
            rows.append(f"| {name} | {suite} | {runs['plain'].median():.3g} | "
                        f"{runs['balanced'].median():.3g} | {math.exp(r['median']):.3g} "
                        f"[{lo:.3g}, {hi:.3g}] |")
            print(rows[-1], flush=True)
    if args.out is not None:
        command = "python scripts/balance_first_probe.py " + " ".join(
            argv if argv is not None else sys.argv[1:])
        args.out.write_text(
            "# Balanced before the first step, on validation problems\n\n"
            f"Regenerate: `{command}` ({args.problems} validation problems per suite; median "
            "loss at step 100; the ratio is the paired one over problems with its bootstrap "
            "interval).\n\n" + "\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
