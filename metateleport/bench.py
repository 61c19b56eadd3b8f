"""Benchmark: ``python -m metateleport.bench [--quick] [--json PATH] [--threads N]
[--configs NAME ...] [--optim-only] [--lockstep] [--floor] [--memory] [--chunks]
[--lstm-chunk N] [--fused] [--frontier] [--reference DIR]``.

For each config (a variant's shipped configs/<variant>.yaml, or any configs/NAME.yaml, e.g. the
family-specific ones) and batch size B: meta-training throughput in inner task-steps per second
(B x inner steps / wall time, forward and backward included), milliseconds per meta-step (one
window of K inner steps plus the Adam step), and peak resident memory of a process that does
only that variant's training. Then the wall time to evaluate 6 optimizers (GD, Adam,
GD+teleport and the three learned variants) on 64 problems for 100 steps. First of all, the
cost of one optimizer step of optim.LearnedOpt against torch.optim.Adam on a 100k-parameter
model (``bench_optim``; ``--optim-only`` runs just that).

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
of the variant's default config (its own batch size).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

#: the learned variants timed (a subset of learned.VARIANTS): the paper's three
TIMED_VARIANTS = ("update_tele", "update", "lr_tele")
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
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _config(name: str, batch: int | None = None, extra: list[str] | None = None):
    """configs/<name>.yaml (for a variant without one: the defaults with that variant), at
    batch size ``batch``, with the overrides ``extra``."""
    from .config import load_config

    path = CONFIG_DIR / f"{name}.yaml"
    overrides = ["train.val_problems=1", *(extra or [])]
    if not path.is_file():
        overrides.append(f"model.variant={name}")
    if batch is not None:
        overrides.append(f"train.batch_size={batch}")
    return load_config(path if path.is_file() else None, overrides)


def bench_train(
    variant: str, batch: int, windows: int, warmup: int = 2, repeats: int = 3,
    extra: list[str] | None = None,
) -> dict:
    """Time ``repeats`` blocks of ``windows`` meta-steps of a trainer (config overrides
    ``extra``) after ``warmup`` untimed ones; report the median block, and the slowest one
    too: on a shared VM single blocks stall (docs/benchmarks.md). ``cpu_tps``: the same per
    second of the process's CPU time (all threads), which preemption does not inflate."""
    from .trainer import MetaTrainer

    trainer = MetaTrainer(_config(variant, batch, extra))
    for _ in range(warmup):
        trainer.window()
    blocks, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(windows):
            trainer.window()
        blocks.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    seconds = sorted(blocks)[len(blocks) // 2]
    K = trainer.cfg.train.unroll
    return {"tps": batch * K * windows / seconds, "ms_per_meta_step": 1e3 * seconds / windows,
            "slowest_block_tps": batch * K * windows / max(blocks),
            "cpu_tps": batch * K * windows / sorted(cpu)[len(cpu) // 2]}


def bench_lockstep(
    name: str, windows: int = 20, warmup: int = 2, repeats: int = 3,
    overrides: list[str] | None = None,
) -> dict:
    """Milliseconds per meta-step on configs/<name>.yaml (with ``overrides``), its groups in
    lockstep (MetaTrainer.window) against group by group (estimator.unroll_window per group, as
    the trainer ran a mixed batch before). Paired: before every window the trainer is copied,
    the copy takes the group-by-group meta-step and the trainer its own, in alternating order,
    so that both time the same state (meta-training moves the two apart by float rounding, and
    the cost of a window depends on where it is); the run goes on from the trainer. Median over
    ``repeats`` blocks of ``windows`` windows after ``warmup``, wall and CPU time."""
    import copy
    import functools

    from .config import load_config
    from .trainer import MetaTrainer

    trainer = MetaTrainer(load_config(CONFIG_DIR / f"{name}.yaml", overrides or []))
    for _ in range(warmup):
        trainer.window()
    blocks: dict[str, list[tuple[float, float]]] = {"per_group": [], "lockstep": []}
    for _ in range(repeats):
        spent = {key: [0.0, 0.0] for key in blocks}
        for i in range(windows):
            if trainer.carry is None:
                trainer._new_batch()  # drawing problems is no part of either path
            other = copy.deepcopy(trainer)
            runs = [("per_group", functools.partial(_per_group_window, other)),
                    ("lockstep", trainer.window)]
            for key, step in runs if i % 2 == 0 else runs[::-1]:
                wall, cpu = time.perf_counter(), time.process_time()
                step()
                spent[key][0] += time.perf_counter() - wall
                spent[key][1] += time.process_time() - cpu
        for key, (wall, cpu) in spent.items():
            blocks[key].append((1e3 * wall / windows, 1e3 * cpu / windows))
    out = {}
    for key, values in blocks.items():
        for i, kind in enumerate(("wall", "cpu")):
            out[f"{key}_{kind}_ms"] = sorted(v[i] for v in values)[len(values) // 2]
    return out


def _per_group_window(trainer) -> None:
    """One meta-step of ``trainer`` whose groups are unrolled one after the other (one LSTM call
    per group and inner step); the carry is left as it was (the copy is thrown away)."""
    from .estimator import apply_meta_step, unroll_window, window_meta_loss

    tr = trainer.cfg.train
    outs = [unroll_window(trainer.opt, part["weights"], part["state"], part["problems"],
                          part["x_pinv"], part["t"], tr.unroll,
                          trainer.family.loss_and_grad(part["problems"]), on=tr.meta_loss_on)
            for part in trainer._parts()]
    meta_loss = window_meta_loss(torch.cat([o[0] for o in outs], dim=1), tr.meta_loss)
    if "guard_penalty" in outs[0][3].stats:
        meta_loss = meta_loss + tr.refused_weight * torch.cat(
            [o[3].stats["guard_penalty"] for o in outs]).mean()
    apply_meta_step(trainer.meta_opt, trainer.opt.parameters(), meta_loss, tr.grad_clip)


def time_to_quality(
    variant: str = "update_tele", target: float = 12.4, check_every: int = 5,
    max_meta_steps: int | None = None,
) -> dict:
    """Meta-train ``variant`` on its shipped config until the median validation loss at the
    last inner step drops below ``target`` (checked every ``check_every`` meta-steps on the
    config's validation problems). Returns training seconds (validation excluded), meta-steps
    and trajectories used, and the validation loss reached (None if never)."""
    from .config import load_config
    from .trainer import MetaTrainer

    path = CONFIG_DIR / f"{variant}.yaml"
    trainer = MetaTrainer(load_config(path if path.is_file() else None,
                                      [f"model.variant={variant}"]))
    limit = max_meta_steps or trainer.total_meta_steps
    seconds = 0.0
    while trainer.meta_step < limit:
        start = time.perf_counter()
        for _ in range(check_every):
            trainer.window()
        seconds += time.perf_counter() - start
        val = trainer.validate().losses[-1].median().item()
        if val < target:
            return {"seconds": seconds, "meta_steps": trainer.meta_step,
                    "trajectories": trainer.trajectories, "val_median": val}
    return {"seconds": seconds, "meta_steps": trainer.meta_step,
            "trajectories": trainer.trajectories, "val_median": None}


def bench_eval(problems: int = 64, steps: int = 100) -> float:
    """Seconds to run 6 optimizers on ``problems`` problems for ``steps`` steps (untrained
    learned optimizers cost the same per step as trained ones)."""
    from .evaluation import baselines
    from .inner import run
    from .learned import LearnedOptimizer
    from .tasks import MLPTaskFamily

    torch.manual_seed(0)
    hand, _ = baselines(None, steps, ("gd", "adam", "gd_tele"), tune=False)
    opts = [*hand.values(), *(LearnedOptimizer(v).eval() for v in TIMED_VARIANTS)]
    p = MLPTaskFamily().sample(problems, 0, "test")
    run(opts[-1], p[:2], 2)  # warm-up
    start = time.perf_counter()
    for opt in opts:
        run(opt, p, steps)
    return time.perf_counter() - start


def bench_optim(steps: int = 50, teleport_batch: int = 64) -> dict:
    """Milliseconds per optimizer step on a 101,770-parameter MLP (784-128-10 with biases, a
    batch of 64 MNIST-sized inputs), gradients fixed: torch.optim.Adam against
    optim.LearnedOpt with the shipped LSTM(update) and LSTM(update,tele) checkpoints, the
    latter also with ``opt.teleport`` on ``teleport_batch`` samples after every step (the full
    method). Each timed over ``steps`` steps after 3 untimed ones."""
    from torch import nn

    from .torch_optim import LearnedTorchOptimizer as LearnedOpt

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 128), nn.LeakyReLU(0.1), nn.Linear(128, 10))
    X, y = torch.rand(teleport_batch, 784), torch.randint(0, 10, (teleport_batch,))
    ckpt = CONFIG_DIR.parent / "checkpoints"

    def time_steps(opt, teleport: bool) -> float:
        model.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        for _ in range(3):
            opt.step()
        start = time.perf_counter()
        for _ in range(steps):
            opt.step()
            if teleport:
                opt.teleport(model, X, y)
        return 1e3 * (time.perf_counter() - start) / steps

    out = {"parameters": sum(p.numel() for p in model.parameters()),
           "adam_ms": time_steps(torch.optim.Adam(model.parameters(), 1e-3), False),
           "update_ms": time_steps(LearnedOpt(model.parameters(), ckpt / "update.pt"), False)}
    tele = LearnedOpt(model.parameters(), ckpt / "paper_update_tele.pt")
    out["update_tele_step_ms"] = time_steps(tele, False)
    out["update_tele_step_and_teleport_ms"] = time_steps(tele, True)
    return out


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
    optim = bench_optim(20 if args.quick else 50)
    print(f"optimizer step on a {optim['parameters']:,}-parameter MLP: Adam "
          f"{optim['adam_ms']:.2f} ms; LearnedOpt LSTM(update) {optim['update_ms']:.2f} ms "
          f"({optim['update_ms'] / optim['adam_ms']:.1f}x Adam); LSTM(update,tele) step "
          f"{optim['update_tele_step_ms']:.2f} ms, step + teleport on 64 samples "
          f"{optim['update_tele_step_and_teleport_ms']:.1f} ms "
          f"({optim['update_tele_step_and_teleport_ms'] / optim['adam_ms']:.0f}x Adam)")
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
