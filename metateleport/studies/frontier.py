"""The cost-quality frontier of m1's and m2's LSTM sizes (issue 19 item 4; the studies with
"frontier" in arms.py: ``frontier`` on the paper's family, ``frontier_general`` on the task
distribution), from the committed run summaries alone.

Cost: the LSTM gate FLOPs per coordinate and step of m1 and of m2, read off the arm's own
optimizer (its config and overrides, built untrained; its inputs decide the first layer's width:
configs/update_tele.yaml's m1 and m2 read the 2 log-sign features, the generalist's m2 more),
and the meta-parameters. The runs' own timings are not used: they were taken on a machine
shared with other jobs, where a smaller LSTM's evaluation was timed slower than a larger one's;
the bench times sizes side by side (docs/benchmarks.md).
Quality: the median test loss at the last step, and each size paired with the present one
(20 units, 2 layers) on the same seeds and test problems (stats.paired_log_ratio).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from torch import nn

from ..bench_floor import lstm_flops
from ..stats import median
from .arms import STUDIES

__all__ = ["PRESENT", "arm_cost", "arm_size", "frontier_lines", "frontier_plot", "lstm_cost"]

#: the arm of the present size, which every other one is paired with
PRESENT = "h20-l2"


def arm_size(arm: str) -> tuple[int, int]:
    """(hidden units, layers) of a frontier arm "h<H>-l<L>"."""
    h, n = arm.split("-")
    return int(h.removeprefix("h")), int(n.removeprefix("l"))


def lstm_cost(net: nn.Module | None) -> int:
    """Forward gate FLOPs per coordinate and step of the LSTMs inside ``net`` (m1 or m2),
    bench_floor.lstm_flops at one coordinate; 0 for None."""
    if net is None:
        return 0
    return sum(lstm_flops(1, m.input_size, m.hidden_size, m.num_layers)
               for m in net.modules() if isinstance(m, nn.LSTM))


@cache
def arm_cost(study: str, arm: str) -> dict[str, int]:
    """m1's and m2's gate FLOPs per coordinate ("m1", "m2") and the meta-parameters ("params")
    of the optimizer that ``arm`` of ``study`` meta-trains (its config and overrides)."""
    from ..config import build_optimizer, load_config

    config, overrides, _ = STUDIES[study]["arms"][arm]
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / f"{config}.yaml",
                      list(overrides))
    opt = build_optimizer(cfg)
    return {"m1": lstm_cost(opt.update_net), "m2": lstm_cost(opt.group_net),
            "params": sum(p.numel() for p in opt.parameters())}


def _rows(study: str, runs: Mapping[str, Mapping[int, dict]]):
    from .tables import compare

    for arm, by_seed in runs.items():
        hidden, layers = arm_size(arm)
        seeds = sorted(by_seed)
        test = [median(by_seed[s]["test_final"]) for s in seeds]
        paired = (compare(runs, arm, PRESENT)
                  if arm != PRESENT and PRESENT in runs else None)
        yield {"arm": arm, "hidden": hidden, "layers": layers, "seeds": seeds, "test": test,
               "median": median(test), **arm_cost(study, arm), "paired": paired}


def frontier_lines(study: str, runs: Mapping[str, Mapping[int, dict]]) -> list[str]:
    """The frontier table of ``study`` (a study with "frontier"), or [] for any other."""
    if not STUDIES[study].get("frontier") or not runs:
        return []
    lines = ["", "Cost and quality per size (LSTM gate FLOPs per coordinate and step, of m1 and "
             f"of m2; each size paired with `{PRESENT}` on the same seeds and test "
             "problems, A/B < 1: it ends lower):", "",
             "| arm | units x layers | FLOPs per coordinate, m1 / m2 | meta-parameters | test "
             "median per seed | median over seeds | vs the present: A/B [95% CI] | seeds won |",
             "|---|---|---|---|---|---|---|---|"]
    for row in sorted(_rows(study, runs), key=lambda r: r["m1"]):
        c = row["paired"]
        vs = ("-" if c is None else
              f"{math.exp(c['median']):.3g} [{math.exp(c['ci'][0]):.3g}, "
              f"{math.exp(c['ci'][1]):.3g}]")
        won = "-" if c is None else f"{c['seed_wins']}/{c['seeds']}"
        lines.append(f"| `{row['arm']}` | {row['hidden']} x {row['layers']} | {row['m1']:,} / "
                     f"{row['m2']:,} | {row['params']:,} | "
                     f"{' / '.join(f'{v:.3g}' for v in row['test'])} | {row['median']:.3g} | "
                     f"{vs} | {won} |")
    return lines


def frontier_plot(study: str, runs: Mapping[str, Mapping[int, dict]], out: Path) -> Path | None:
    """Median test loss at the last step (per seed, and the median over seeds) against m1's gate
    FLOPs per coordinate, one marker per layer count, written to ``out`` (png). None, and
    nothing written, when matplotlib is not installed or nothing has finished."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = list(_rows(study, runs))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for layers, marker in ((1, "o"), (2, "s")):
        mine = sorted((r for r in rows if r["layers"] == layers), key=lambda r: r["m1"])
        if not mine:
            continue
        ax.plot([r["m1"] for r in mine], [r["median"] for r in mine], marker=marker,
                label=f"{layers} layer{'s' if layers > 1 else ''} (median over seeds)")
        for r in mine:
            ax.scatter([r["m1"]] * len(r["test"]), r["test"], marker=marker, s=12,
                       alpha=0.4, color=ax.lines[-1].get_color())
            ax.annotate(f"H={r['hidden']}", (r["m1"], r["median"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("m1's LSTM gate FLOPs per coordinate and step")
    ax.set_ylabel("median test loss at step 100")
    ax.set_title(f"m1 and m2 sizes, {STUDIES[study]['frontier']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
