"""Benchmark: ``python -m metateleport.bench [--quick] [--json PATH] [--threads N]
[--configs NAME ...] [--optim-only] [--optim-checkpoints PATH ...] [--lockstep] [--floor]
[--memory] [--chunks] [--lstm-chunk N] [--fused] [--frontier] [--reference DIR]``.

For each config (a variant's shipped configs/<variant>.yaml, or any configs/NAME.yaml, e.g. the
family-specific ones) and batch size B: meta-training throughput in inner task-steps per second
(B x inner steps / wall time, forward and backward included), milliseconds per meta-step (one
window of K inner steps plus the Adam step), and peak resident memory of a process that does
only that variant's training. Then the wall time to evaluate 6 optimizers (GD, Adam,
GD+teleport and the three learned variants) on 64 problems for 100 steps. First of all, the
cost of one optimizer step of optim.LearnedOpt against torch.optim.Adam on a 100k-parameter
model (``bench_optim``; ``--optim-only`` runs just that), with the shipped generalists' (or
``--optim-checkpoints``') steps in wall and CPU time.

``--lockstep`` times instead the mixed batches of the task distribution (``MIXED_CONFIGS``, groups
of 4 problems per architecture): a meta-step with the groups in lockstep, each LSTM called once
per inner step (docs/design.md section 9), against the same meta-step group by group
(``bench_lockstep``). ``--floor`` measures instead the machine's matmul rate and the LSTM's and
the LearnedOpt step's distance from it (bench_floor.py). ``--memory`` measures the peak RSS
and speed of the lookahead config (or ``--configs``) at B = 8 and 32 with
train.recompute_lstm off and on; ``--chunks`` the speed at B = 8 and 32 with the LSTM's
coordinates in one kernel call against chunks of CoordinateLSTM.CHUNK; ``--fused`` the same
with nn.LSTM's kernel against the hand-written fused LSTM (train.fused_lstm), ``--frontier``
across the frontier study's LSTM sizes; ``--reference DIR``
the public reference's LSTM(update,tele) meta-training against ours (bench_reference.py).

Each variant runs in a subprocess of its own so that its peak RSS is its own. The configs are
the shipped real ones (configs/<variant>.yaml), with only the batch size changed. Peak RSS is
reported per (variant, B), each measured in a fresh process; ``peak_rss_mb`` in the JSON is that
of the variant's default config (its own batch size). The measurements themselves
(bench_train, bench_lockstep, time_to_quality, bench_eval, bench_optim) are in
bench_timing.py, and importable from here too; this module runs and prints them.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch

from .bench_timing import (
    CONFIG_DIR,
    TIMED_VARIANTS,
    _config,
    bench_eval,
    bench_lockstep,
    bench_optim,
    bench_train,
    time_to_quality,
)

#: what is benchmarked by default: the three variants of the paper and the shipped
#: configs of the imbalanced family
CONFIGS = (*TIMED_VARIANTS, "imbalanced_update_tele", "imbalanced_update_balance")
#: the configs of mixed batches that ``--lockstep`` times
MIXED_CONFIGS = ("general_update_tele", "general_update")
#: what ``--memory`` measures unless --configs says otherwise: the lookahead config
MEMORY_CONFIGS = ("imbalanced_update_tele",)
#: what ``--chunks`` measures unless --configs says otherwise
CHUNK_CONFIGS = ("update", "update_tele", "imbalanced_update_tele")
BATCHES = (1, 8, 32)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _worker(variant: str, batch: int, windows: int, extra: list[str] | None = None) -> None:
    out = bench_train(variant, batch, windows, extra=extra)
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out))


def _run_worker(variant: str, batch: int, windows: int, threads: int,
                extra: list[str] | None = None, chunk: int | None = None) -> dict:
    """bench_train in a fresh process, so that its peak RSS is its own (``chunk``: the
    CoordinateLSTM's coordinates per kernel call there, 0 for one call; None: the default)."""
    cmd = [sys.executable, "-m", "metateleport.bench", "--worker", variant, str(batch),
           str(windows)]
    if threads:
        cmd += ["--threads", str(threads)]
    for item in extra or []:
        cmd += ["--worker-set", item]
    if chunk is not None:
        cmd += ["--lstm-chunk", str(chunk)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                     text=True).stdout.strip().splitlines()[-1])


def _main_compare(args, settings: dict[str, tuple[int | None, list[str]]], configs,
                  key: str) -> int:
    """Task-steps/s of each config at B = 8 and 32 under each of ``settings`` (label ->
    (the LSTM's coordinates per kernel call, None for the default; config overrides)), each in
    a fresh process, alternating in ``rounds`` rounds (the median is reported: the VM's speed
    drifts); the ratio printed is the last setting's CPU figure over the first's; the JSON
    goes under ``key``."""
    windows, rounds = (2, 1) if args.quick else (3, 3)
    print(f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads, "
          f"median of {rounds} alternating rounds, task-steps/s (CPU time in brackets)")
    print(f"{'config':<26} {'B':>3} " + " ".join(f"{k:>22}" for k in settings)
          + f" {'ratio':>6}")
    out: dict[str, dict[str, dict]] = {}
    for name in configs:
        out[name] = {}
        for batch in (8, 32):
            tps: dict[str, list[float]] = {k: [] for k in settings}
            cpu: dict[str, list[float]] = {k: [] for k in settings}
            for _ in range(rounds):
                for label, (chunk, extra) in settings.items():
                    res = _run_worker(name, batch, windows, args.threads, extra, chunk)
                    tps[label].append(res["tps"])
                    cpu[label].append(res["cpu_tps"])
            med = {k: sorted(v)[len(v) // 2] for k, v in tps.items()}
            med_cpu = {k: sorted(v)[len(v) // 2] for k, v in cpu.items()}
            out[name][str(batch)] = {"tps": tps, "median": med, "cpu_tps": cpu,
                                     "median_cpu": med_cpu}
            a, b = list(med_cpu.values())[0], list(med_cpu.values())[-1]
            print(f"{name:<26} {batch:>3} " + " ".join(
                f"{med[k]:>12.0f} ({med_cpu[k]:>7.0f})" for k in settings)
                + f" {b / a:>6.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({key: out}, indent=2))
    return 0


def _main_chunks(args) -> int:
    """The LSTM's coordinates in one kernel call against chunks of CoordinateLSTM.CHUNK."""
    from .networks import CoordinateLSTM

    settings = {"one call": (0, []),
                f"chunks of {CoordinateLSTM.CHUNK}": (CoordinateLSTM.CHUNK, [])}
    return _main_compare(args, settings, args.configs or list(CHUNK_CONFIGS), "chunks")


def _main_frontier(args) -> int:
    """The frontier study's LSTM sizes (studies.arms.FRONTIER_SIZES) side by side."""
    from .studies.arms import FRONTIER_SIZES

    settings = {f"{h} x {n}": (args.lstm_chunk, [f"model.hidden_size={h}",
                                                 f"model.num_layers={n}"])
                for h, n in sorted(FRONTIER_SIZES, key=lambda size: -size[0] * size[1])}
    return _main_compare(args, settings, args.configs or ["update_tele"], "frontier")


def _main_fused(args) -> int:
    """nn.LSTM's kernel against the hand-written fused LSTM (train.fused_lstm)."""
    settings = {"nn.LSTM": (args.lstm_chunk, ["train.fused_lstm=false"]),
                "fused": (args.lstm_chunk, ["train.fused_lstm=true"])}
    return _main_compare(args, settings, args.configs or list(CONFIGS), "fused")


def _main_memory(args) -> int:
    """Peak RSS and task-steps/s of each config at B = 8 and 32, train.recompute_lstm off and
    on, each in a fresh process."""
    configs = args.configs or list(MEMORY_CONFIGS)
    windows = 2 if args.quick else 5
    print(f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads")
    print(f"{'config':<24} {'B':>3} {'recompute':>9} {'task-steps/s':>13} {'peak MB':>8}")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in configs:
        out[name] = {}
        for batch in (8, 32):
            for on in (False, True):
                res = _run_worker(name, batch, windows, args.threads,
                                  [f"train.recompute_lstm={str(on).lower()}"], args.lstm_chunk)
                out[name][f"{batch}/{'on' if on else 'off'}"] = res
                print(f"{name:<24} {batch:>3} {'on' if on else 'off':>9} {res['tps']:>13.0f} "
                      f"{res['peak_rss_mb']:>8.0f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"memory": out}, indent=2))
    return 0


def _main_reference(parser, args) -> int:
    from .bench_reference import bench_reference, check_reference, print_reference

    try:
        check_reference(args.reference)
    except ValueError as err:
        parser.error(str(err))
    res = (bench_reference(args.reference, args.threads, batches=(8,), rounds=1,
                           trajectories=2, windows=2, overrides=args.ours_set) if args.quick
           else bench_reference(args.reference, args.threads, overrides=args.ours_set))
    print_reference(res)
    if args.json:
        args.json.write_text(json.dumps({"reference": res}, indent=2))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="metateleport benchmark")
    parser.add_argument("--quick", action="store_true", help="reduced run, under a minute")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--no-quality", action="store_true",
                        help="skip the time-to-quality run (LSTM(update,tele) to 12.4)")
    parser.add_argument("--configs", nargs="+", default=None, metavar="NAME",
                        help="configs/NAME.yaml to benchmark (default: "
                             f"{', '.join(CONFIGS)}; --memory and --chunks have their own)")
    parser.add_argument("--optim-only", action="store_true",
                        help="only the optimizer-step comparison with torch.optim.Adam")
    parser.add_argument("--optim-checkpoints", nargs="+", type=Path, default=None,
                        metavar="PATH", help="checkpoints the optimizer step also times "
                        "(default: the shipped generalists)")
    parser.add_argument("--lockstep", action="store_true",
                        help="only mixed batches: groups in lockstep against group by group")
    parser.add_argument("--floor", action="store_true",
                        help="only the matmul floor: GFLOP/s, the LSTM's share of it, the "
                             "LearnedOpt step against Adam and the floor (bench_floor.py)")
    parser.add_argument("--memory", action="store_true",
                        help="only peak memory and speed at B = 8 and 32 with "
                             "train.recompute_lstm off and on (default config: the lookahead "
                             "one, imbalanced_update_tele)")
    parser.add_argument("--worker", nargs=3, metavar=("CONFIG", "BATCH", "WINDOWS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--chunks", action="store_true",
                        help="only meta-training speed at B = 8 and 32 with the LSTM's "
                             "coordinates in one kernel call against chunks")
    parser.add_argument("--fused", action="store_true",
                        help="only meta-training speed at B = 8 and 32 with nn.LSTM's kernel "
                             "against the fused LSTM (train.fused_lstm)")
    parser.add_argument("--frontier", action="store_true",
                        help="only meta-training speed at B = 8 and 32 of the frontier study's "
                             "LSTM sizes (default config: update_tele)")
    parser.add_argument("--worker-set", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--lstm-chunk", type=int, default=None, metavar="N",
                        help="coordinates per LSTM kernel call everywhere in this run (0: one "
                             "call; default: CoordinateLSTM.CHUNK)")
    parser.add_argument("--reference", type=Path, metavar="DIR",
                        help="only meta-training speed against the public reference's "
                             "LSTM(update,tele): DIR is a copy of its learn-to-teleport folder")
    parser.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                        help="with --reference: an override of our config (repeatable), e.g. "
                             "train.fused_lstm=true or model.hidden_size=8")
    parser.add_argument("--reference-worker", nargs=2, metavar=("DIR", "TRAJECTORIES"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.lstm_chunk is not None:
        from .networks import CoordinateLSTM

        CoordinateLSTM.CHUNK = args.lstm_chunk or None
    if args.worker:
        variant, batch, windows = args.worker
        _worker(variant, int(batch), int(windows), args.worker_set)
        return 0
    if args.reference_worker:
        from .bench_reference import reference_worker

        path, trajectories = args.reference_worker
        print(json.dumps(reference_worker(Path(path), int(trajectories))))
        return 0
    if args.reference:
        return _main_reference(parser, args)
    if args.memory:
        return _main_memory(args)
    if args.chunks:
        return _main_chunks(args)
    if args.fused:
        return _main_fused(args)
    if args.frontier:
        return _main_frontier(args)

    if args.lockstep:
        return _main_lockstep(args)
    if args.floor:
        from .bench_floor import bench_floor, print_floor

        floor = bench_floor(rounds=3 if args.quick else 7)
        print(f"torch {torch.__version__}, {platform.machine()} {platform.system()}")
        print_floor(floor)
        if args.json:
            args.json.write_text(json.dumps({"floor": floor}, indent=2))
        return 0
    args.configs = args.configs or list(CONFIGS)
    for path in args.optim_checkpoints or []:
        if not path.is_file():
            parser.error(f"--optim-checkpoints: no checkpoint file {path}")
    optim = bench_optim(20 if args.quick else 50, checkpoints=args.optim_checkpoints)
    print(f"optimizer step on a {optim['parameters']:,}-parameter MLP: Adam "
          f"{optim['adam_ms']:.2f} ms; LearnedOpt LSTM(update) {optim['update_ms']:.2f} ms "
          f"({optim['update_ms'] / optim['adam_ms']:.1f}x Adam); LSTM(update,tele) step "
          f"{optim['update_tele_step_ms']:.2f} ms, step + teleport on 64 samples "
          f"{optim['update_tele_step_and_teleport_ms']:.1f} ms "
          f"({optim['update_tele_step_and_teleport_ms'] / optim['adam_ms']:.0f}x Adam)")
    for path, timed in optim["checkpoints"].items():
        print(f"  {path}: " + ", ".join(
            f"{what.replace('_', ' ')} {timed[f'{what}_wall_ms']:.1f} ms "
            f"(CPU {timed[f'{what}_cpu_ms']:.1f})" for what in ("step", "step_and_teleport")
            if f"{what}_wall_ms" in timed))
    if args.optim_only:
        if args.json:
            args.json.write_text(json.dumps({"optim": optim}, indent=2))
        return 0
    batches = (1, 8) if args.quick else BATCHES
    windows = 2 if args.quick else 5
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.machine()} {platform.processor() or ''} {platform.system()}, "
          f"python {platform.python_version()}")
    train: dict[str, dict[str, float]] = {}
    ms: dict[str, dict[str, float]] = {}
    rss: dict[str, dict[str, float]] = {}
    for name in args.configs:
        if not (CONFIG_DIR / f"{name}.yaml").is_file() and name not in TIMED_VARIANTS:
            parser.error(f"--configs: no configs/{name}.yaml")
    width = max(12, *(len(n) for n in args.configs))
    print(f"{'config':<{width}} {'B':>3} {'task-steps/s':>13} {'(slowest)':>10} "
          f"{'ms/meta-step':>13} {'peak MB':>8}")
    for variant in args.configs:
        train[variant], ms[variant], rss[variant] = {}, {}, {}
        for batch in sorted({*batches, _config(variant).train.batch_size}):
            res = _run_worker(variant, batch, windows, args.threads, chunk=args.lstm_chunk)
            b = str(batch)
            train[variant][b], ms[variant][b] = res["tps"], res["ms_per_meta_step"]
            rss[variant][b] = res["peak_rss_mb"]
            print(f"{variant:<{width}} {batch:>3} {res['tps']:>13.0f} "
                  f"{res['slowest_block_tps']:>10.0f} {res['ms_per_meta_step']:>13.1f} "
                  f"{res['peak_rss_mb']:>8.0f}")
    n_problems, n_steps = (16, 50) if args.quick else (64, 100)
    eval_seconds = bench_eval(n_problems, n_steps)
    print(f"evaluation: 6 optimizers x {n_problems} problems x {n_steps} steps: "
          f"{eval_seconds:.2f} s")
    default_b = {v: str(_config(v).train.batch_size) for v in args.configs}
    quality = None
    if not (args.quick or args.no_quality):
        quality = time_to_quality()
        reached = ("not reached" if quality["val_median"] is None
                   else f"{quality['val_median']:.2f} after {quality['meta_steps']} meta-steps "
                   f"({quality['trajectories']} trajectories)")
        print(f"time to quality (LSTM(update,tele), median validation loss at step 100 < 12.4):"
              f" {quality['seconds']:.1f} s of training; {reached}")
    result = {"optim": optim, "train": train, "ms_per_meta_step": ms,
              "eval_seconds": eval_seconds,
              "time_to_quality": quality,
              "peak_rss_mb": {v: rss[v][default_b[v]] for v in args.configs},
              "peak_rss_mb_by_batch": rss, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "machine": platform.machine(),
              "quick": args.quick}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


def _main_lockstep(args) -> int:
    windows, repeats = (4, 1) if args.quick else (20, 3)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per meta-step, "
          f"median of {repeats} x {windows} paired windows")
    result = {}
    for name in MIXED_CONFIGS:
        res = result[name] = bench_lockstep(name, windows, repeats=repeats)
        print(f"{name}: group by group {res['per_group_wall_ms']:.0f} (CPU "
              f"{res['per_group_cpu_ms']:.0f}), lockstep {res['lockstep_wall_ms']:.0f} (CPU "
              f"{res['lockstep_cpu_ms']:.0f}): "
              f"{res['per_group_cpu_ms'] / res['lockstep_cpu_ms']:.2f}x in CPU time")
    if args.json:
        args.json.write_text(json.dumps({"lockstep": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
