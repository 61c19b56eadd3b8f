"""What a wider m1 and m2 cost in meta-training: task-steps per second (wall and CPU time) of
a study arm's config with its LSTMs at several widths (model.hidden_size; two layers), each
timed by bench_timing.bench_train after warm-up windows, one thread. The CPU-time rate is the
one to compare on a loaded machine: preemption does not inflate it.

    python scripts/lstm_width_cost.py [--arm ARM] [--sizes 20 32 40] [--windows 5]
"""

from __future__ import annotations

import argparse

import torch

from metateleport.bench_timing import bench_train
from metateleport.studies.general import ARMS

#: the shipped teleporting generalist's arm (general_update_tele.pt's, meta-trained iterates)
SHIPPED = "update_tele_diag-noguard-long-bound3-mixed-tilt3-scale1-budget3200"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", default=SHIPPED, choices=sorted(ARMS), metavar="ARM",
                        help="a generalist study arm (general_arms.ARMS); default the shipped")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 32, 40])
    parser.add_argument("--windows", type=int, default=5, help="meta-steps per timed block")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    if min(args.sizes) < 1 or args.windows < 1 or args.batch < 1:
        parser.error("--sizes, --windows and --batch must be at least 1")
    torch.set_num_threads(1)
    config, overrides, *_ = ARMS[args.arm]
    base = [o for o in overrides if not o.startswith("model.hidden_size=")]
    print(f"{args.arm} (configs/{config}.yaml), batch {args.batch}, 1 thread")
    print("| LSTMs | task-steps/s | per CPU second | CPU time / 20 x 2's |")
    print("|---|---|---|---|")
    rates = {}
    for size in args.sizes:
        result = bench_train(config, args.batch, args.windows,
                             extra=[*base, "train.threads=1", f"model.hidden_size={size}"])
        rates[size] = result["cpu_tps"]
        ratio = f"{rates[20] / rates[size]:.2f}x" if 20 in rates else "-"
        print(f"| {size} x 2 | {result['tps']:.0f} | {result['cpu_tps']:.0f} | {ratio} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
