"""A meta-training run: run folder, TensorBoard, progress bar, checkpoints, resume.

Run folder layout:

    <out>/config.yaml                  the resolved config
    <out>/tb/                          TensorBoard events
    <out>/checkpoints/full_*.pt        full checkpoints (newest ``train.keep_checkpoints`` kept)
    <out>/params.pt                    parameters-only export, written at the end (eval loads it)
    <out>/best_params.pt               the same for the iterate with the best validation score
                                       (trainer.validation_score), rewritten when it improves

In a distributed run (distributed.py) rank 0 alone reads and writes the run folder, which other
nodes need not even see: it checks the folder and the checkpoint to resume, sends each rank its
part of the checkpoint, and writes config.yaml, TensorBoard, the progress bar, checkpoints (with
every rank's carried trajectories, gathered) and params.pt.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
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
    non_finite,
    package_version,
    save_atomic,
    save_full,
)
from .config import (
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    load_config,
)
from .distributed import DistContext, inject_test_fault
from .trainer import MetaTrainer

__all__ = ["DivergedError", "Interrupted", "RunError", "RunLock", "export_params", "train_run"]

# Keys that may differ between a run's stored config and the one given with --resume.
_RESUMABLE_CHANGES = {"train.trajectories", "train.val_every", "train.ckpt_every",
                      "train.keep_checkpoints", "train.threads", "train.max_skip_fraction",
                      "train.recompute_lstm", "train.fused_lstm"}
LOCK_NAME = ".lock"


class RunError(RuntimeError):
    """The run folder cannot be used as asked (exists without --resume, nothing to resume, in
    use by another process, not writable...)."""


class DivergedError(RunError):
    """Too many windows were skipped (non-finite meta-loss or meta-gradient): the run stopped
    without exporting params.pt; its last full checkpoint is kept."""


class Interrupted(RuntimeError):
    """SIGINT or SIGTERM stopped the run at a window boundary, after a full checkpoint."""

    def __init__(self, signame: str, meta_step: int, checkpoint: Path | None):
        self.signame, self.meta_step, self.checkpoint = signame, meta_step, checkpoint
        super().__init__(f"interrupted by {signame} at meta-step {meta_step}; full checkpoint "
                         f"{checkpoint}")


class RunLock:
    """An exclusive lock on a run folder for the whole run: ``<out>/.lock``, locked with
    flock and holding the owner's PID. The kernel drops the lock when its process dies however
    it dies (SIGKILL included), so a stale lock file is simply taken over. A process that took
    the lock only to be refused (``restore``) puts the file back as it found it."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME
        self.fd: int | None = None
        self._previous: bytes | None = None  # the file's content before acquire; None: created

    def acquire(self) -> None:
        import fcntl

        self._previous = self.path.read_bytes() if self.path.is_file() else None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunError(f"run folder {self.path.parent} is in use by process {holder} (another "
                           "train_meta.py); wait for it to end or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def restore(self) -> None:
        """Undo ``acquire``'s change to the lock file (its PID), keeping the lock."""
        if self.fd is None:
            return
        if self._previous is None:
            self.path.unlink(missing_ok=True)
        else:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, self._previous, 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


class _StopOnSignal:
    """While active, SIGINT, SIGTERM and SIGHUP (the terminal closed) only set ``signame``: the
    run stops at the next window boundary after a full checkpoint. A second SIGINT stops at once
    (KeyboardInterrupt). A SIGHUP that is ignored (``nohup``) stays ignored. Handlers can only
    be installed from the main thread; elsewhere this does nothing."""

    def __init__(self):
        self.signame: str | None = None
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.signame is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signame = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
                    continue
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


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


def export_params(trainer: MetaTrainer, path: Path, best: bool = False) -> Path:
    """The parameters-only checkpoint of the current meta-parameters, or with ``best`` of the
    iterate with the best validation score (the current ones if none was validated)."""
    cfg = trainer.cfg
    chosen = trainer.best if best and trainer.best is not None else None
    state = chosen["state_dict"] if chosen else trainer.opt.state_dict()
    return save_atomic({
        "kind": "params",
        "format_version": FORMAT_VERSION,
        "package_version": package_version(),
        "variant": cfg.model.variant,
        "model": dataclasses.asdict(cfg.model),
        "task": dataclasses.asdict(cfg.task),
        "config": config_to_dict(cfg),
        "meta_step": chosen["meta_step"] if chosen else trainer.meta_step,
        "validation_score": chosen["score"] if chosen else None,
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }, path)


def _open_run(cfg: Config, out: Path, resume: bool, world_size: int, lock: RunLock) -> dict | None:
    """Check run folder ``out`` for this run and lock it; return the checkpoint to resume from,
    or None for a run from the start, whose folder and config.yaml are then created. Raises
    RunError, ConfigError or CheckpointError before changing anything (a refused run puts the
    lock file back as it found it).

    A folder with a config.yaml but no full checkpoint yet (a run stopped before its first one)
    is resumed from the start: --resume then checks the config against it.
    """
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a run folder; choose another --out")
    if resume and not out.is_dir():
        raise RunError(f"--resume: there is no run folder {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as err:
        raise RunError(f"cannot create or lock run folder {out}: {err.strerror}") from None
    try:
        return _check_run_folder(cfg, out, resume, world_size)
    except BaseException:
        lock.restore()
        raise


def _check_run_folder(cfg: Config, out: Path, resume: bool, world_size: int) -> dict | None:
    """The checks of ``_open_run`` on a locked folder ``out``."""
    if not os.access(out, os.W_OK):
        raise RunError(f"run folder {out} is not writable")
    ckpt = latest_full(out)
    if resume and ckpt is not None:
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
    started = (out / "config.yaml").is_file()
    if resume:
        if not started:
            raise RunError(f"--resume: {out} holds no run (no config.yaml, no full checkpoint)")
        _check_resume_config(load_config(out / "config.yaml"), cfg)
        # Nothing was saved yet: start again, without the curves of the lost start.
        for stale in (out / "tb").glob("events.out.tfevents.*"):
            stale.unlink()
        return None
    if any(p.name != LOCK_NAME for p in out.iterdir()):
        hint = ("it holds a run stopped before its first checkpoint: pass --resume to start it "
                "again" if started and ckpt is None else "pass --resume to continue it")
        raise RunError(f"run folder {out} already exists and is not empty; {hint}, or choose "
                       "another --out (nothing was changed)")
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
    if max_meta_steps is not None and max_meta_steps < 1:
        raise RunError(f"--max-meta-steps must be >= 1, got {max_meta_steps}")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    world_size = 1 if dist is None else dist.world_size
    lock = RunLock(out)
    try:
        data = _on_rank0(dist, lambda: _open_run(cfg, out, resume, world_size, lock))
        trainer = MetaTrainer(cfg, device, dist)
        resuming = data is not None
        if dist is not None:
            resuming = dist.broadcast_object(resuming)
        if resuming:
            trainer.load_state_dict(data["trainer"] if data is not None else None)
        with _StopOnSignal() as stop:
            _train_loop(trainer, out, max_meta_steps, progress, stop)
    finally:
        lock.release()
    return trainer


def _train_loop(trainer: MetaTrainer, out: Path, max_meta_steps: int | None, progress: bool,
                stop: _StopOnSignal) -> None:
    cfg, dist, tr = trainer.cfg, trainer.dist, trainer.cfg.train
    main = dist is None or dist.is_main
    world_size = trainer.world_size
    stop_at = trainer.total_meta_steps
    if max_meta_steps is not None:
        stop_at = min(stop_at, max_meta_steps)
    writer = None
    bar = tqdm(total=trainer.total_meta_steps, initial=trainer.meta_step,
               disable=not (progress and main), desc=f"meta-train {cfg.model.variant}",
               unit="win", dynamic_ncols=True)
    start, start_step = time.perf_counter(), trainer.meta_step
    thread_hook = threading.excepthook
    # TensorBoard writes from a thread of its own; a write error there (folder made read-only,
    # disk full) is raised again by the writer's next call in this thread, where it becomes a
    # one-line error: do not print the thread's traceback as well.
    threading.excepthook = lambda a: None if issubclass(a.exc_type, OSError) else thread_hook(a)
    try:
        if main:
            writer = SummaryWriter(str(out / "tb"), purge_step=trainer.meta_step or None)
            if trainer.meta_step == 0:
                # indented: TensorBoard renders text as Markdown, and this keeps it a code block
                text = "    " + config_to_yaml(cfg).replace("\n", "\n    ")
                writer.add_text("config", text, 0)
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
            if trainer.skipped >= 10 and trainer.skipped > tr.max_skip_fraction * step:
                raise DivergedError(
                    f"the run diverged: {trainer.skipped} of {step} windows were skipped "
                    f"(non-finite meta-loss or meta-gradient; train.max_skip_fraction="
                    f"{tr.max_skip_fraction}); no params.pt was written; "
                    + (f"the last full checkpoint {latest_full(out)} is kept"
                       if latest_full(out) else "no full checkpoint was written")
                    + "; try a smaller train.meta_lr")
            if tr.val_every and step % tr.val_every == 0:
                losses = trainer.validation_losses()
                if losses is not None:  # rank 0
                    score, better = trainer.record_validation(losses)
                    if better:
                        export_params(trainer, out / "best_params.pt", best=True)
                if writer is not None:
                    for t in sorted({min(30, tr.n_steps), tr.n_steps}):
                        writer.add_scalar(f"val/median_loss_step{t}", losses[t].median().item(),
                                          step)
                    writer.add_scalar("val/score", score, step)
                    writer.add_scalar("val/best_score", trainer.best["score"], step)
            signame = _agreed_signal(stop, dist, trainer.device)
            if step % tr.ckpt_every == 0 or step == stop_at or signame:
                ckpt = _save_full(trainer, out)
            if signame:
                raise Interrupted(signame, step, ckpt)
        if trainer.done and main:
            _check_finite(trainer)
            export_params(trainer, out / "params.pt")
            if trainer.best is None:
                export_params(trainer, out / "best_params.pt", best=True)
    except OSError as err:
        raise RunError(f"cannot write to run folder {out}: {err.strerror or err}") from None
    finally:
        bar.close()
        if writer is not None:
            try:
                writer.close()
            except OSError:
                pass  # reported above: the folder became unwritable
        threading.excepthook = thread_hook


def _agreed_signal(stop: _StopOnSignal, dist: DistContext | None, device) -> str | None:
    """The stop signal, agreed by every rank (a rank that got none follows the others)."""
    if dist is None:
        return stop.signame
    flag = dist.all_reduce_sum(torch.tensor([1.0 if stop.signame else 0.0], device=device))
    return (stop.signame or "SIGTERM") if float(flag[0]) > 0 else None


def _check_finite(trainer: MetaTrainer) -> None:
    bad = non_finite(trainer.opt.state_dict())
    if bad:
        raise DivergedError(f"the meta-parameters {', '.join(bad[:3])} are not finite; nothing "
                            "was saved")


def _save_full(trainer: MetaTrainer, out: Path) -> Path | None:
    """A full checkpoint (collective in a distributed run; rank 0 writes). Returns its path."""
    state = trainer.state_dict()
    if trainer.dist is not None and not trainer.dist.is_main:
        return None
    _check_finite(trainer)
    cfg = trainer.cfg
    return save_full(out, trainer.meta_step, {"config": config_to_dict(cfg),
                                              "variant": cfg.model.variant, "trainer": state},
                     cfg.train.keep_checkpoints)
