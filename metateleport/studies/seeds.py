"""The seed study of scripts/seed_study.py: variants meta-trained over several seeds, each run
scored on validation and test problems, each variant's run selected on validation.

Every run is scored on M problems of the validation stream at seed 0 (selection only) and M
problems of the test stream at seed 0 (the problems eval_meta.py uses by default; reported,
never used to select anything), by the loss at step N.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_optimizer
from ..evaluation import score
from ..stats import quantile
from ..tasks import make_family
from .selection import best_seed

__all__ = ["score_splits", "select_variant"]


@torch.no_grad()
def score_splits(params: Path, problems: int) -> dict[str, dict[str, Any]]:
    """{"val": ..., "test": ...}, each {"median", "mean", "diverged"} of the loss at the last
    step of ``problems`` problems of that split."""
    opt, meta = load_optimizer(params)
    family = make_family(meta["task"])
    n_steps = meta["config"]["train"]["n_steps"]
    out = {}
    for split in ("val", "test"):
        final = score({split: opt.eval()}, family.sample(problems, 0, split), n_steps)[split].final
        out[split] = {"median": float(quantile(final, 0.5)),
                      "mean": float(final.double().mean()),
                      "diverged": int((~torch.isfinite(final)).sum())}
    return out


def select_variant(runs: Mapping[int, Mapping[str, Any]], overrides: Sequence[str],
                   problems: int) -> tuple[int, list[str]]:
    """Select the seed of one variant's ``runs`` (seed -> {"run": folder, "val", "test"}) with
    the lowest validation median, write <variant folder>/study.json, and return (that seed, the
    lines of the printed table)."""
    best = best_seed({s: r["val"]["median"] for s, r in runs.items()})
    folder = Path(runs[best]["run"]).parent
    (folder / "study.json").write_text(json.dumps(
        {"overrides": list(overrides), "problems": problems, "selected_seed": best,
         "runs": runs}, indent=2) + "\n")
    lines = []
    for seed, r in runs.items():
        mark = "  <- selected (lowest validation median)" if seed == best else ""
        lines.append(f"{folder.name:<28} seed {seed}: val {r['val']['median']:.3g} "
                     f"({r['val']['mean']:.3g})  test {r['test']['median']:.3g} "
                     f"({r['test']['mean']:.3g}) diverged {r['test']['diverged']}{mark}")
    return best, lines
