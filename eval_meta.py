"""Evaluate trained optimizers on initializations never seen in training.

    python eval_meta.py --checkpoint A.pt [B.pt ...] [--num-inits 64] [--steps 100]
                        [--widths 20,20,20] [--n-samples 20] [--init uniform] [--seed N]
                        [--unit-span S] [--layer-span S] [--cond C] [--balance]
                        [--baselines gd,adam,gd_tele,gd_schedule] [--out DIR] [--overwrite]
                        [--threshold X] [--no-tune] [--device cpu|cuda]

Writes DIR/results.json, DIR/results.md, DIR/curves.png, DIR/tb/<optimizer>/ (TensorBoard) and
DIR/tuned_lrs.json (the baselines' step sizes, reused by a rerun into DIR). Exit code 2 with
"error: ..." on bad input, before anything is written.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import torch

from metateleport.checkpoint import CheckpointError
from metateleport.config import ConfigError
from metateleport.evaluation import (
    BASELINES,
    DEFAULT_BASELINES,
    EvalError,
    checkpoint_name,
    run_evaluation,
)
from metateleport.tasks import INITS


def _widths(text: str) -> list[int]:
    try:
        return [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 20,20,20, got {text!r}") from None


def _baselines(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()] if text.strip() else []
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown baselines {unknown}; allowed: {','.join(BASELINES)} (or '' for none)")
    return sorted(set(names), key=BASELINES.index)


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("empty; name a report folder")
    return Path(text)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate learned optimizers against baselines.")
    parser.add_argument("--checkpoint", nargs="+", required=True, metavar="PATH",
                        help="params checkpoints (run/params.pt or checkpoints/*.pt); the variant "
                             "is read from each")
    parser.add_argument("--num-inits", type=int, default=64,
                        help="unseen initializations M (>= 1)")
    parser.add_argument("--steps", type=int, default=100, help="inner steps N (>= 1)")
    parser.add_argument("--widths", type=_widths, default=None,
                        help="task widths d_0,...,d_L (default: the checkpoints' own)")
    parser.add_argument("--n-samples", type=int, default=None,
                        help="samples n per problem (default: the checkpoints' own)")
    parser.add_argument("--init", choices=list(INITS), default=None,
                        help="weight initialization (default: the checkpoints' own)")
    parser.add_argument("--unit-span", type=float, default=None,
                        help="per-unit rescaling span of the initial points (1: none; default: "
                             "the checkpoints' own)")
    parser.add_argument("--layer-span", type=float, default=None,
                        help="per-layer rescaling span (1: none; default: the checkpoints' own)")
    parser.add_argument("--cond", type=float, default=None,
                        help="condition number of X (default: the checkpoints' own)")
    parser.add_argument("--family", default=None, metavar="NAME",
                        help="evaluate on the registered task family NAME at its defaults "
                             "(paper, imbalanced, layer_rescaled, ill_conditioned, digits, "
                             "distribution, ...) instead of the checkpoints' own; the task "
                             "flags above then change it")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the evaluation (test) and tuning (validation) problems")
    parser.add_argument("--baselines", type=_baselines, default=list(DEFAULT_BASELINES),
                        help=f"hand-designed baselines, comma-separated, from "
                             f"{','.join(BASELINES)} (default: {','.join(DEFAULT_BASELINES)})")
    parser.add_argument("--balance", action="store_true",
                        help="also run each checkpoint's update rule with a balancing teleport "
                             "after its first update instead of its own teleports "
                             "(<name>+balance)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="loss threshold for steps-to-threshold (default: 10x best median)")
    parser.add_argument("--out", type=_folder, help="report folder (default runs/eval/<name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.add_argument("--no-tune", action="store_true",
                        help="fixed step sizes (GD 3e-4, Adam 1e-2, two-phase 1e-4 then 5e-3) "
                             "instead of tuning them on validation problems")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    return parser.parse_args(argv)


def default_out(checkpoint: str) -> Path:
    """runs/eval/<name> for the first checkpoint: the run folder's name for a run's params.pt
    (runs/NAME/params.pt), the file's stem otherwise (checkpoints/update_tele.pt ->
    update_tele)."""
    return Path("runs") / "eval" / checkpoint_name(checkpoint)


def unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot take the report (None if it can): found before any work, by
    creating it (if missing) and a probe file in it; a folder created here is removed again."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return err.strerror or str(err)
    finally:
        for p in missing:  # innermost first: leave no empty folders behind
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.num_inits < 1 or args.steps < 1 or args.seed < 0:
        print("error: --num-inits and --steps must be >= 1, --seed >= 0", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but CUDA is not available on this machine", file=sys.stderr)
        return 2
    if args.threshold is not None and not (math.isfinite(args.threshold) and args.threshold > 0):
        print(f"error: --threshold must be a finite number > 0, got {args.threshold}",
              file=sys.stderr)
        return 2
    out = args.out or default_out(args.checkpoint[0])
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file, not a report folder; choose another --out",
              file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        print(f"error: report folder {out} exists and is not empty; pass --overwrite or choose "
              "another --out (nothing was changed)", file=sys.stderr)
        return 2
    problem = unwritable(out)
    if problem:
        print(f"error: cannot write the report into {out}: {problem} (nothing was evaluated)",
              file=sys.stderr)
        return 2
    try:
        result, paths = run_evaluation(
            args.checkpoint, num_inits=args.num_inits, n_steps=args.steps, seed=args.seed,
            widths=args.widths, n_samples=args.n_samples, init=args.init,
            task_overrides={"unit_span": args.unit_span, "layer_span": args.layer_span,
                            "cond": args.cond},
            baseline_names=args.baselines, threshold=args.threshold, tune=not args.no_tune,
            out_dir=out, device=args.device, with_balance=args.balance, family=args.family)
    except (CheckpointError, ConfigError, EvalError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(paths["markdown"].read_text())
    print(f"table: {paths['markdown']} ; {paths['json']}")
    print(f"curves: {paths['curves']} ; tensorboard --logdir {paths['tb']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
