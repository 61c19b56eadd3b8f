"""Data-parallel meta-training throughput: one process against torchrun with two.

    python scripts/bench_distributed.py [--meta-steps 24] [--warmup 2]

Runs the shipped configs/update_tele.yaml task and model (validation and checkpoints aside) as
  1 process,  B=16, 1 thread
  1 process,  B=16, 2 threads
  2 processes (torchrun --standalone, gloo), B=8 each, 1 thread each
i.e. the same global batch of 16 trajectories, and prints task-steps per second: trajectory
inner steps per second over all ranks, meta-steps x unroll x global batch / wall time, timed
after ``--warmup`` untimed meta-steps, as the median (and the slowest) of 3 equal blocks, each
started and ended by a barrier across ranks. Each configuration runs in a fresh process (group).
The load average is printed with the numbers: on a shared machine they are worth only that.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CASES = (  # (processes, per-rank batch, threads per process)
    (1, 16, 1),
    (1, 16, 2),
    (2, 8, 1),
)
BLOCKS = 3


def worker(batch: int, threads: int, meta_steps: int, warmup: int) -> None:
    """Time meta-steps of this process (under torchrun: of every rank); rank 0 prints JSON."""
    from metateleport.config import load_config
    from metateleport.distributed import init_distributed
    from metateleport.trainer import MetaTrainer

    torch.set_num_threads(threads)
    dist = init_distributed("cpu")
    cfg = load_config(REPO / "configs" / "update_tele.yaml",
                      [f"train.batch_size={batch}", "train.val_problems=1"])
    trainer = MetaTrainer(cfg, "cpu", dist)
    sync = dist.barrier if dist is not None else (lambda: None)
    for _ in range(warmup):
        trainer.window()
    per_block = max(1, meta_steps // BLOCKS)
    blocks = []
    for _ in range(BLOCKS):
        sync()
        start = time.perf_counter()
        for _ in range(per_block):
            trainer.window()
        sync()
        blocks.append(time.perf_counter() - start)
    if dist is not None:
        dist.close()
    if trainer.rank == 0:
        steps = per_block * cfg.train.unroll * batch * trainer.world_size
        median = sorted(blocks)[BLOCKS // 2]
        print(json.dumps({"tps": steps / median, "slowest_block_tps": steps / max(blocks),
                          "ms_per_meta_step": 1e3 * median / per_block,
                          "meta_steps_timed": per_block * BLOCKS}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meta-steps", type=int, default=24,
                        help=f"timed meta-steps per configuration, in {BLOCKS} blocks")
    parser.add_argument("--warmup", type=int, default=2, help="untimed meta-steps first")
    parser.add_argument("--worker", nargs=2, type=int, metavar=("BATCH", "THREADS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker, args.meta_steps, args.warmup)
        return 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'processes':>9} {'B/rank':>6} {'threads':>7} {'task-steps/s':>13} {'(slowest)':>10} "
          f"{'ms/meta-step':>13}")
    for procs, batch, threads in CASES:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--meta-steps",
               str(args.meta_steps), "--warmup", str(args.warmup),
               "--worker", str(batch), str(threads)]
        if procs > 1:
            cmd[1:1] = ["-m", "torch.distributed.run", "--nproc_per_node", str(procs),
                        "--standalone"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             env={**env, "OMP_NUM_THREADS": str(threads)}).stdout
        res = json.loads(out.strip().splitlines()[-1])
        print(f"{procs:>9} {batch:>6} {threads:>7} {res['tps']:>13.0f} "
              f"{res['slowest_block_tps']:>10.0f} {res['ms_per_meta_step']:>13.1f}", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
