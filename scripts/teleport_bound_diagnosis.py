"""Whether the teleport bound holds a learned teleport back, suite by suite (docs/results.md,
"The generalist"):

    python scripts/teleport_bound_diagnosis.py [--checkpoint checkpoints/general_update_tele.pt]
        [--suites unit_span10 paper unit_span30] [--problems 16]

On the first ``--problems`` test problems of each suite of studies.suites.SUITES it runs the
checkpoint (with its guard) for 100 steps and prints the median norm of the teleport over
every 10 steps (||T|| over all hidden layers, what model.max_tele_norm bounds), the fraction
of steps at the bound, and the median loss at steps 0, 10 and 100.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from metateleport.checkpoint import load_optimizer
from metateleport.inner import StepContext, inner_step_groups
from metateleport.studies.suites import SUITES, suite_task
from metateleport.symmetry import input_pinv
from metateleport.tasks import batched_mlp_loss_and_grad, groups_of, make_family

REPO = Path(__file__).resolve().parents[1]
N_STEPS = 100


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path,
                   default=REPO / "checkpoints" / "general_update_tele.pt")
    p.add_argument("--suites", nargs="+", choices=list(SUITES),
                   default=["unit_span10", "paper", "unit_span30"])
    p.add_argument("--problems", type=int, default=16)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    opt, meta = load_optimizer(args.checkpoint)
    bound = meta["model"].get("max_tele_norm")
    if not bound:
        raise SystemExit(f"{args.checkpoint} has no teleport bound (model.max_tele_norm)")
    print(f"{args.checkpoint.name}: max_tele_norm {bound} over the "
          f"{meta['model'].get('tele_norm_over', 'layer')}")
    for suite in args.suites:
        task = suite_task(suite)
        groups = groups_of(make_family(task).sample(args.problems, 0, "test"))
        loss_and_grads = [batched_mlp_loss_and_grad(g) for g in groups]
        x_pinvs = [input_pinv(g.X, g.weights[0]) for g in groups]
        weights = [[w.clone() for w in g.weights] for g in groups]
        states = [opt.init_state(g) for g in groups]
        norms, losses = [], []
        with torch.no_grad():
            for t in range(N_STEPS):
                ctxs = [StepContext(t, g, x) for g, x in zip(groups, x_pinvs)]
                steps = inner_step_groups(opt, weights, states, ctxs, loss_and_grads)
                weights, states = [s[1] for s in steps], [s[2] for s in steps]
                norms.append(torch.cat([c.stats["tele_norm"] for c in ctxs]))
                losses.append(torch.cat([s[0] for s in steps]))
        norm, loss = torch.stack(norms), torch.stack(losses)
        per10 = " ".join(f"{float(norm[i:i + 10].median()):.2f}" for i in range(0, N_STEPS, 10))
        at_bound = float((norm >= 0.99 * bound).float().mean())
        shown = " / ".join(f"{float(loss[i].median()):.4g}" for i in (0, 10, N_STEPS - 1))
        print(f"{suite}: ||T|| median per 10 steps {per10}; at the bound {at_bound:.1%}; "
              f"median loss at steps 0 / 10 / {N_STEPS} {shown}")


if __name__ == "__main__":
    main()
