"""Parked runs: an unfinished meta-training run's newest full checkpoint, its config and its
validation history so far, kept beside a study's committed summaries, so that a study stopped
with its session resumes on another machine where the run stopped instead of starting it again.

    <summaries>/<study>/<arm>/parked/s<seed>/config.yaml
                                             checkpoints/full_<meta-step>.pt
                                             validation.json     {meta-step: validation score}

``park`` copies a run folder there (at the end of a session; the files are committed),
``unpark`` copies it back into a run folder that is missing or behind (before the run resumes),
and ``validation_history`` reads a run's history across the machines it ran on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..checkpoint import latest_full

__all__ = ["HISTORY", "PARKED", "park", "unpark", "validation_history"]

#: the folder beside an arm's summaries that holds its parked runs
PARKED = "parked"
#: the validation history parked with a checkpoint, and copied beside a run resumed from it
HISTORY = "validation.json"
PARKED_HISTORY = "parked_validation.json"


def _step(checkpoint: Path) -> int:
    return int(checkpoint.stem.split("_")[-1])


def _newer(source: Path, target: Path) -> Path | None:
    """The newest full checkpoint of run folder ``source`` if ``target`` has none as new."""
    checkpoint, have = latest_full(source), latest_full(target)
    if checkpoint is None or (have is not None and _step(have) >= _step(checkpoint)):
        return None
    return checkpoint


def validation_history(folder: Path) -> dict[int, float]:
    """meta-step -> validation score (val/score, trainer.validation_score) of run ``folder``:
    the history parked with the checkpoint it resumed from (if it did), then its TensorBoard
    log's (which wins where both have a meta-step); the last entry is the final iterate's."""
    history: dict[int, float] = {}
    parked = folder / PARKED_HISTORY
    if parked.is_file():
        history.update({int(k): float(v) for k, v in json.loads(parked.read_text()).items()})
    if (folder / "tb").is_dir():
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(folder / "tb"))
        events.Reload()
        if "val/score" in events.Tags()["scalars"]:
            history.update({int(e.step): float(e.value) for e in events.Scalars("val/score")})
    return dict(sorted(history.items()))


def park(folder: Path, dest: Path) -> int | None:
    """Copy run ``folder``'s config, newest full checkpoint and validation history to ``dest``,
    replacing what was parked there. Returns the checkpoint's meta-step, or None (``dest``
    untouched) when the folder has no full checkpoint or ``dest`` holds one as new."""
    if (checkpoint := _newer(folder, dest)) is None:
        return None
    history = validation_history(folder)
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "checkpoints").mkdir(parents=True)
    shutil.copyfile(folder / "config.yaml", staging / "config.yaml")
    shutil.copyfile(checkpoint, staging / "checkpoints" / checkpoint.name)
    (staging / HISTORY).write_text(json.dumps({str(k): v for k, v in history.items()}) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return _step(checkpoint)


def unpark(dest: Path, folder: Path) -> int | None:
    """Copy the checkpoint parked at ``dest``, with its config and validation history, into run
    ``folder`` when the folder has no full checkpoint or only older ones (training then resumes
    from it: it is the newest). Returns its meta-step, or None (nothing copied)."""
    if (checkpoint := _newer(dest, folder)) is None:
        return None
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    if not (folder / "config.yaml").is_file():
        shutil.copyfile(dest / "config.yaml", folder / "config.yaml")
    shutil.copyfile(dest / HISTORY, folder / PARKED_HISTORY)
    shutil.copyfile(checkpoint, folder / "checkpoints" / checkpoint.name)
    return _step(checkpoint)
