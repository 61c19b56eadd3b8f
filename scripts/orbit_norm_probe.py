"""Why do teleporting arms meta-trained from balanced starts lose held-out accuracy on real
digits, when their LSTM(update)s do not? A probe on real digits' validation problems
(realdata.VAL_SEEDS, never a test problem). The hypothesis was written before the first run
(on the mixed tilt-3 arms' four teleporting and LSTM(update) variants and the first1 arm from
balanced starts); the other six arms and the rank correlation were added after it, to test
it on arms it had not been seen on; the arm meta-trained with the growth of the squared path
norm in its meta-loss (train.scale_weight 1 and 10), the intervention, before any of their
runs:

hypothesis: a diag teleport from the orbit's least-norm point can only raise the weights'
norm, so m1 and m2 meta-trained from there learn to reach functions of larger scale; the
orbit-invariant measure of that scale is the least norm on the final point's rescaling orbit,
||balance_fully(W_T)|| (the function, and so the held-out accuracy, is the same everywhere
on the orbit). If the hypothesis holds, the arms
that lose accuracy end with a larger least-orbit norm, relative to the start's, than those
that keep it: across the arms, the median growth and the median accuracy rank opposite
(Spearman's correlation printed below the table).

For each arm (its committed chosen iterates, the seeds there are) and tuned SGD and Adam
(step sizes chosen on the same problems, realdata.tune): median over seeds and problems of
the held-out accuracy and loss, the training loss and the least-orbit norm at step 100 over
the start's. Teleporting arms run as score_real runs them (teleports after every step).

    python scripts/orbit_norm_probe.py [--arms A ...] [--steps 100]
        [--out studies/general/orbit_norm_probe.md]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metateleport.checkpoint import load_optimizer  # noqa: E402
from metateleport.modules import inspect_module, module_weights  # noqa: E402
from metateleport.stats import spearman  # noqa: E402
from metateleport.studies import realdata  # noqa: E402
from metateleport.studies.general import ARMS, STUDY  # noqa: E402
from metateleport.teleport import balance_fully  # noqa: E402

ARMS_PROBED = ("update_tele_diag-noguard-long-bound3",
               "update_tele_diag-noguard-long-bound3-mixed-tilt3",
               "update_tele_diag-noguard-long-bound3-mixed-tilt3-balanced_test",
               "update_tele_diag-noguard-long-bound3-mixed-tilt3-balanced",
               "update_tele_diag-noguard-long-bound3-mixed-tilt3-balanced-scale1",
               "update_tele_diag-noguard-long-bound3-mixed-tilt3-balanced-scale10",
               "update_tele_diag-noguard-long-mixed-tilt3-balanced",
               "update_tele_diag-noguard-long-bound3-mixed-layer3-first1",
               "update_tele_diag-noguard-long-bound3-mixed-layer3-first1-balanced_test",
               "update_tele_diag-noguard-long-bound3-mixed-layer3-first1-balanced",
               "update-long",
               "update-long-mixed-tilt3",
               "update-long-mixed-tilt3-balanced",
               "update-long-mixed-layer3-first1",
               "update-long-mixed-layer3-first1-balanced")


def least_orbit_norm(model: torch.nn.Module) -> float:
    """||balance_fully(W)|| of ``model``'s weights with biases as last columns: the same for
    every point of the rescaling orbit."""
    weights = balance_fully([w.double() for w in module_weights(
        inspect_module(model, allow_bias=True))])
    return float(torch.sqrt(sum((w ** 2).sum() for w in weights)))


def probe(make_opt, steps: int, teleport: bool) -> dict[str, list[float]]:
    """The measures of run() with ``make_opt`` on every validation problem of real digits."""
    out: dict[str, list[float]] = {"accuracy": [], "held": [], "final": [], "growth": []}
    for seed in realdata.VAL_SEEDS:
        problem = realdata.make_problem("digits", seed)
        start = least_orbit_norm(problem.model)
        r = realdata.run(problem, make_opt, steps, teleport)
        for key, value in (("accuracy", r["accuracy"]), ("held", r["held_out_loss"]),
                           ("final", r["final"]),
                           ("growth", least_orbit_norm(problem.model) / start)):
            out[key].append(value)
    return out


def row(name: str, seeds: str, m: dict[str, list[float]]) -> str:
    med = {k: float(np.median(v)) for k, v in m.items()}
    return (f"| {name} | {seeds} | {med['accuracy']:.3f} | {med['held']:.3f} | "
            f"{med['final']:.3g} | {med['growth']:.3f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", nargs="+", default=list(ARMS_PROBED), choices=list(ARMS))
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--summaries", type=Path, default=REPO / "studies")
    p.add_argument("--out", type=Path, default=REPO / "studies" / STUDY / "orbit_norm_probe.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    lines = ["# Least-orbit norm on real digits' validation problems", "",
             "Regenerate: `python scripts/orbit_norm_probe.py` (its docstring has the "
             f"hypothesis); {len(realdata.VAL_SEEDS)} validation problems per seed, "
             f"{args.steps} steps, medians over seeds and problems. Growth: "
             "||balance_fully(W_T)|| / ||balance_fully(W_0)|| (biases as last columns).", "",
             "| optimizer | seeds | held-out accuracy | held-out loss | training loss | "
             "least-orbit norm growth |", "|---|---|---|---|---|---|"]
    for kind in realdata.HAND:
        lr = realdata.tune("digits", kind, args.steps)["lr"]
        m = probe(functools.partial(realdata.HAND[kind], lr=lr), args.steps, False)
        lines.append(row(f"tuned {kind} (lr {lr:g})", "-", m))
        print(lines[-1], flush=True)
    medians: list[tuple[float, float]] = []
    for arm in args.arms:
        found = sorted((args.summaries / STUDY / arm).glob("s[0-9].pt"))
        if not found:
            continue
        merged: dict[str, list[float]] = {}
        for params in found:
            learned, _ = load_optimizer(params)
            m = probe(realdata.as_scored(learned), args.steps, learned.move is not None)
            for key, values in m.items():
                merged.setdefault(key, []).extend(values)
        lines.append(row(ARMS[arm][2], ", ".join(f.stem for f in found), merged))
        medians.append((float(np.median(merged["growth"])),
                        float(np.median(merged["accuracy"]))))
        print(lines[-1], flush=True)
    if len(medians) > 2:
        lines += ["", f"Over the {len(medians)} arms, Spearman's rank correlation of the median "
                  "least-orbit norm growth and the median held-out accuracy: "
                  f"{spearman(*zip(*medians)):+.2f}."]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"table: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
