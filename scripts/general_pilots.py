"""One-seed pilots of the teleporting generalist's options, summarized from their TensorBoard
logs into studies/general/pilots/<name>.json (committed) and a table.

A pilot meta-trains configs/general_update_tele.yaml at train.seed 0 with its overrides (the
study's run of seed 0 without them is the reference) and is stopped after a few validations:
it chooses options on validation problems, it is no test result.

    python train_meta.py --config configs/general_update_tele.yaml --seed 0 \\
        --out runs/pilot/<name> --set train.threads=1 --set <override> ...
    python scripts/general_pilots.py summarize runs/pilot/<name> ... (writes the JSON)
    python scripts/general_pilots.py table                           (from the JSON alone)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from metateleport.studies.general import validation_history

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "studies" / "general" / "pilots"
#: the pilot every other is compared with
REFERENCE = "reference_seed0"


def summarize(folder: Path) -> dict:
    """val/score per validation and train/guard_refused per 100 meta-steps of run ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    val = validation_history(folder)
    events = EventAccumulator(str(folder / "tb"))
    events.Reload()
    refused = events.Scalars("train/guard_refused")
    steps = np.array([e.step for e in refused])
    values = np.array([e.value for e in refused])
    per_100 = {int(a): float(values[(steps > a) & (steps <= a + 100)].mean())
               for a in range(0, int(steps.max()), 100) if ((steps > a) & (steps <= a + 100)).any()}
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    return {"name": folder.name, "config": cfg, "val_score": val,
            "refused_per_100_meta_steps": per_100, "meta_steps": int(steps.max())}


def _differences(cfg: dict, ref: dict) -> str:
    """section.key=value for every key of ``cfg`` that differs from ``ref``."""
    return ", ".join(f"{sec}.{k}={v}" for sec in cfg for k, v in cfg[sec].items()
                     if ref.get(sec, {}).get(k) != v and not (sec == "train" and k == "seed"))


def table(folder: Path = OUT) -> str:
    """Markdown from the JSON summaries alone; each pilot's config is shown by its differences
    from the reference (``REFERENCE``.json, the study's LSTM(update,tele) seed 0)."""
    ref = json.loads((folder / f"{REFERENCE}.json").read_text())["config"]
    rows = ["| pilot | differences from the reference | meta-steps | validation score at "
            "meta-step 100 / 200 / 300 / 400 | refused in training, per 100 meta-steps |",
            "|---|---|---|---|---|"]
    for f in sorted(folder.glob("*.json")):
        d = json.loads(f.read_text())
        val = " / ".join(f"{d['val_score'][str(s)]:.2f}" if str(s) in d["val_score"] else "-"
                         for s in (100, 200, 300, 400))
        refused = " ".join(f"{v:.2f}" for v in d["refused_per_100_meta_steps"].values())
        rows.append(f"| {d['name']} | {_differences(d['config'], ref) or '-'} | "
                    f"{d['meta_steps']} | {val} | {refused} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["summarize", "table"])
    p.add_argument("folders", nargs="*", type=Path)
    args = p.parse_args(argv)
    if args.what == "summarize":
        OUT.mkdir(parents=True, exist_ok=True)
        for folder in args.folders:
            data = summarize(folder)
            (OUT / f"{folder.name}.json").write_text(json.dumps(data, indent=1) + "\n")
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
