"""Evaluate trained optimizers on initializations never seen in training.

    python eval_meta.py --checkpoint PATH [--baseline PATH ...] [--problems 64] [--steps 100]
                        [--seed 0] [--threshold X] [--out DIR] [--overwrite] [--no-tune]
                        [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from metateleport.checkpoint import CheckpointError
from metateleport.evaluation import run_evaluation


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate learned optimizers against baselines.")
    parser.add_argument("--checkpoint", required=True, help="params checkpoint (run/params.pt)")
    parser.add_argument("--baseline", action="append", default=[], metavar="PATH",
                        help="another learned optimizer to compare (repeatable)")
    parser.add_argument("--problems", type=int, default=64, help="test problems M (>= 1)")
    parser.add_argument("--steps", type=int, default=100, help="inner steps N (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test/val problems")
    parser.add_argument("--threshold", type=float, default=None,
                        help="loss threshold for steps-to-threshold (default: 10x best median)")
    parser.add_argument("--out", type=Path, help="report folder (default runs/eval/<name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.add_argument("--no-tune", action="store_true",
                        help="GD at 3e-4 and Adam at 1e-2 instead of tuning on validation")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    return parser.parse_args(argv)


def default_out(checkpoint: str) -> Path:
    """runs/eval/<name>: the run folder's name for a run's params.pt (runs/NAME/params.pt),
    the file's stem otherwise (checkpoints/update_tele.pt -> update_tele)."""
    path = Path(checkpoint)
    name = path.parent.name if path.stem == "params" else path.stem
    return Path("runs") / "eval" / (name or path.stem)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.problems < 1 or args.steps < 1 or args.seed < 0:
        print("error: --problems and --steps must be >= 1, --seed >= 0", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but CUDA is not available on this machine", file=sys.stderr)
        return 2
    out = args.out or default_out(args.checkpoint)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        print(f"error: report folder {out} exists and is not empty; pass --overwrite or choose "
              "another --out (nothing was changed)", file=sys.stderr)
        return 2
    try:
        result, paths = run_evaluation(
            args.checkpoint, args.baseline, n_problems=args.problems, n_steps=args.steps,
            seed=args.seed, threshold=args.threshold, tune=not args.no_tune, out_dir=out,
            device=args.device)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(paths["markdown"].read_text())
    print(f"table: {paths['markdown']} ; {paths['json']}")
    print(f"curves: {paths['curves']} ; tensorboard --logdir {paths['tb']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
