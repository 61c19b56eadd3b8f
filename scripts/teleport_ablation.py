"""What the learned teleports of a trained LSTM(update,tele) do: test-time ablations of the runs of
one study arm (no retraining):

    python scripts/teleport_ablation.py [--study imbalanced] [--arm update_tele-skip]

For every meta-training seed whose run folder runs/studies/<study>/<arm>/s<seed> holds params.pt,
the trained optimizer runs on the 64 test problems of its family (seed 0 of the test stream, as in
the study) as trained, and with its m2 replaced at test time by:

- "none": no teleports (m1 alone, as co-trained with m2);
- "balance": the closed-form balancing teleport after every update;
- "skip only": m2's LSTM head silenced, so T = a * (balance signal) on the diagonal;
- "LSTM only": the skip silenced (a = 0), so T is what m2's LSTM writes.

Writes studies/<study>/ablation-<arm>.md (median test loss at the last step per seed and the
median over seeds) and one JSON per seed beside it, studies/<study>/<arm>/ablation-s<seed>.json,
committed like the study summaries: a seed with a JSON is not run again.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import teleport_study  # noqa: E402

from metateleport.checkpoint import load_optimizer  # noqa: E402
from metateleport.optimizers import TeleportSchedule, WithTeleport, run  # noqa: E402
from metateleport.stats import quantile  # noqa: E402
from metateleport.tasks import make_family  # noqa: E402

SEEDS = teleport_study.SEEDS
PROBLEMS = teleport_study.PROBLEMS  # the study's test problems
VERSIONS = ("as trained", "none", "balance", "skip only", "LSTM only")


def versions(opt) -> dict:
    """name -> the trained optimizer with its m2 ablated as the module docstring says."""
    skip_only, lstm_only = copy.deepcopy(opt), copy.deepcopy(opt)
    with torch.no_grad():
        skip_only.group_net.head.weight.zero_()
        skip_only.group_net.head.bias.zero_()
        if lstm_only.group_net.skip is not None:
            lstm_only.group_net.skip.weight.zero_()
    return {"as trained": opt,
            "none": WithTeleport(opt, TeleportSchedule(at_steps=())),
            "balance": WithTeleport(opt, TeleportSchedule(kind="balance", at_steps=None)),
            "skip only": skip_only, "LSTM only": lstm_only}


@torch.no_grad()
def ablate(params: Path) -> dict:
    opt, meta = load_optimizer(params)
    if opt.group_net is None or opt.group_net.skip is None:
        raise SystemExit(f"{params}: not an LSTM(update,tele) with a balance skip")
    family = make_family(meta["task"])
    n_steps = meta["config"]["train"]["n_steps"]
    problems = family.sample(PROBLEMS, 0, "test")
    out = {"balance_skip_weight": float(opt.group_net.skip.weight[0, 0])}
    for name, rule in versions(opt.eval()).items():
        out[name] = [float(v) for v in run(rule, problems, n_steps).losses[-1]]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", default="imbalanced")
    p.add_argument("--arm", default="update_tele-skip")
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "studies")
    p.add_argument("--summaries", type=Path, default=REPO / "studies")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for seed in SEEDS:
        f = args.summaries / args.study / args.arm / f"ablation-s{seed}.json"
        params = args.runs / args.study / args.arm / f"s{seed}" / "params.pt"
        if not f.is_file() and params.is_file():
            f.write_text(json.dumps(ablate(params)) + "\n")
        if f.is_file():
            results[seed] = json.loads(f.read_text())
    if not results:
        raise SystemExit(f"no runs of {args.study}/{args.arm} under {args.runs}")

    def med(values) -> float:
        return float(quantile(values, 0.5))

    seeds = sorted(results)
    lines = [f"# Test-time ablations of `{args.study}/{args.arm}`", "",
             f"Regenerate: `python scripts/teleport_ablation.py --study {args.study} --arm "
             f"{args.arm}`. Median test loss at the last step over {PROBLEMS} problems, per "
             "meta-training seed; the trained m1 is kept, its teleports replaced.", "",
             "| m2 at test time | " + " | ".join(f"seed {s}" for s in seeds)
             + " | median over seeds |", "|---|" + "---|" * (len(seeds) + 1)]
    for name in VERSIONS:
        per_seed = [med(results[s][name]) for s in seeds]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3g}" for v in per_seed)
                     + f" | {med(per_seed):.3g} |")
    lines.append("| (learned a of the skip) | "
                 + " | ".join(f"{results[s]['balance_skip_weight']:.3f}" for s in seeds) + " | |")
    text = "\n".join(lines) + "\n"
    (args.summaries / args.study / f"ablation-{args.arm}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
