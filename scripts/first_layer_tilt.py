"""Which layers' spread of m1's steps costs held-out accuracy: a test-time look.

The gradient form's steps (and the adam and mixed forms') spread per coordinate within
exp(+-tilt) of a common step, and on real digits the teleporting generalists' held-out accuracy
falls as that spread grows (update_alignment.md). Within the first layer the spread is per
input feature, the kind of rescaling of the inputs that Adam applies; in the later layers it is
per hidden unit. This takes an arm's committed chosen iterates (default: the gradient form at
tilt 3) and changes, at test time only, the tilt of m1's rule (LearnedUpdate's ``tilt``,
``tilt_first``, ``tilt_over``) in each of the VARIANTS, and measures on validation problems only
(never a test problem: this informed the registration of the arms with the first layer's own
tilt):

- accuracy: the optimizee's held-out accuracy on real digits' validation problems
  (realdata.VAL_SEEDS, 100 steps, update_alignment.measure);
- validation: the task distribution's validation score of the run's config
  (trainer.validation_score: the mean log-loss over steps 1..100, lower is faster).

Means over the arm's seeds (the validation score's median too). m1 was meta-trained with its
own tilt, so a variant measures what the trained m1 does under a bound it never saw: a hint
where to look, not an arm's result. Prints the table and writes
studies/general/first_layer_tilt.md.

    python scripts/first_layer_tilt.py [--arm ARM] [--problems 16]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from metateleport.checkpoint import load_checkpoint
from metateleport.config import config_from_dict
from metateleport.studies import general
from metateleport.studies.realdata import VAL_SEEDS, as_scored
from metateleport.trainer import MetaTrainer, validation_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import update_alignment  # noqa: E402  (a sibling script: its accuracy on real digits)

ARM = "update_tele_diag-noguard-long-bound3-gradient-tilt3"
#: name -> the rule's attributes changed at test time
VARIANTS: dict[str, dict] = {
    "as trained": {},
    "first layer at tilt 1 (around the problem's mean)": {"tilt_first": 1.0},
    "first layer at tilt 1 (around its own mean, every layer its own)":
        {"tilt_first": 1.0, "tilt_over": "layer"},
    "every layer at tilt 1": {"tilt": 1.0, "tilt_first": None},
    "first layer at tilt 3, the others at 1": {"tilt": 1.0, "tilt_first": 3.0},
}


@contextlib.contextmanager
def changed(rule, change: dict):
    """``rule`` (a LearnedUpdate) with the attributes of ``change`` set, restored on exit."""
    saved = {k: getattr(rule, k) for k in change}
    for k, v in change.items():
        setattr(rule, k, v)
    try:
        yield rule
    finally:
        for k, v in saved.items():
            setattr(rule, k, v)


def measure_seed(arm: str, seed: int, summaries: Path, problems: int,
                 variants: dict[str, dict] = VARIANTS) -> dict:
    """variant -> {"accuracy", "validation"} for one committed seed of ``arm``."""
    folder = summaries / general.STUDY / arm
    config = json.loads((folder / f"s{seed}.json").read_text())["config"]
    trainer = MetaTrainer(config_from_dict(config))
    trainer.opt.load_state_dict(load_checkpoint(folder / f"s{seed}.pt", "params")["state_dict"])
    opt = trainer.opt
    out = {}
    for name, change in variants.items():
        with changed(opt.rule, change):
            val = validation_score(trainer.validation_losses())
            acc = update_alignment.over_problems(as_scored(opt), problems,
                                                 opt.move is not None)["accuracy"]
        out[name] = {"accuracy": acc, "validation": val}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm", default=ARM)
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--summaries", type=Path, default=REPO / "studies")
    parser.add_argument("--out", type=Path, default=None,
                        help="the table's file (default <summaries>/general/first_layer_tilt.md)")
    args = parser.parse_args(argv)
    if args.arm not in general.ARMS:
        parser.error(f"unknown arm {args.arm!r}")
    if not any(f"model.update_form={form}" in general.ARMS[args.arm][1]
               for form in ("gradient", "adam", "mixed")):
        parser.error(f"arm {args.arm!r} is in the direct form: it has no tilt to change")
    if not 1 <= args.problems <= len(VAL_SEEDS):
        parser.error(f"--problems must be within 1..{len(VAL_SEEDS)}, got {args.problems}")
    seeds = [seed for _, seed, _ in general.committed(args.summaries, [args.arm],
                                                       general.ARMS[args.arm][3])]
    if not seeds:
        parser.error(f"arm {args.arm!r} has no committed seed under {args.summaries}")
    torch.set_num_threads(1)  # as general_study.py: beside the study's runs on a 2-core machine
    per_seed = []
    for seed in seeds:
        per_seed.append(measure_seed(args.arm, seed, args.summaries, args.problems))
        print(f"seed {seed}: " + json.dumps(per_seed[-1]), flush=True)
    lines = ["# " + " ".join(__doc__.split("\n\n")[0].split()), "",
             f"`python scripts/first_layer_tilt.py --arm {args.arm} --problems "
             f"{args.problems}`: {general.ARMS[args.arm][2]}, seeds {seeds}; held-out accuracy "
             f"on real digits' validation problems (seeds {VAL_SEEDS[0]}.."
             f"{VAL_SEEDS[args.problems - 1]}, 100 steps) and the distribution's validation "
             "score (lower is faster), each m1 under a tilt it was not meta-trained with.", "",
             "| m1's tilt at test time | accuracy | validation score (median) | per seed |",
             "|---|---|---|---|"]
    for name in VARIANTS:
        acc = [s[name]["accuracy"] for s in per_seed]
        val = [s[name]["validation"] for s in per_seed]
        lines.append(f"| {name} | {np.mean(acc):.3f} | {np.mean(val):.3f} ({np.median(val):.3f})"
                     " | " + ", ".join(f"{v:.3f}" for v in val) + " |")
        print(lines[-1])
    out = args.out or args.summaries / general.STUDY / "first_layer_tilt.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
