"""Checkpoints of two kinds (as in google/learned_optimization):

- full: everything to resume meta-training bit for bit (meta-parameters, meta-optimizer state,
  RNG states, counters, the carried inner trajectories, config, package version), written every
  few meta-steps under ``<run>/checkpoints/full_<meta_step>.pt``, the newest few kept;
- params: the meta-parameters with the model and task configs and the variant, what evaluation
  loads (``<run>/params.pt``, and the files under ``checkpoints/`` of the repository).

Every file is written atomically (temporary file in the same folder, fsync, rename), so a kill
mid-write leaves the previous file intact and never a truncated one under the final name.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "latest_full",
    "load_checkpoint",
    "load_optimizer",
    "non_finite",
    "save_atomic",
    "save_full",
]

FORMAT_VERSION = 1
_FULL = re.compile(r"^full_(\d{8})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or not the kind, version or variant asked for."""


def package_version() -> str:
    from . import __version__

    return __version__


def save_atomic(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_full(run_dir: str | Path, meta_step: int, payload: dict, keep: int) -> Path:
    """Write a full checkpoint for ``meta_step`` and delete all but the ``keep`` newest."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    payload = {**payload, "kind": "full", "format_version": FORMAT_VERSION,
               "package_version": package_version(), "meta_step": meta_step}
    path = save_atomic(payload, ckpt_dir / f"full_{meta_step:08d}.pt")
    for old in _full_checkpoints(ckpt_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _full_checkpoints(ckpt_dir: Path) -> list[Path]:
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.iterdir() if _FULL.match(p.name))


def latest_full(run_dir: str | Path) -> Path | None:
    found = _full_checkpoints(Path(run_dir) / "checkpoints")
    return found[-1] if found else None


def load_checkpoint(
    path: str | Path, kind: str, variant: str | None = None, map_location: str = "cpu"
) -> dict:
    """Load and check a checkpoint of ``kind`` ("full" or "params").

    Raises CheckpointError naming the file when it is missing, truncated or corrupt, not a
    metateleport checkpoint, of the other kind, of another format version, or (when ``variant``
    is given) of another variant.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        # weights_only: tensors and plain containers only. A pickled object (which could run
        # code while it is unpickled) is refused, never constructed.
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else ""
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain Python types, so it was not "
            f"loaded (metateleport checkpoints never do; a pickled payload could run code): "
            f"{first[:200]}"
        ) from None
    except Exception as err:
        raise CheckpointError(
            f"{path} is truncated or corrupt and cannot be read ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(data, dict) or "format_version" not in data or "kind" not in data:
        raise CheckpointError(f"{path} is not a metateleport checkpoint")
    if data["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {data['format_version']}; this metateleport "
            f"({package_version()}) reads version {FORMAT_VERSION}"
        )
    if data["kind"] != kind:
        hint = " (pass the run's params.pt to evaluate)" if kind == "params" else ""
        raise CheckpointError(f"{path} is a {data['kind']} checkpoint, expected {kind}{hint}")
    if variant is not None and data.get("variant") != variant:
        raise CheckpointError(
            f"{path} holds variant {data.get('variant')!r}, but the config asks for {variant!r}"
        )
    params = data.get("state_dict") if kind == "params" else (data.get("trainer") or {}).get("opt")
    bad = non_finite(params or {})
    if bad:
        raise CheckpointError(
            f"{path} holds non-finite meta-parameters ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}): the run that wrote it had diverged"
        )
    return data


def non_finite(state_dict: dict) -> list[str]:
    """Names of the tensors of ``state_dict`` that hold a NaN or an infinity."""
    return [k for k, v in state_dict.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


def load_optimizer(path: str | Path, device: str | torch.device = "cpu"):
    """Load a params checkpoint. Returns (LearnedOptimizer in eval mode, metadata dict with
    "variant", "task", "model", "config" (the run's whole config), "meta_step",
    "package_version")."""
    from .config import TaskConfig, upgrade_section
    from .meta_optimizers import LearnedOptimizer

    data = load_checkpoint(path, "params")
    try:
        opt = LearnedOptimizer(**upgrade_section("model", data["model"]))
        opt.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: the parameters do not fit the stored model: {err}"
        ) from None
    opt.to(device).eval()
    meta = {k: data.get(k)
            for k in ("variant", "task", "model", "config", "meta_step", "package_version")}
    # Checkpoints written before a task key existed hold its default: fill it in, so that two
    # checkpoints of one family compare equal whatever version wrote them.
    meta["task"] = dataclasses.asdict(TaskConfig(**upgrade_section("task", meta["task"])))
    meta["model"] = upgrade_section("model", meta["model"])
    return opt, meta
