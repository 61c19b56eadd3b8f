"""Meta-train a learned optimizer.

    python train_meta.py --config configs/NAME.yaml [--set section.key=value ...]
                         [--out runs/NAME] [--seed N] [--resume] [--device cpu|cuda]

Data-parallel over N processes (train.batch_size is then the batch of each process):

    torchrun --nproc_per_node N train_meta.py --config configs/NAME.yaml [...] [--dist-timeout S]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from pathlib import Path

import torch

from metateleport.checkpoint import CheckpointError
from metateleport.config import ConfigError, load_config
from metateleport.distributed import DEFAULT_TIMEOUT_S, RankFailure, init_distributed
from metateleport.training import DivergedError, Interrupted, RunError, train_run

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Meta-train a learned (teleporting) optimizer.")
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
    parser.add_argument("--out", help="run folder (default: runs/<config name>)")
    parser.add_argument("--seed", type=int, help="same as --set train.seed=N")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its newest full checkpoint")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--max-meta-steps", type=int, default=None,
                        help="stop after this many meta-steps in total (resume later)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        metavar="SECONDS",
                        help="under torchrun: stop with an error when another process has not "
                             "answered for this long (default %(default)g)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.max_meta_steps is not None and args.max_meta_steps < 1:
        print(f"error: --max-meta-steps must be >= 1, got {args.max_meta_steps}", file=sys.stderr)
        return 2
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.out is not None and not args.out.strip():
        print("error: --out is empty; name a run folder (or leave --out out for "
              "runs/<config name>)", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but CUDA is not available on this machine", file=sys.stderr)
        return 2
    dist = None
    try:
        cfg = load_config(args.config, overrides)
        out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
        dist = init_distributed(args.device, args.dist_timeout)
        device = args.device if dist is None else str(dist.device)
        try:
            trainer = train_run(cfg, out, resume=args.resume, device=device,
                                progress=not args.no_progress,
                                max_meta_steps=args.max_meta_steps, dist=dist)
        except (ConfigError, CheckpointError, RunError, Interrupted):
            _leave(dist)  # every rank raised it at the same point
            raise
        _leave(dist)
    except DivergedError as err:
        print(f"error: {_where(dist)}{err}", file=sys.stderr)
        return 1
    except (ConfigError, CheckpointError, RunError) as err:
        print(f"error: {_where(dist)}{err}", file=sys.stderr)
        return 2
    except Interrupted as err:
        if dist is None or dist.is_main:
            print(f"{err.signame}: stopped at meta-step {err.meta_step} after a full checkpoint; "
                  f"continue with: {_resume_command(argv, out)}", file=sys.stderr)
        return EXIT_CODES.get(err.signame, 1)
    except KeyboardInterrupt:
        print("interrupted (second Ctrl-C): stopped at once; --resume continues from the last "
              "full checkpoint", file=sys.stderr)
        return 130
    except RankFailure as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception:
        if dist is None:
            raise
        _die_alone()
    if dist is not None and not dist.is_main:
        return 0
    if trainer.done:
        print(f"done: {trainer.meta_step} meta-steps, {trainer.skipped} skipped windows; "
              f"parameters: {out / 'params.pt'}; tensorboard --logdir {out / 'tb'}")
    else:
        print(f"stopped at meta-step {trainer.meta_step}; continue with --resume --out {out}")
    return 0


def _resume_command(argv, out: Path) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in args:
        args.append("--resume")
    if "--out" not in args and not any(a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    return " ".join(shlex.quote(a) for a in ["python", "train_meta.py", *args])


def _leave(dist) -> None:
    """End a distributed run together (not after a rank failed: the others are gone or stuck,
    or still inside a collective that a final one of ours would be mistaken for)."""
    if dist is not None:
        dist.close()


def _die_alone() -> None:
    """An error only this rank of a distributed run raised (the others find out at their next
    collective, RankFailure): print it and exit 1 at once. A normal interpreter exit tears the
    process group's threads down while the other ranks close their connections, and a gloo
    thread torn down so aborts the process (SIGABRT, exit -6) instead (seen in CI under load),
    so that torchrun's summary named no rank with exit code 1."""
    traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def _where(dist) -> str:
    """Which rank speaks, in a distributed run (every rank reports the errors they agree on)."""
    return "" if dist is None else f"rank {dist.rank} of {dist.world_size}: "


if __name__ == "__main__":
    sys.exit(main())
