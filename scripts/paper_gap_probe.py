"""Where along the run does the generalist fall behind the paper family's specialist?

The shipped generalist ends 2.4x above update.pt (LSTM(update) meta-trained on the paper's
task alone) on the paper suite, the one family where it misses specialists outside the gl
group (update.pt and the paper study's diag arm; general_verdict.frontier_table). This
probe runs arms' chosen iterates (every seed) and update.pt on the paper suite's *validation*
problems (never its test problems), from the problems' own starts, and prints the paired ratio
to update.pt of the loss at several steps (median over seeds x problems, two-level bootstrap
interval). Then the shipped checkpoint with m1's rule changed at test time (CHANGES: its step,
model.update_scale, multiplied; its tilt widened, in every layer or all but the first), paired
with itself unchanged, beside the optimizee's held-out accuracy on real digits' validation
problems (realdata.VAL_SEEDS, update_alignment.over_problems): is the gap a step size, or the
tilt's bound, and in which layer? Seeded (the suite's problem seeds); rerun with

    python scripts/paper_gap_probe.py [--problems 32] [--accuracy-problems 16]
        [--out studies/general/paper_gap.md]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import update_alignment  # noqa: E402  (a sibling script: held-out accuracy on real digits)

from metateleport.checkpoint import load_optimizer  # noqa: E402
from metateleport.evaluation.running import score  # noqa: E402
from metateleport.stats import paired_log_ratio  # noqa: E402
from metateleport.studies.realdata import as_scored  # noqa: E402
from metateleport.studies.suites import suite_task  # noqa: E402
from metateleport.tasks import make_family  # noqa: E402

STEPS = (10, 20, 30, 50, 70, 100)
#: arm (studies/general/<arm>/s<seed>.pt) -> what the table calls it
ARMS = {
    "update_tele_diag-noguard-long-bound3-mixed-tilt3-scale1-budget3200":
        "the shipped recipe (mixed form), from own starts",
    "update-long-mixed-tilt3-scale1-budget3200": "its LSTM(update), from own starts",
    "update_tele_diag-noguard-long": "the direct form, bound 1, 1600 trajectories",
}
#: what the second table changes in the shipped checkpoint's m1 (LearnedUpdate attributes; "step"
#: a multiple of the shipped one)
CHANGES: dict[str, dict] = {
    "as shipped": {},
    "step x 1.5": {"step": 1.5},
    "step x 2": {"step": 2.0},
    "step x 3": {"step": 3.0},
    "tilt 8": {"tilt": 8.0},
    "tilt 8, the first layer at 3": {"tilt": 8.0, "tilt_first": 3.0},
}


def cell(a: torch.Tensor, b: torch.Tensor) -> str:
    """'ratio [lo, hi]' of a (S, M) against b (S, M), paired per problem."""
    r = paired_log_ratio(a, b)
    lo, hi = (math.exp(v) for v in r["ci"])
    return f"{math.exp(r['median']):.2f} [{lo:.2f}, {hi:.2f}]"


def at_steps(opt, problems) -> torch.Tensor:
    """(len(STEPS), M) losses of ``opt`` at STEPS on ``problems``."""
    losses = score({"opt": opt}, problems, max(STEPS))["opt"].losses
    return losses[list(STEPS)]


def changed(opt, change: dict):
    """``opt`` (a LearnedOptimizer) with its rule's attributes set as ``change`` says (in
    place; "step" multiplies the rule's step)."""
    for key, value in change.items():
        setattr(opt.rule, key, opt.rule.step * value if key == "step" else value)
    return opt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problems", type=int, default=32)
    p.add_argument("--accuracy-problems", type=int, default=16,
                   help="real digits' validation problems for the accuracy column")
    p.add_argument("--out", type=Path, default=None, help="also write the tables here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    val = make_family(suite_task("paper")).sample(args.problems, 0, "val")
    ref = at_steps(load_optimizer(REPO / "checkpoints" / "update.pt")[0], val)
    head = " | ".join(f"step {s}" for s in STEPS)
    rows = [f"| arm | seeds | {head} |", "|---|---|" + "---|" * len(STEPS)]
    print("\n".join(rows))
    for arm, label in ARMS.items():
        ckpts = sorted((REPO / "studies" / "general" / arm).glob("s[0-9].pt"))
        runs = torch.stack([at_steps(load_optimizer(c)[0], val) for c in ckpts], 1)  # (T,S,M)
        cells = [cell(runs[i], ref[i].expand_as(runs[i])) for i in range(len(STEPS))]
        rows.append(f"| {label} (`{arm}`) | {len(ckpts)} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    shipped = REPO / "checkpoints" / "general_update_tele.pt"
    base = at_steps(load_optimizer(shipped)[0], val)
    change_rows = [f"| m1 at test time | {head} | real digits: held-out accuracy |",
                   "|---|" + "---|" * (len(STEPS) + 1)]
    for name, change in CHANGES.items():
        opt = changed(load_optimizer(shipped)[0], change)
        runs = at_steps(opt, val) if change else base  # unchanged: the run base already is
        cells = [cell(runs[i][None], base[i][None]) for i in range(len(STEPS))]
        acc = update_alignment.over_problems(as_scored(opt), args.accuracy_problems,
                                             opt.move is not None)["accuracy"]
        change_rows.append(f"| {name} | " + " | ".join(cells) + f" | {acc:.3f} |")
        print(change_rows[-1], flush=True)
    if args.out is not None:
        command = "python scripts/paper_gap_probe.py " + " ".join(
            argv if argv is not None else sys.argv[1:])
        args.out.write_text(
            "# Where the generalist falls behind update.pt on the paper family\n\n"
            f"Regenerate: `{command}` ({args.problems} validation problems of the paper suite; "
            "the loss at each step paired with update.pt's on the same problem, median over "
            "seeds x problems with a two-level bootstrap interval; > 1: above update.pt).\n\n"
            + "\n".join(rows) + "\n\nThe shipped checkpoint (balanced first, as it ships) with "
            "m1's rule changed at test time, paired with it unchanged, and its optimizee's "
            f"held-out accuracy on real digits' first {args.accuracy_problems} validation "
            "problems (100 steps):\n\n" + "\n".join(change_rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
