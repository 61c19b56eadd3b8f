"""Reports of an evaluation: the Markdown table, and results.json, results.md, curves.png and
TensorBoard scalars written by ``write_report``."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ..stats import quantile
from .summaries import EvalResult
from .tuning import LABELS

__all__ = ["RESERVED_KEYS", "jsonable", "markdown_table", "write_report"]

#: top-level keys of results.json besides the optimizers
RESERVED_KEYS = frozenset({"num_inits", "steps", "seed", "widths", "n_samples", "init",
                           "optimizers", "learned", "report_steps", "threshold",
                           "threshold_source", "n_boot", "metadata"})


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"


def _with_ci(stat: Mapping[str, Any], key: str) -> str:
    """"value [lo, hi]" of ``key`` ("median" or "mean") of a ``_centre`` summary."""
    lo, hi = stat[f"{key}_ci"]
    return f"{_fmt(stat[key])} [{_fmt(lo)}, {_fmt(hi)}]"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def markdown_table(result: EvalResult) -> str:
    """The summary as Markdown: median and mean loss with 95% intervals at the reported steps,
    steps to the threshold, divergences and time per step, and the win rates of the learned
    optimizers against every other optimizer."""
    m, names = result.n_problems, result.names
    lines: list[str] = []
    for key, title in (("median", "Median"), ("mean", "Mean")):
        lines += [f"{title} loss over the {m} problems [95% bootstrap interval]", ""]
        rows = []
        for name in names:
            cells = [_with_ci(result.summary[name]["loss"][step], key) for step in result.steps]
            rows.append([name, result.labels[name], *cells])
        lines += _table(["name", "optimizer", *(f"step {s}" for s in result.steps)], rows)
        lines.append("")
    rows = []
    for name in names:
        s = result.summary[name]
        reach = s["steps_to_threshold"]
        rows.append([name, ("never" if math.isinf(reach["median"]) else f"{reach['median']:g}"),
                     f"{reach['never']}/{m}", f"{s['diverged']}/{m}", f"{s['ms_per_step']:.3g}",
                     str(s["at_time"]["step"]), _fmt(s["at_time"]["median"])])
    budget = result.summary[names[0]]["at_time"]["seconds"]
    lines += [f"Steps to reach loss {_fmt(result.threshold)} (median over problems), problems "
              f"that never reach it or diverge, wall-clock time per step, and the steps done and "
              f"median loss reached within {budget:.3g} s (the whole run of the fastest "
              f"{'learned ' if result.learned else ''}optimizer): loss per wall-clock time", ""]
    lines += _table(["name", "steps to threshold", "never reached", "diverged", "ms/step",
                     f"steps in {budget:.3g} s", "median loss then"], rows)
    if "held_out" in result.summary[names[0]]:
        lines += ["", f"Generalization after step {result.n_steps}: the optimizee's loss per "
                  "held-out sample and its held-out accuracy, median and mean over the "
                  f"{m} problems [95% bootstrap interval]", ""]
        rows = []
        for name in names:
            held = result.summary[name]["held_out"]
            rows.append([name, *(_with_ci(held[metric], key) for metric in ("loss", "accuracy")
                                 for key in ("median", "mean"))])
        lines += _table(["name", "held-out loss, median", "mean", "held-out accuracy, median",
                         "mean"], rows)
    guarded = [n for n in names if "guard" in result.summary[n]]
    if guarded:
        lines += ["", "Loss guard: the fraction of all steps it refused, the problems on which it "
                  "refused any, and, beside them, the problems that diverged or ended no lower "
                  "than they started", ""]
        rows = [[n, f"{result.summary[n]['guard']['refused_fraction']:.3f}",
                 f"{result.summary[n]['guard']['problems_refused']}/{m}",
                 f"{result.summary[n]['diverged']}/{m}",
                 f"{result.summary[n]['not_improved']}/{m}"] for n in guarded]
        lines += _table(["name", "steps refused", "problems refused", "diverged",
                         "not improved"], rows)
    if result.learned:
        lines += ["", f"Win rate at step {result.n_steps}: fraction of the {m} problems on which "
                  "the row's optimizer ends with a strictly lower loss than the column's", ""]
        rows = []
        for name in result.learned:
            wins = result.summary[name]["win_rate"]
            rows.append([name, *("-" if o == name else
                                 f"{wins[o]['rate']:.2f} ({wins[o]['wins']}/{m})" for o in names)])
        lines += _table(["learned \\ vs", *names], rows)
    return "\n".join(lines) + "\n"


def _header(result: EvalResult) -> str:
    meta = result.metadata
    task = meta.get("task")
    where = f" of the task family {task}" if task else ""
    return (
        f"M = {result.n_problems} unseen initializations{where}, N = {result.n_steps} inner "
        f"steps; loss threshold {_fmt(result.threshold)} ({result.threshold_source}).\n"
        f"Medians and means over problems with 95% percentile-bootstrap intervals "
        f"({result.n_boot} resamples); a diverged run counts as an infinite loss.\n"
        + _step_sizes(meta.get("baselines") or {})
    )


def _step_sizes(tuning: Mapping[str, Any]) -> str:
    """One line on the baselines' step sizes: searched range, and a warning where the choice
    lies at the edge of it or diverges somewhere (the baseline is then not really tuned)."""
    parts = []
    for key, t in tuning.items():
        if key == "gd_tele" or "lr" not in t:
            continue
        lr = t["lr"]
        shown = str(list(lr)) if isinstance(lr, (list, tuple)) else f"{lr:.3g}"
        text = f"{LABELS.get(key, key)} {shown}"
        if "searched" in t:
            lo, hi = t["searched"]
            text += f" (searched {lo:.3g} .. {hi:.3g})"
            if t.get("at_edge"):
                text += " **at the edge of the searched range**"
            if not t.get("stable", True):
                text += " **diverges on some validation problems**"
        elif not t.get("tuned", True):
            text += " (fixed, not tuned)"
        parts.append(text)
    return f"Baseline step sizes: {'; '.join(parts)}.\n" if parts else ""


def _bands(result: EvalResult) -> dict[str, dict[str, np.ndarray]]:
    return {
        name: {
            "median": quantile(result.losses[name], 0.5, axis=1),
            "q25": quantile(result.losses[name], 0.25, axis=1),
            "q75": quantile(result.losses[name], 0.75, axis=1),
        }
        for name in result.names
    }


def jsonable(x: Any) -> Any:
    """Strict JSON: non-finite floats become the strings "inf", "-inf", "nan"."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, torch.Tensor):
        return jsonable(x.tolist())
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
            (line,) = ax.plot(x, clean["median"], label=result.labels[name])
            ax.fill_between(x, clean["q25"], clean["q75"], color=line.get_color(), alpha=0.2,
                            linewidth=0)
    by_step.set_xlabel("inner step")
    by_time.set_xlabel("wall time (ms)")
    for ax in (by_step, by_time):
        ax.set_yscale("log")
        ax.set_ylabel("loss (median, 25-75% band)")
        ax.grid(True, which="both", alpha=0.3)
    by_step.legend(fontsize="small")
    fig.suptitle(f"{result.n_problems} unseen initializations")
    fig.savefig(path, dpi=120)


def _write_tensorboard(result: EvalResult, bands: dict[str, dict[str, np.ndarray]],
                       table: str, tb_dir: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter  # heavy; only needed for this output

    start = time.time()
    for name in result.names:
        median = bands[name]["median"]
        seconds = result.seconds[name].numpy()
        writer = SummaryWriter(log_dir=str(tb_dir / name))
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
    ``tb_writer_dir`` is given, TensorBoard scalars under ``tb_writer_dir/<name>/``, one run per
    optimizer (eval/log10_median_loss vs step, eval/log10_median_loss_vs_ms vs integer
    milliseconds) and the table as text eval/table under ``tb_writer_dir`` itself.

    results.json holds, under each optimizer's name: ``label``, ``loss_median``, ``loss_mean``,
    ``loss_q25``, ``loss_q75`` (lists of N+1: index t = loss after t steps), ``seconds`` (N+1),
    ``final_losses`` (M, one per problem), ``ms_per_step`` and ``summary`` (the intervals,
    steps to threshold, divergences and, for learned optimizers, win rates). Top level:
    ``num_inits``, ``steps``, ``seed``, ``widths``, ``n_samples``, ``init`` (from the
    metadata), ``optimizers`` (names in order), ``learned``, ``report_steps``, ``threshold``,
    ``threshold_source``, ``n_boot``, ``metadata``. Non-finite numbers are the strings
    "inf" / "nan" (strict JSON).
    Returns the paths written: keys "json", "markdown", "curves" and, with TensorBoard, "tb".
    """
    clash = [n for n in result.names if n in RESERVED_KEYS]
    if clash:
        raise ValueError(f"optimizer names {clash} clash with the top-level keys of results.json")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bands = _bands(result)
    table = markdown_table(result)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md",
             "curves": out_dir / "curves.png"}
    task = result.metadata.get("task", {})
    payload: dict[str, Any] = {
        "num_inits": result.n_problems,
        "steps": result.n_steps,
        "seed": result.metadata.get("seed"),
        "widths": task.get("widths"),
        "n_samples": task.get("n_samples"),
        "init": task.get("init"),
        "optimizers": result.names,
        "learned": result.learned,
        "report_steps": result.steps,
        "threshold": result.threshold,
        "threshold_source": result.threshold_source,
        "n_boot": result.n_boot,
        "metadata": result.metadata,
    }
    for name in result.names:
        payload[name] = {
            "label": result.labels[name],
            "loss_median": bands[name]["median"],
            "loss_mean": result.losses[name].mean(dim=1),
            "loss_q25": bands[name]["q25"],
            "loss_q75": bands[name]["q75"],
            "seconds": result.seconds[name],
            "final_losses": result.losses[name][-1],
            "ms_per_step": result.summary[name]["ms_per_step"],
            "summary": result.summary[name],
        }
    paths["json"].write_text(json.dumps(jsonable(payload), indent=2, allow_nan=False) + "\n")
    paths["markdown"].write_text("# Evaluation\n\n" + _header(result) + "\n" + table)
    _plot(result, bands, paths["curves"])
    if tb_writer_dir is not None:
        paths["tb"] = Path(tb_writer_dir)
        _write_tensorboard(result, bands, table, paths["tb"])
    return paths
