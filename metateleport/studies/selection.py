"""Selection on validation, and shipping what was selected.

Options are chosen on validation problems only, never on the test problems reported: of the arms
grouped under one name, the arm with the lowest median over seeds of the validation median
(``choose``); of one arm's (or one variant's) meta-training seeds, the seed with the lowest
validation median (``best_seed``), whose run folder ``ship`` copies to a checkpoint.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from ..stats import median
from .arms import STUDIES, StudyError, seeds_of

__all__ = ["best_seed", "choose", "complete", "ship", "ship_arm", "validation_key",
           "validation_score"]


def validation_score(by_seed: Mapping[int, dict]) -> float:
    """Median over seeds of the median validation loss at the last step."""
    return median([median(by_seed[s]["val_final"]) for s in sorted(by_seed)])


def complete(study: str, runs: Mapping[str, Mapping[int, dict]], arm: str) -> bool:
    """Every seed of ``arm`` has finished."""
    return len(runs.get(arm, {})) == len(seeds_of(study, arm))


def choose(study: str, runs: Mapping[str, Mapping[int, dict]]) -> dict[str, str]:
    """name -> the arm of its group with the best ``validation_score`` (only complete arms
    compete, so that a half-done arm is not chosen on fewer seeds)."""
    chosen = {}
    for name, arms in STUDIES[study]["choose"].items():
        have = [a for a in arms if complete(study, runs, a)]
        if have:
            chosen[name] = min(have, key=lambda a: validation_score(runs[a]))
    return chosen


def best_seed(validation: Mapping[int, float]) -> int:
    """The seed with the lowest validation median (validation[seed]); ties go to the earlier."""
    return min(validation, key=validation.__getitem__)


def validation_key(summary: Mapping) -> str:
    """The per-problem validation losses of a run summary that its seed is selected on: those of
    the loss it was meta-trained to lower (the held-out loss, or the training loss)."""
    return ("val_held_out_loss" if summary["config"]["train"].get("meta_loss_on") == "held_out"
            else "val_final")


def ship(folder: Path, dest: Path, name: str) -> None:
    """Copy the run in ``folder`` to ``dest``/NAME.pt (its params.pt) and NAME.yaml (its
    config.yaml)."""
    dest.mkdir(parents=True, exist_ok=True)
    for suffix, src in ((".pt", "params.pt"), (".yaml", "config.yaml")):
        shutil.copyfile(folder / src, dest / f"{name}{suffix}")


def ship_arm(study: str, item: str, runs: Mapping[str, Mapping[int, dict]], run_root: Path,
             dest: Path) -> str:
    """Ship the seed of an arm of ``study`` selected on validation: ``item`` is "ARM:NAME", the
    run RUN_ROOT/<study>/<arm>/s<seed> goes to ``dest``/NAME.pt and .yaml. Returns the line to
    print; raises StudyError if the arm has no finished runs or the run folder is missing."""
    arm, _, name = item.partition(":")
    if arm not in runs or not name:
        raise StudyError(f"--ship {item!r}: expected ARM:NAME with an arm of {study} that "
                         f"has finished runs ({', '.join(runs)})")
    key = validation_key(next(iter(runs[arm].values())))
    seed = best_seed({s: median(r[key]) for s, r in runs[arm].items()})
    folder = run_root / study / arm / f"s{seed}"
    if not (folder / "params.pt").is_file():
        raise StudyError(f"--ship {item!r}: {folder}/params.pt is not on this machine; "
                         "retrain it first (python scripts/teleport_study.py ... trains "
                         "runs whose summary is missing: move the summary aside)")
    ship(folder, dest, name)
    return (f"shipped {study}/{arm} seed {seed} (validation median "
            f"{median(runs[arm][seed][key]):.3g}, {key}) as checkpoints/{name}.pt")
