"""A meta-training run: run folder, TensorBoard, progress bar, checkpoints, resume.

Run folder layout:

    <out>/config.yaml                  the resolved config
    <out>/tb/                          TensorBoard events
    <out>/checkpoints/full_*.pt        full checkpoints (newest ``train.keep_checkpoints`` kept)
    <out>/params.pt                    parameters-only export, written at the end (eval loads it)

In a distributed run (distributed.py) rank 0 alone reads and writes the run folder, which other
nodes need not even see: it checks the folder and the checkpoint to resume, sends each rank its
part of the checkpoint, and writes config.yaml, TensorBoard, the progress bar, checkpoints (with
every rank's carried trajectories, gathered) and params.pt.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from .checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    latest_full,
    load_checkpoint,
    package_version,
    save_atomic,
    save_full,
)
from .config import Config, ConfigError, config_from_dict, config_to_dict, config_to_yaml
from .distributed import DistContext, inject_test_fault
from .unroll import MetaTrainer

__all__ = ["RunError", "export_params", "train_run"]

# Keys that may differ between a run's stored config and the one given with --resume.
_RESUMABLE_CHANGES = {"train.trajectories", "train.val_every", "train.ckpt_every",
                      "train.keep_checkpoints", "train.threads"}


class RunError(RuntimeError):
    """The run folder cannot be used as asked (exists without --resume, nothing to resume...)."""


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_resume_config(stored: Config, given: Config) -> None:
    a, b = _flat(config_to_dict(stored)), _flat(config_to_dict(given))
    diff = [k for k in a if a[k] != b[k] and k not in _RESUMABLE_CHANGES]
    if diff:
        details = "; ".join(f"{k}: run has {a[k]!r}, given {b[k]!r}" for k in diff)
        raise ConfigError(f"--resume with a config that differs from the run's: {details}")


def export_params(trainer: MetaTrainer, path: Path) -> Path:
    cfg = trainer.cfg
    return save_atomic({
        "kind": "params",
        "format_version": FORMAT_VERSION,
        "package_version": package_version(),
        "variant": cfg.model.variant,
        "model": dataclasses.asdict(cfg.model),
        "task": dataclasses.asdict(cfg.task),
        "config": config_to_dict(cfg),
        "meta_step": trainer.meta_step,
        "state_dict": {k: v.detach().cpu() for k, v in trainer.opt.state_dict().items()},
    }, path)


def _open_run(cfg: Config, out: Path, resume: bool, world_size: int) -> dict | None:
    """Check run folder ``out`` for this run; return the checkpoint to resume from, or None for
    a new run, whose folder and config.yaml are then created. Raises RunError, ConfigError or
    CheckpointError before changing anything."""
    if resume:
        ckpt = latest_full(out)
        if ckpt is None:
            raise RunError(f"--resume: no full checkpoint in {out / 'checkpoints'} to resume from")
        data = load_checkpoint(ckpt, "full", variant=cfg.model.variant)
        _check_resume_config(config_from_dict(data["config"]), cfg)
        stored = data["trainer"].get("world_size", 1)
        if stored != world_size:
            raise RunError(
                f"--resume: {ckpt} was written by a run of {stored} process(es), this run has "
                f"{world_size}; resume with {stored} (each holds its own carried trajectories): "
                + ("without torchrun" if stored == 1 else f"torchrun --nproc_per_node {stored} "
                   "on one node, or as many processes over all nodes")
            )
        return data
    if out.exists() and any(out.iterdir()):
        raise RunError(
            f"run folder {out} already exists and is not empty; pass --resume to continue "
            "it or choose another --out (nothing was changed)"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config_to_yaml(cfg))
    return None


_T = TypeVar("_T")
_AGREED_ERRORS = (ConfigError, CheckpointError, RunError)


def _on_rank0(dist: DistContext | None, decide: Callable[[], _T]) -> _T | None:
    """Run ``decide()`` on rank 0 alone and return its result there (None on the other ranks).
    An error it raises is raised on every rank, so that all stop with the same message instead
    of the others waiting for rank 0 at the next collective."""
    if dist is None:
        return decide()
    result, error, shared = None, None, None
    if dist.is_main:
        try:
            result = decide()
        except Exception as err:  # any failure: the other ranks must learn of it
            error = err
            shared = err if isinstance(err, _AGREED_ERRORS) else RunError(
                f"rank 0 could not set up the run: {type(err).__name__}: {err}")
    shared = dist.broadcast_object(shared)
    if error is not None and error is not shared:
        raise shared from error
    if shared is not None:
        raise shared
    return result


def train_run(
    cfg: Config,
    out: str | Path,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    max_meta_steps: int | None = None,
    dist: DistContext | None = None,
) -> MetaTrainer:
    """Meta-train ``cfg`` into run folder ``out``.

    Without ``resume`` an existing non-empty ``out`` is refused (nothing there is touched). With
    ``resume`` training continues from the newest full checkpoint. ``max_meta_steps`` stops
    early (after that many windows in total) without writing the export: a way to run a long
    job in chunks.

    With ``dist`` (distributed.init_distributed) every rank calls this with the same arguments;
    rank 0 alone touches ``out`` and shows progress, and a refused folder or checkpoint raises
    the same error on every rank. The caller then ends with ``dist.close()``.
    """
    out = Path(out)
    main = dist is None or dist.is_main
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    world_size = 1 if dist is None else dist.world_size
    data = _on_rank0(dist, lambda: _open_run(cfg, out, resume, world_size))
    trainer = MetaTrainer(cfg, device, dist)
    if resume:
        trainer.load_state_dict(data["trainer"] if main else None)

    tr = cfg.train
    stop_at = trainer.total_meta_steps
    if max_meta_steps is not None:
        stop_at = min(stop_at, max_meta_steps)
    writer = SummaryWriter(str(out / "tb"), purge_step=trainer.meta_step or None) if main else None
    if writer is not None and trainer.meta_step == 0:
        # indented: TensorBoard renders text as Markdown, and this keeps it a code block
        text = "    " + config_to_yaml(cfg).replace("\n", "\n    ")
        writer.add_text("config", text, 0)
    bar = tqdm(total=trainer.total_meta_steps, initial=trainer.meta_step,
               disable=not (progress and main), desc=f"meta-train {cfg.model.variant}",
               unit="win", dynamic_ncols=True)
    start, start_step = time.perf_counter(), trainer.meta_step
    try:
        while trainer.meta_step < stop_at:
            stats = trainer.window()
            step = trainer.meta_step
            inject_test_fault(trainer.rank, step)
            if writer is not None:
                for key, value in stats.items():
                    if key != "t_end":
                        writer.add_scalar(f"train/{key}", value, step)
            elapsed = time.perf_counter() - start
            tps = (step - start_step) * tr.unroll * tr.batch_size * world_size / max(elapsed, 1e-9)
            bar.set_postfix(meta_loss=f"{stats['meta_loss']:.3g}", traj_per_s=
                            f"{tps / tr.n_steps:.2f}", skipped=trainer.skipped)
            bar.update(1)
            if tr.val_every and step % tr.val_every == 0:
                losses = trainer.validation_losses()
                if writer is not None:
                    for t in sorted({min(30, tr.n_steps), tr.n_steps}):
                        writer.add_scalar(f"val/median_loss_step{t}", losses[t].median().item(),
                                          step)
            if step % tr.ckpt_every == 0 or step == stop_at:
                state = trainer.state_dict()
                if main:
                    save_full(out, step, {"config": config_to_dict(cfg),
                                          "variant": cfg.model.variant,
                                          "trainer": state}, tr.keep_checkpoints)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if trainer.done and main:
        export_params(trainer, out / "params.pt")
    return trainer

