"""The benchmark's measurements, each in the process that calls it (``python -m
metateleport.bench``, bench.py, runs most of them in a fresh process of their own and prints
them): the meta-training throughput of a config (``bench_train``), a mixed batch's meta-step
with its groups in lockstep against group by group (``bench_lockstep``), the training time to
a validation loss (``time_to_quality``), the evaluation of 6 optimizers (``bench_eval``) and one
optimizer step of LearnedOpt against torch.optim.Adam (``bench_optim``). bench.py keeps their
old import path.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

__all__ = ["CONFIG_DIR", "TIMED_VARIANTS", "bench_eval", "bench_lockstep", "bench_optim",
           "bench_train", "time_to_quality"]

#: the shipped generalists, which bench_optim times unless told other checkpoints
GENERALISTS = ("general_update.pt", "general_update_tele.pt")
#: the learned variants timed (a subset of learned.VARIANTS): the paper's three
TIMED_VARIANTS = ("update_tele", "update", "lr_tele")
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


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
    from .estimator import apply_meta_step, scale_growth, unroll_window, window_meta_loss

    tr = trainer.cfg.train
    outs = [unroll_window(trainer.opt, part["weights"], part["state"], part["problems"],
                          part["x_pinv"], part["t"], tr.unroll,
                          trainer.family.loss_and_grad(part["problems"]), on=tr.meta_loss_on)
            for part in trainer._parts()]
    meta_loss = window_meta_loss(torch.cat([o[0] for o in outs], dim=1), tr.meta_loss)
    if "guard_penalty" in outs[0][3].stats:
        meta_loss = meta_loss + tr.refused_weight * torch.cat(
            [o[3].stats["guard_penalty"] for o in outs]).mean()
    if tr.scale_weight > 0:
        parts = trainer._parts()
        meta_loss = meta_loss + tr.scale_weight * scale_growth(
            [part["weights"] for part in parts], [o[1] for o in outs],
            [part["problems"].X.shape[1] for part in parts]).mean()
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


def bench_optim(steps: int = 50, teleport_batch: int = 64,
                checkpoints: list[Path] | None = None) -> dict:
    """Milliseconds per optimizer step on a 101,770-parameter MLP (784-128-10 with biases, a
    batch of 64 MNIST-sized inputs), gradients fixed: torch.optim.Adam against
    optim.LearnedOpt with the paper's shipped LSTM(update) and LSTM(update,tele) checkpoints,
    the latter also with ``opt.teleport`` on ``teleport_batch`` samples after every step (the
    full method). Each timed over ``steps`` steps after 3 untimed ones. ``checkpoints``
    (default: the shipped generalists, GENERALISTS) are timed alike under ``"checkpoints"``:
    path -> step and, if the checkpoint teleports, step + teleport, each in wall and CPU
    milliseconds (``opt.start(model)`` first where it meta-trained from balanced starts)."""
    from torch import nn

    from .torch_optim import LearnedTorchOptimizer as LearnedOpt

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 128), nn.LeakyReLU(0.1), nn.Linear(128, 10))
    X, y = torch.rand(teleport_batch, 784), torch.randint(0, 10, (teleport_batch,))
    ckpt = CONFIG_DIR.parent / "checkpoints"

    def time_steps(opt, teleport: bool) -> tuple[float, float]:
        model.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        for _ in range(3):
            opt.step()
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            opt.step()
            if teleport:
                opt.teleport(model, X, y)
        return (1e3 * (time.perf_counter() - start) / steps,
                1e3 * (time.process_time() - start_cpu) / steps)

    out = {"parameters": sum(p.numel() for p in model.parameters()),
           "adam_ms": time_steps(torch.optim.Adam(model.parameters(), 1e-3), False)[0],
           "update_ms": time_steps(LearnedOpt(model.parameters(), ckpt / "update.pt"),
                                   False)[0]}
    tele = LearnedOpt(model.parameters(), ckpt / "paper_update_tele.pt")
    out["update_tele_step_ms"] = time_steps(tele, False)[0]
    out["update_tele_step_and_teleport_ms"] = time_steps(tele, True)[0]
    out["checkpoints"] = {}
    for path in checkpoints if checkpoints is not None else [ckpt / g for g in GENERALISTS]:
        opt = LearnedOpt(model.parameters(), path)
        opt.start(model)
        timed = {"step": time_steps(opt, False)}
        if opt.learned.move is not None:  # a teleport of its own (m2, random, balance)
            timed["step_and_teleport"] = time_steps(opt, True)
        out["checkpoints"][str(path)] = {f"{k}_{kind}_ms": v[i] for k, v in timed.items()
                                         for i, kind in enumerate(("wall", "cpu"))}
    return out
