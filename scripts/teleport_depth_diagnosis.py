"""Where a shipped LSTM(update,tele) breaks on deeper and wider nets (docs/design.md section 9):

    python scripts/teleport_depth_diagnosis.py [--checkpoint checkpoints/paper_update_tele.pt]

On 16 test problems of the checkpoint's family at widths 20-20-20, 20-20-20-20 and 40-40-40, it
prints, at chosen steps, the median loss, the median ||T_k|| of every hidden layer's teleport
and the median update norm, and the first step with a non-finite loss.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from metateleport.checkpoint import load_optimizer
from metateleport.inner import StepContext, inner_step
from metateleport.symmetry import input_pinv
from metateleport.tasks import make_family

REPO = Path(__file__).resolve().parents[1]
WIDTHS = ([20, 20, 20], [20, 20, 20, 20], [40, 40, 40])
SHOWN = (0, 1, 2, 5, 10, 20, 30, 40, 59)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=REPO / "checkpoints" /
                   "paper_update_tele.pt")
    p.add_argument("--steps", type=int, default=60)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    opt, meta = load_optimizer(args.checkpoint)
    net, normalize = opt.group_net, opt.group_net.normalize
    for widths in WIDTHS:
        problems = make_family({**meta["task"], "widths": widths}).sample(16, 0, "test")
        weights, state = [w.clone() for w in problems.weights], opt.init_state(problems)
        x_pinv = input_pinv(problems.X, problems.weights[0])
        first, norms = None, []

        def record(T, norms=norms):
            out = normalize(T)
            norms.append(float(out.pow(2).sum((1, 2)).sqrt().median()))
            return out

        net.normalize = record
        try:
            with torch.no_grad():
                for t in range(args.steps):
                    norms.clear()
                    ctx = StepContext(t, problems, x_pinv)
                    loss, weights, state = inner_step(opt, weights, state, ctx)
                    if first is None and not bool(torch.isfinite(loss).all()):
                        first = t
                    if t in SHOWN:
                        layers = ", ".join(f"{n:.2f}" for n in norms)
                        print(f"{widths} step {t:>2}: median loss {loss.median():.3g}, "
                              f"||T_k|| [{layers}], update "
                              f"{ctx.stats['update_norm'].median():.3g}")
        finally:
            net.normalize = normalize
        print(f"{widths}: first non-finite loss at step {first}")


if __name__ == "__main__":
    main()
