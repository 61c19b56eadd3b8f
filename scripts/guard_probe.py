"""How often the loss guard refuses the untrained generalist's steps, by teleport bound:

    python scripts/guard_probe.py [--problems 16] [--steps 100]

Runs the untrained optimizer of configs/general_update_tele.yaml (torch seed 0) on validation
problems of its task distribution (seed 0), with max_tele_norm 1, 0.1 and 0.01 and without
teleports, and prints the fraction of steps refused and the median log(L_N / L_0).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from metateleport.config import build_family, build_optimizer, load_config
from metateleport.inner import run

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "general_update_tele.yaml"
VARIANTS = (["model.max_tele_norm=1.0"], ["model.max_tele_norm=0.1"],
            ["model.max_tele_norm=0.01"], ["model.variant=update"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problems", type=int, default=16)
    p.add_argument("--steps", type=int, default=100)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    problems = build_family(load_config(CONFIG)).sample(args.problems, 0, "val")
    for overrides in VARIANTS:
        torch.manual_seed(0)
        opt = build_optimizer(load_config(CONFIG, overrides)).eval()
        traj = run(opt, problems, args.steps)
        refused = float(traj.refused.sum()) / (args.steps * args.problems)
        ratio = float((traj.losses[-1] / traj.losses[0]).log().median())
        print(f"{' '.join(overrides):<28} steps refused {refused:.3f}, median log(L_N/L_0) "
              f"{ratio:.2f}")


if __name__ == "__main__":
    main()
