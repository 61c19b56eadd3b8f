"""Evaluation: every optimizer on the same unseen initializations, summarized (design.md s. 7).

``evaluate`` runs each optimizer with ``optimizers.run`` on one batch of M test problems for N
inner steps and ``summarize`` turns the loss curves (N+1, M) into, per optimizer:

- the loss at steps 1, 10, 30, 100 (those <= N) and at N: median and mean over problems with 95%
  percentile-bootstrap intervals;
- the number of steps to reach a loss threshold (median over problems; never reached = inf);
- wall-clock milliseconds per inner step;
- the per-initialization win rate of the main optimizer against it.

A diverged run (non-finite loss) counts as an infinite loss everywhere: a median is infinite when
at least half of the runs diverged, a mean as soon as one did. The median is the usual one (mean
of the two middle values for even M), as ``numpy.median``.

``write_report`` writes results.json, results.md, curves.png and TensorBoard scalars.
``baselines`` builds the hand-designed baselines (GD, Adam with learning rates tuned on
validation problems by ``tune_lr``, and GD with a gradient-ascent teleport).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from matplotlib.figure import Figure

from .meta_optimizers import VARIANTS
from .optimizers import GD, Adam, InnerOptimizer, TeleportSchedule, run
from .tasks import MLPTaskFamily, Problems

__all__ = [
    "ADAM_LR_GRID",
    "DEFAULT_ADAM_LR",
    "DEFAULT_GD_LR",
    "GD_LR_GRID",
    "MAIN_NAME",
    "REPORT_STEPS",
    "EvalResult",
    "baselines",
    "bootstrap_ci",
    "evaluate",
    "markdown_table",
    "quantile",
    "run_evaluation",
    "steps_to_threshold",
    "summarize",
    "tune_lr",
    "win_rate",
    "write_report",
]

GD_LR_GRID = (1e-4, 2e-4, 3e-4, 5e-4, 7e-4, 1e-3)
ADAM_LR_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
DEFAULT_GD_LR = 3e-4
DEFAULT_ADAM_LR = 1e-2
REPORT_STEPS = (1, 10, 30, 100)

MAIN_NAME = VARIANTS["update_tele"]

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]


def _losses(values: ArrayLike) -> np.ndarray:
    """float64 copy with every non-finite entry (a diverged run) set to +inf."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    x = np.array(values, dtype=np.float64)
    x[~np.isfinite(x)] = np.inf
    return x


def quantile(values: ArrayLike, q: float, axis: int = 0) -> np.ndarray:
    """Linear-interpolation quantile (numpy's default) along ``axis`` that treats non-finite
    values as +inf: it is infinite exactly when an infinite value enters the interpolation.
    (numpy's own quantile returns nan there, from inf * 0 or inf - inf.)

    q = 0.5 gives the median. values: any shape; the result drops ``axis``.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    x = np.sort(_losses(values), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("quantile of an empty array")
    h = q * (n - 1)
    i = math.floor(h)
    frac = h - i
    a = np.take(x, i, axis=axis)
    if frac == 0:
        return a
    b = np.take(x, i + 1, axis=axis)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(b), np.inf, a + (b - a) * frac)


def bootstrap_ci(
    values: ArrayLike,
    stat: Literal["median", "mean"] = "median",
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile bootstrap over problems: (estimate, lo, hi) of ``stat`` of ``values`` (M,).

    The M problems are resampled with replacement ``n_boot`` times (numpy PCG64 at ``seed``, so
    the interval is deterministic); lo and hi are the alpha/2 and 1 - alpha/2 quantiles of the
    resampled statistic. Non-finite values count as +inf (see the module docstring).
    """
    x = _losses(values)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {x.shape}")
    if stat not in ("median", "mean"):
        raise ValueError(f"stat must be 'median' or 'mean', got {stat!r}")
    if n_boot < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")

    def statistic(a: np.ndarray) -> np.ndarray:
        return quantile(a, 0.5, axis=-1) if stat == "median" else a.mean(axis=-1)

    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    boot = statistic(x[idx])
    return (
        float(statistic(x)),
        float(quantile(boot, alpha / 2)),
        float(quantile(boot, 1 - alpha / 2)),
    )


def steps_to_threshold(losses: ArrayLike, threshold: float) -> np.ndarray:
    """First step t with loss_t <= threshold, per problem. losses: (N+1, M) -> (M,) float,
    inf where the threshold is never reached (a non-finite loss never reaches it)."""
    x = _losses(losses)
    hit = np.isfinite(x) & (x <= threshold)
    first = hit.argmax(axis=0).astype(np.float64)
    first[~hit.any(axis=0)] = np.inf
    return first


def win_rate(main_final: ArrayLike, other_final: ArrayLike) -> tuple[float, int]:
    """Fraction (and count) of problems where main's final loss is strictly below the other's.

    main_final, other_final: (M,), the same problems in the same order. A non-finite loss
    loses: main wins against a diverged run if its own run is finite; two diverged runs tie,
    and a tie is not a win.
    """
    a, b = _losses(main_final), _losses(other_final)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two (M,) arrays of equal shape, got {a.shape} and {b.shape}")
    wins = int((a < b).sum())
    return wins / a.size, wins


@dataclass
class EvalResult:
    """Everything one evaluation produced.

    names: optimizers in table order. losses[name]: (N+1, M) float64 on the CPU, the loss at
    W_0..W_N of every problem. seconds[name]: (N+1,), wall time at which W_t was reached.
    summary[name]: JSON-ready numbers (see ``summarize``). steps: the reported steps, the last
    being N. threshold_source says where the threshold came from. metadata: whatever the caller
    wants written along (config, checkpoints, tuned learning rates).
    """

    names: list[str]
    losses: dict[str, torch.Tensor]
    seconds: dict[str, torch.Tensor]
    summary: dict[str, dict[str, Any]]
    steps: list[int]
    threshold: float
    threshold_source: str
    main: str | None
    n_boot: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return self.steps[-1]

    @property
    def n_problems(self) -> int:
        return next(iter(self.losses.values())).shape[1]


def summarize(
    losses: Mapping[str, torch.Tensor],
    seconds: Mapping[str, torch.Tensor],
    threshold: float | None = None,
    main: str | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    metadata: dict[str, Any] | None = None,
) -> EvalResult:
    """Summarize loss curves losses[name] (N+1, M) and wall times seconds[name] (N+1,).

    threshold=None uses 10x the smallest median final loss among the optimizers. main=None
    picks MAIN_NAME if present (else no win rates). summary[name] holds:
    ``loss[step]`` = {median, median_ci, mean, mean_ci} for every reported step;
    ``diverged`` (problems with a non-finite final loss); ``steps_to_threshold`` =
    {median, never}; ``ms_per_step``; ``win_rate_of_main`` and ``wins_of_main`` (None for main).
    """
    names = list(losses)
    if not names:
        raise ValueError("no optimizers to summarize")
    curves = {name: torch.as_tensor(losses[name]).detach().to("cpu", torch.float64)
              for name in names}
    shape = curves[names[0]].shape
    bad = [n for n in names if curves[n].shape != shape or curves[n].dim() != 2]
    if bad or shape[0] < 2:
        raise ValueError(
            f"every losses[name] must be (N+1, M) with N >= 1 and one common shape; "
            f"got {({n: tuple(c.shape) for n, c in curves.items()})}"
        )
    times = {n: torch.as_tensor(seconds[n]).detach().to("cpu", torch.float64) for n in names}
    n_steps = shape[0] - 1
    if any(t.shape != (n_steps + 1,) for t in times.values()):
        raise ValueError(f"every seconds[name] must have shape ({n_steps + 1},)")
    if main is None and MAIN_NAME in curves:
        main = MAIN_NAME
    if main is not None and main not in curves:
        raise ValueError(f"main optimizer {main!r} is not among {names}")

    finals = {n: curves[n][-1] for n in names}
    if threshold is None:
        best = min(names, key=lambda n: float(quantile(finals[n], 0.5)))
        threshold = 10.0 * float(quantile(finals[best], 0.5))
        source = f"10x the smallest median final loss, that of {best}"
    else:
        source = "given"

    steps = sorted({s for s in REPORT_STEPS if s <= n_steps} | {n_steps})
    summary: dict[str, dict[str, Any]] = {}
    for name in names:
        loss = {}
        for s in steps:
            med, med_lo, med_hi = bootstrap_ci(curves[name][s], "median", n_boot, seed=seed)
            mean, mean_lo, mean_hi = bootstrap_ci(curves[name][s], "mean", n_boot, seed=seed)
            loss[s] = {"median": med, "median_ci": [med_lo, med_hi],
                       "mean": mean, "mean_ci": [mean_lo, mean_hi]}
        reach = steps_to_threshold(curves[name], threshold)
        if main is None or name == main:
            rate, wins = None, None
        else:
            rate, wins = win_rate(finals[main], finals[name])
        summary[name] = {
            "loss": loss,
            "diverged": int((~torch.isfinite(finals[name])).sum()),
            "steps_to_threshold": {"median": float(quantile(reach, 0.5)),
                                   "never": int(np.isinf(reach).sum())},
            "ms_per_step": 1000.0 * float(times[name][-1]) / n_steps,
            "win_rate_of_main": rate,
            "wins_of_main": wins,
        }
    return EvalResult(names, curves, times, summary, steps, threshold, source, main, n_boot,
                      dict(metadata or {}))


def evaluate(
    optimizers: Mapping[str, InnerOptimizer],
    problems: Problems,
    n_steps: int,
    threshold: float | None = None,
    *,
    main: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    warmup_steps: int = 2,
    metadata: dict[str, Any] | None = None,
) -> EvalResult:
    """Run every optimizer on the same ``problems`` (B = M) for ``n_steps`` and summarize.

    Each optimizer first runs ``warmup_steps`` untimed steps so that one-off costs (allocator,
    lazy library initialization) do not land on whichever optimizer happens to run first.
    See ``summarize`` for threshold, main and the summary.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    losses, seconds = {}, {}
    for name, opt in optimizers.items():
        if warmup_steps > 0:
            run(opt, problems, min(warmup_steps, n_steps))
        traj = run(opt, problems, n_steps)
        losses[name], seconds[name] = traj.losses, traj.seconds
    return summarize(losses, seconds, threshold, main, n_boot=n_boot, seed=seed,
                     metadata=metadata)


def tune_lr(
    make_opt: Callable[[float], InnerOptimizer],
    problems: Problems,
    n_steps: int,
    grid: Sequence[float],
) -> tuple[float, dict[float, float]]:
    """Pick the learning rate with the lowest median final loss after ``n_steps`` on
    ``problems`` (validation problems, never the test ones), among those with which no run
    diverged; only if every one diverges somewhere, among all. (By the median alone GD took
    5e-4, which then diverged on 14 of 64 test problems.)

    Returns (best lr, {lr: median final loss}); a diverged run counts as +inf, ties go to the
    earlier grid entry.
    """
    if not grid:
        raise ValueError("empty learning-rate grid")
    table, stable = {}, []
    for lr in grid:
        final = run(make_opt(lr), problems, n_steps).losses[-1]
        table[float(lr)] = float(quantile(final, 0.5))
        if bool(torch.isfinite(final).all()):
            stable.append(float(lr))
    best = min(stable or table, key=table.__getitem__)
    return best, table


def baselines(
    val_problems: Problems | None,
    n_steps: int,
    *,
    tune: bool = True,
    gd_lr: float = DEFAULT_GD_LR,
    adam_lr: float = DEFAULT_ADAM_LR,
    teleport_at: tuple[int, ...] = (30,),
    gd_grid: Sequence[float] = GD_LR_GRID,
    adam_grid: Sequence[float] = ADAM_LR_GRID,
) -> tuple[dict[str, InnerOptimizer], dict[str, Any]]:
    """The hand-designed baselines "GD", "Adam" and "GD+teleport".

    With ``tune`` the GD and Adam learning rates are chosen by ``tune_lr`` on ``val_problems``
    over ``n_steps``; otherwise ``gd_lr`` and ``adam_lr`` are used. GD+teleport is GD at the GD
    learning rate with an 8-step normalized gradient-ascent teleport (||T||_F = 0.01 per step)
    after the update of every step in ``teleport_at``.
    Returns (optimizers by name, a JSON-ready description with the tuning tables).
    """
    info: dict[str, Any] = {"tuned": tune}
    if tune:
        if val_problems is None:
            raise ValueError("tuning the learning rates needs validation problems")
        gd_lr, gd_table = tune_lr(lambda lr: GD(lr), val_problems, n_steps, gd_grid)
        adam_lr, adam_table = tune_lr(lambda lr: Adam(lr), val_problems, n_steps, adam_grid)
        info["GD"] = {"lr": gd_lr, "median_final_loss_by_lr": gd_table}
        info["Adam"] = {"lr": adam_lr, "median_final_loss_by_lr": adam_table}
    else:
        info["GD"], info["Adam"] = {"lr": gd_lr}, {"lr": adam_lr}
    schedule = TeleportSchedule(at_steps=tuple(teleport_at), steps=8, step_size=None,
                                max_norm=0.01)
    info["GD+teleport"] = {"lr": gd_lr, "teleport_at": list(schedule.at_steps),
                           "ascent_steps": schedule.steps, "max_norm": schedule.max_norm}
    opts: dict[str, InnerOptimizer] = {
        "GD": GD(gd_lr),
        "Adam": Adam(adam_lr),
        "GD+teleport": GD(gd_lr, schedule, name="GD+teleport"),
    }
    return opts, info


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"


def markdown_table(result: EvalResult) -> str:
    """The summary as a Markdown table, one row per optimizer."""
    final = result.n_steps
    main = result.main or "main"
    head = [f"median@{s}" for s in result.steps[:-1]]
    head += [f"median@{final} [95% CI]", f"mean@{final} [95% CI]", "steps to threshold",
             "ms/step", f"win rate of {main}"]
    lines = ["| optimizer | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    m = result.n_problems
    for name in result.names:
        s = result.summary[name]
        cells = [_fmt(s["loss"][step]["median"]) for step in result.steps[:-1]]
        last = s["loss"][final]
        for key in ("median", "mean"):
            lo, hi = last[f"{key}_ci"]
            cells.append(f"{_fmt(last[key])} [{_fmt(lo)}, {_fmt(hi)}]")
        reach = s["steps_to_threshold"]
        never = f" ({reach['never']}/{m} never)" if reach["never"] else ""
        cells.append(("never" if math.isinf(reach["median"]) else f"{reach['median']:g}") + never)
        cells.append(f"{s['ms_per_step']:.3g}")
        rate = s["win_rate_of_main"]
        cells.append("-" if rate is None else f"{rate:.2f} ({s['wins_of_main']}/{m})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _header(result: EvalResult) -> str:
    main = f"; main optimizer: {result.main}" if result.main else ""
    return (
        f"M = {result.n_problems} test problems, N = {result.n_steps} inner steps; loss "
        f"threshold {_fmt(result.threshold)} ({result.threshold_source}){main}.\n"
        f"Medians and means over problems with 95% percentile-bootstrap intervals "
        f"({result.n_boot} resamples); a diverged run counts as an infinite loss. "
        f"Win rate: fraction of problems where the main optimizer ends with a lower loss.\n"
    )


def _bands(result: EvalResult) -> dict[str, dict[str, np.ndarray]]:
    return {
        name: {
            "median": quantile(result.losses[name], 0.5, axis=1),
            "q25": quantile(result.losses[name], 0.25, axis=1),
            "q75": quantile(result.losses[name], 0.75, axis=1),
        }
        for name in result.names
    }


def _jsonable(x: Any) -> Any:
    """Strict JSON: non-finite floats become the strings "inf", "-inf", "nan"."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else str(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _plot(result: EvalResult, bands: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    # Figure without pyplot: renders with Agg and leaves the caller's backend alone.
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    by_step, by_time = fig.subplots(1, 2)
    steps = np.arange(result.n_steps + 1)
    for name in result.names:
        b = bands[name]
        clean = {k: np.where(np.isfinite(v), v, np.nan) for k, v in b.items()}
        ms = 1000.0 * result.seconds[name].numpy()
        for ax, x in ((by_step, steps), (by_time, ms)):
            (line,) = ax.plot(x, clean["median"], label=name)
            ax.fill_between(x, clean["q25"], clean["q75"], color=line.get_color(), alpha=0.2,
                            linewidth=0)
    by_step.set_xlabel("inner step")
    by_time.set_xlabel("wall time (ms)")
    for ax in (by_step, by_time):
        ax.set_yscale("log")
        ax.set_ylabel("loss (median, 25-75% band)")
        ax.grid(True, which="both", alpha=0.3)
    by_step.legend(fontsize="small")
    fig.suptitle(f"{result.n_problems} test problems")
    fig.savefig(path, dpi=120)


def _write_tensorboard(result: EvalResult, bands: dict[str, dict[str, np.ndarray]],
                       table: str, tb_dir: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter  # heavy; only needed for this output

    start = time.time()
    for name in result.names:
        median = bands[name]["median"]
        seconds = result.seconds[name].numpy()
        writer = SummaryWriter(log_dir=str(tb_dir / name.replace("/", "_")))
        last_step_at_ms: dict[int, int] = {}
        for t, value in enumerate(median):
            if not (math.isfinite(value) and value > 0):
                continue
            # walltime = evaluation time, so TensorBoard's "Relative" axis shows loss vs time too.
            writer.add_scalar("eval/log10_median_loss", math.log10(value), t,
                              walltime=start + float(seconds[t]))
            last_step_at_ms[int(1000.0 * seconds[t])] = t
        # Many fast steps share one integer millisecond: keep the latest state reached in it.
        for ms, t in last_step_at_ms.items():
            writer.add_scalar("eval/log10_median_loss_vs_ms", math.log10(median[t]), ms,
                              walltime=start + float(seconds[t]))
        writer.close()
    writer = SummaryWriter(log_dir=str(tb_dir))
    writer.add_text("eval/table", table)
    writer.close()


def write_report(
    result: EvalResult, out_dir: Path | str, tb_writer_dir: Path | str | None = None
) -> dict[str, Path]:
    """Write results.json, results.md and curves.png into ``out_dir`` and, if
    ``tb_writer_dir`` is given, TensorBoard scalars under ``tb_writer_dir/<optimizer name>/``
    (eval/log10_median_loss vs step, eval/log10_median_loss_vs_ms vs integer milliseconds) and
    the table as text eval/table under ``tb_writer_dir`` itself.

    In results.json non-finite numbers are the strings "inf" / "nan" (strict JSON).
    Returns the paths written: keys "json", "markdown", "curves" and, with TensorBoard, "tb".
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bands = _bands(result)
    table = markdown_table(result)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md",
             "curves": out_dir / "curves.png"}
    payload = {
        "metadata": result.metadata,
        "n_problems": result.n_problems,
        "n_steps": result.n_steps,
        "steps": result.steps,
        "threshold": result.threshold,
        "threshold_source": result.threshold_source,
        "main": result.main,
        "n_boot": result.n_boot,
        "optimizers": result.names,
        "summary": result.summary,
        "curves": {n: {**bands[n], "seconds": result.seconds[n].numpy()} for n in result.names},
    }
    paths["json"].write_text(json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n")
    paths["markdown"].write_text("# Evaluation\n\n" + _header(result) + "\n" + table)
    _plot(result, bands, paths["curves"])
    if tb_writer_dir is not None:
        paths["tb"] = Path(tb_writer_dir)
        _write_tensorboard(result, bands, table, paths["tb"])
    return paths


def run_evaluation(
    checkpoint: str | Path,
    baseline_checkpoints: Sequence[str | Path] = (),
    *,
    n_problems: int = 64,
    n_steps: int = 100,
    seed: int = 0,
    threshold: float | None = None,
    tune: bool = True,
    out_dir: str | Path,
    device: str = "cpu",
) -> tuple[EvalResult, dict[str, Path]]:
    """The whole evaluation of eval_meta.py: load the checkpoints (all of them before running
    anything: a missing or broken one raises CheckpointError), build the task family stored in
    the main checkpoint, tune GD and Adam on ``n_problems`` validation problems, run everything
    on ``n_problems`` test problems (seed ``seed``) and write the report into ``out_dir``
    (TensorBoard under ``out_dir/tb``, whose previous event files are replaced)."""
    from .checkpoint import CheckpointError, load_optimizer

    main_opt, main_meta = load_optimizer(checkpoint, device)
    learned = {main_opt.name: (main_opt, main_meta, str(checkpoint))}
    for path in baseline_checkpoints:
        opt, meta = load_optimizer(path, device)
        if meta["task"] != main_meta["task"]:
            raise CheckpointError(
                f"{path} was trained on task {meta['task']}, but {checkpoint} on "
                f"{main_meta['task']}: evaluate checkpoints of one task family together"
            )
        if opt.name in learned:
            raise CheckpointError(f"{path}: a second {opt.name} checkpoint (first: "
                                  f"{learned[opt.name][2]})")
        learned[opt.name] = (opt, meta, str(path))
    family = MLPTaskFamily(**main_meta["task"])
    test = family.sample(n_problems, seed, "test").to(device)
    val = family.sample(n_problems, seed, "val").to(device) if tune else None
    hand, tuning = baselines(val, n_steps, tune=tune)
    opts: dict[str, InnerOptimizer] = {**hand, **{n: v[0] for n, v in learned.items()}}
    metadata = {
        "checkpoints": {n: {"path": v[2], "variant": v[1]["variant"],
                            "meta_step": v[1]["meta_step"]} for n, v in learned.items()},
        "task": main_meta["task"], "seed": seed, "baselines": tuning,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    main = MAIN_NAME if MAIN_NAME in opts else main_opt.name
    result = evaluate(opts, test, n_steps, threshold, main=main, metadata=metadata)
    tb = Path(out_dir) / "tb"
    # A replaced report must not keep the old curves: TensorBoard would merge both into one run.
    for stale in [*tb.glob("events.out.tfevents.*"), *tb.glob("*/events.out.tfevents.*")]:
        stale.unlink()
    return result, write_report(result, out_dir, tb)
