"""The two parts of a run's validation score (trainer.validation_score) for its chosen and its
last iterate: the mean log-loss over steps 1..N of the validation problems with held-out
samples (digits; their held-out loss under train.validate_on: held_out_where_available, else
their training loss) and of the others. Shows what moved a held-out-validated run's choice.

    python scripts/validation_parts.py runs/studies/general/<arm>/s2 [more run folders]
"""

from __future__ import annotations

import argparse
import sys

import torch

from metateleport.checkpoint import load_checkpoint
from metateleport.config import load_config
from metateleport.tasks import held_out_mask
from metateleport.trainer import MetaTrainer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run folders (config.yaml, best_params.pt, params.pt)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for folder in args.runs:
        trainer = MetaTrainer(load_config(f"{folder}/config.yaml"))
        has = held_out_mask(trainer.val_problems)
        for name in ("best_params.pt", "params.pt"):
            ckpt = load_checkpoint(f"{folder}/{name}", "params")
            trainer.opt.load_state_dict(ckpt["state_dict"])
            logs = trainer.validation_losses()[1:].double().log()
            held, other = logs[:, has].mean().item(), logs[:, ~has].mean().item()
            print(f"{folder} {name} meta-step {ckpt['meta_step']}: {int(has.sum())} of "
                  f"{len(has)} validation problems with held-out samples, their part "
                  f"{held:.3f}, the others' {other:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
