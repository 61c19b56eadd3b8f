"""The whole evaluation of eval_meta.py: checkpoints in, a report folder out.

``run_evaluation`` loads the checkpoints, builds their task family, tunes the baselines' step
sizes on validation problems (cached in the report folder as tuned_lrs.json), runs everything on
the test problems and writes the report; ``optimizer_names`` and ``checkpoint_name`` name the
checkpoints in it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..inner import InnerOptimizer, Teleporting
from ..tasks import Split, make_family
from ..teleport import BalanceTeleport, Schedule
from .reports import jsonable, write_report
from .running import evaluate
from .summaries import EvalResult
from .tuning import (
    ADAM_LR_GRID,
    BASELINES,
    DEFAULT_BASELINES,
    GD_LR_GRID,
    LABELS,
    baselines,
    default_schedule_grid,
)

__all__ = ["TUNING_CACHE", "EvalError", "checkpoint_name", "optimizer_names", "run_evaluation"]


class EvalError(ValueError):
    """The evaluation cannot run as asked (conflicting checkpoints, a bad task override...)."""


def optimizer_names(variants: Sequence[str], checkpoint_names: Sequence[str]) -> list[str]:
    """The results.json name of each checkpoint: "lstm_<variant>", or the checkpoint's own name
    where two checkpoints share a variant. Raises EvalError if two names still coincide."""
    counts = {v: variants.count(v) for v in variants}
    names = [f"lstm_{v}" if counts[v] == 1 else c for v, c in zip(variants, checkpoint_names)]
    dup = sorted({n for n in names if names.count(n) > 1 or n in BASELINES})
    if dup:
        raise EvalError(f"two optimizers would be reported as {dup}: give the checkpoints of "
                        "one variant distinct file names")
    return names


def checkpoint_name(path: str | Path) -> str:
    """A run's params.pt (runs/NAME/params.pt) is named after its run folder, any other
    checkpoint after its file (checkpoints/update_tele.pt -> update_tele)."""
    path = Path(path)
    return (path.parent.name if path.stem == "params" else path.stem) or path.stem


TUNING_CACHE = "tuned_lrs.json"


def run_evaluation(
    checkpoints: Sequence[str | Path],
    *,
    num_inits: int = 64,
    n_steps: int = 100,
    seed: int = 0,
    widths: Sequence[int] | None = None,
    n_samples: int | None = None,
    init: str | None = None,
    task_overrides: Mapping[str, Any] | None = None,
    baseline_names: Sequence[str] = DEFAULT_BASELINES,
    threshold: float | None = None,
    tune: bool = True,
    out_dir: str | Path,
    device: str = "cpu",
    with_balance: bool = False,
    family: str | None = None,
) -> tuple[EvalResult, dict[str, Path]]:
    """The whole evaluation of eval_meta.py.

    1. Load every checkpoint before anything runs or is written (a missing or broken one
       raises CheckpointError; an untrained optimizer is never put in its place).
    2. The task family is the checkpoints' own (they must agree), or the registered
       ``family`` at its defaults (tasks.FAMILIES), with ``widths``,
       ``n_samples``, ``init`` and the keys of ``task_overrides`` (e.g. unit_span, cond)
       replaced where given (validated like a config: ConfigError).
    3. ``num_inits`` evaluation problems come from the test stream at ``seed``; the baselines'
       step sizes are searched on as many problems of the validation stream at ``seed`` (the
       streams never overlap, and neither overlaps training) and cached in
       ``out_dir/tuned_lrs.json``: a rerun into the same folder with the same task, steps, seed
       and grids reuses them.
    4. Run everything, write the report into ``out_dir`` (TensorBoard under ``out_dir/tb``,
       whose previous event files are replaced).
    """
    from ..checkpoint import CheckpointError, load_optimizer
    from ..config import ConfigError, config_from_dict

    if not checkpoints:
        raise EvalError("no checkpoint to evaluate")
    loaded = [(str(p), *load_optimizer(p, device)) for p in checkpoints]
    names = optimizer_names([meta["variant"] for _, _, meta in loaded],
                            [checkpoint_name(p) for p, _, _ in loaded])
    task = dict(loaded[0][2]["task"])
    if family is not None:
        from ..config import TaskConfig
        from ..tasks import FAMILIES, buildable_families

        if family not in buildable_families():
            raise EvalError(f"--family {family!r}: not a registered family; allowed: "
                            f"{buildable_families()}")
        task = {**dataclasses.asdict(TaskConfig()), **FAMILIES[family]().config()}
    overrides = {k: v for k, v in (("widths", None if widths is None else list(widths)),
                                   ("n_samples", n_samples), ("init", init),
                                   *(task_overrides or {}).items()) if v is not None}
    if not overrides and family is None:
        for path, _, meta in loaded[1:]:
            if meta["task"] != task:
                raise CheckpointError(
                    f"{path} was trained on task {meta['task']}, but {loaded[0][0]} on {task}: "
                    "evaluate checkpoints of one task family together, or choose the family "
                    "with --widths/--n-samples/--init")
    task.update(overrides)
    try:
        task = dataclasses.asdict(config_from_dict({"task": task}).task)
    except ConfigError as err:
        raise EvalError(f"cannot evaluate on task {task}: {err}") from None
    family = make_family(task)
    test = family.sample(num_inits, seed, Split.TEST).to(device)
    val = family.sample(num_inits, seed, Split.VAL).to(device) if tune else None

    out_dir = Path(out_dir)
    grids = {"gd": list(GD_LR_GRID), "adam": list(ADAM_LR_GRID),
             "gd_schedule": [list(s) for s in default_schedule_grid()]}
    cache_key = {"task": task, "n_steps": n_steps, "seed": seed, "num_inits": num_inits,
                 "split": "val", "grids": grids}
    cached = {}
    cache_file = out_dir / TUNING_CACHE
    if tune and cache_file.is_file():
        try:
            stored = json.loads(cache_file.read_text())
        except (ValueError, OSError):
            stored = None  # unreadable: search again, and write a good one
        if isinstance(stored, dict) and stored.get("key") == jsonable(cache_key):
            cached = {k: {**v, "lr": tuple(v["lr"]) if isinstance(v["lr"], list) else v["lr"]}
                      for k, v in stored["tuning"].items()}
    hand, tuning = baselines(val, n_steps, baseline_names, tune=tune, tuned=cached)
    opts: dict[str, InnerOptimizer] = {**hand, **{n: opt for n, (_, opt, _) in
                                                  zip(names, loaded)}}
    labels = {n: LABELS[n] for n in hand}
    for name, (_, opt, meta) in zip(names, loaded):
        labels[name] = opt.name if name == f"lstm_{meta['variant']}" else f"{opt.name} [{name}]"
    learned = list(names)
    if with_balance:
        at_0 = Schedule(at=(0,))
        for name in names:
            opts[f"{name}+balance"] = Teleporting(opts[name], BalanceTeleport(), at_0)
            labels[f"{name}+balance"] = f"{labels[name]} update rule +balance"
            learned.append(f"{name}+balance")
    metadata = {
        "task": task, "seed": seed,
        "problems": {"evaluation": {"split": "test", "seed": seed, "count": num_inits},
                     "tuning": {"split": "val", "seed": seed, "count": num_inits} if tune
                     else None},
        "checkpoints": {n: {"path": p, "variant": m["variant"], "meta_step": m["meta_step"],
                            "trained_on": m["task"]} for n, (p, _, m) in zip(names, loaded)},
        "baselines": tuning, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "device": device,
    }
    result = evaluate(opts, test, n_steps, threshold, learned=learned, labels=labels,
                      seed=seed, metadata=metadata)
    tb = out_dir / "tb"
    # A replaced report must not keep the old curves: TensorBoard would merge both into one run.
    for stale in [*tb.glob("events.out.tfevents.*"), *tb.glob("*/events.out.tfevents.*")]:
        stale.unlink()
    paths = write_report(result, out_dir, tb)
    if tune:
        cache_file.write_text(json.dumps(jsonable(
            {"key": cache_key, "tuning": {k: v for k, v in tuning.items() if k != "gd_tele"}}),
            indent=2) + "\n")
        paths["tuning"] = cache_file
    return result, paths
