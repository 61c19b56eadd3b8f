"""The cost-quality frontier of m1's and m2's LSTM sizes (issue 19 item 4; the study
``frontier`` of arms.py), from the committed run summaries alone.

Cost: the LSTM's gate FLOPs per coordinate and step (bench_floor.lstm_flops, with the log-sign
input's 2 features: the same count for m1 and m2 of configs/update_tele.yaml) and the
meta-parameters. The runs' own timings are not used: they were taken on a machine shared with
other jobs, where a smaller LSTM's evaluation was timed slower than a larger one's; the bench
times sizes side by side (docs/benchmarks.md).
Quality: the median test loss at the last step, and each size paired with the present one
(20 units, 2 layers) on the same seeds and test problems (stats.paired_log_ratio).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from ..bench_floor import lstm_flops
from ..stats import median
from .arms import STUDIES

__all__ = ["PRESENT", "arm_size", "frontier_lines", "frontier_plot", "meta_parameters"]

#: the arm of the present size, which every other one is paired with
PRESENT = "h20-l2"


def arm_size(arm: str) -> tuple[int, int]:
    """(hidden units, layers) of a frontier arm "h<H>-l<L>"."""
    h, n = arm.split("-")
    return int(h.removeprefix("h")), int(n.removeprefix("l"))


def meta_parameters(hidden: int, layers: int) -> int:
    """Meta-parameters of configs/update_tele.yaml's m1 and m2 at this size."""
    from ..config import build_optimizer, load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "update_tele.yaml",
                      [f"model.hidden_size={hidden}", f"model.num_layers={layers}"])
    return sum(p.numel() for p in build_optimizer(cfg).parameters())


def _rows(runs: Mapping[str, Mapping[int, dict]]):
    from .tables import compare

    for arm, by_seed in runs.items():
        hidden, layers = arm_size(arm)
        seeds = sorted(by_seed)
        test = [median(by_seed[s]["test_final"]) for s in seeds]
        paired = (compare(runs, arm, PRESENT)
                  if arm != PRESENT and PRESENT in runs else None)
        yield {"arm": arm, "hidden": hidden, "layers": layers, "seeds": seeds, "test": test,
               "median": median(test), "flops": lstm_flops(1, 2, hidden, layers),
               "paired": paired}


def frontier_lines(study: str, runs: Mapping[str, Mapping[int, dict]]) -> list[str]:
    """The frontier table of ``study`` (a study with "frontier"), or [] for any other."""
    if not STUDIES[study].get("frontier") or not runs:
        return []
    lines = ["", "Cost and quality per size (gate FLOPs per coordinate and step, the same for "
             f"m1 and m2; each size paired with `{PRESENT}` on the same seeds and test "
             "problems, A/B < 1: it ends lower):", "",
             "| arm | units x layers | FLOPs per coordinate | meta-parameters | test median "
             "per seed | median over seeds | vs the present: A/B [95% CI] | seeds won |",
             "|---|---|---|---|---|---|---|---|"]
    for row in sorted(_rows(runs), key=lambda r: r["flops"]):
        c = row["paired"]
        vs = ("-" if c is None else
              f"{math.exp(c['median']):.3g} [{math.exp(c['ci'][0]):.3g}, "
              f"{math.exp(c['ci'][1]):.3g}]")
        won = "-" if c is None else f"{c['seed_wins']}/{c['seeds']}"
        lines.append(f"| `{row['arm']}` | {row['hidden']} x {row['layers']} | {row['flops']:,} "
                     f"| {meta_parameters(row['hidden'], row['layers']):,} | "
                     f"{' / '.join(f'{v:.3g}' for v in row['test'])} | {row['median']:.3g} | "
                     f"{vs} | {won} |")
    return lines


def frontier_plot(runs: Mapping[str, Mapping[int, dict]], out: Path) -> Path | None:
    """Median test loss at the last step (per seed, and the median over seeds) against gate
    FLOPs per coordinate, one marker per layer count, written to ``out`` (png). None, and
    nothing written, when matplotlib is not installed or nothing has finished."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = list(_rows(runs))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for layers, marker in ((1, "o"), (2, "s")):
        mine = sorted((r for r in rows if r["layers"] == layers), key=lambda r: r["flops"])
        if not mine:
            continue
        ax.plot([r["flops"] for r in mine], [r["median"] for r in mine], marker=marker,
                label=f"{layers} layer{'s' if layers > 1 else ''} (median over seeds)")
        for r in mine:
            ax.scatter([r["flops"]] * len(r["test"]), r["test"], marker=marker, s=12,
                       alpha=0.4, color=ax.lines[-1].get_color())
            ax.annotate(f"H={r['hidden']}", (r["flops"], r["median"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("LSTM gate FLOPs per coordinate and step")
    ax.set_ylabel("median test loss at step 100")
    ax.set_title("m1 and m2 sizes, LSTM(update,tele), paper's family")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
