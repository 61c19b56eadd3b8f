"""The trajectories that the behaviour-preservation test pins (tests/test_shipped_trajectories.py).

``cases()`` builds every optimizer the test replays: each shipped checkpoint on a few test
problems of its own family, the hand-designed baselines with and without teleports, and the
oracle. ``record()`` writes their losses to tests/data/shipped_trajectories.json; run it only
when a change of behaviour is intended, and say so in the commit:

    python -m tests.trajectory_record
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).resolve().parent / "data" / "shipped_trajectories.json"
N_PROBLEMS, N_STEPS = 3, 60


def _checkpoint_cases():
    from metateleport.checkpoint import load_optimizer
    from metateleport.tasks import make_family

    for path in sorted((REPO / "checkpoints").glob("*.pt")):
        opt, meta = load_optimizer(path)
        family = make_family(meta["task"])
        yield f"checkpoint:{path.stem}", opt, family.sample(N_PROBLEMS, 0, "test")


def _hand_cases():
    from metateleport.optimizers import GD, Adam, GDSchedule, TeleportSchedule, WithTeleport
    from metateleport.oracle import with_oracle
    from metateleport.tasks import make_family
    from metateleport.teleport import Schedule

    paper = make_family({}).sample(N_PROBLEMS, 0, "test")
    imbalanced = make_family({"unit_span": 10.0}).sample(N_PROBLEMS, 0, "test")
    balance = TeleportSchedule(at_steps=(0,), kind="balance")
    ascent = TeleportSchedule(at_steps=(0, 30), steps=8, step_size=None, max_norm=0.01)
    every = TeleportSchedule(at_steps=None, kind="ascent", steps=2, step_size=0.5,
                             max_norm=0.01, every=5, first=40)
    rand = TeleportSchedule(at_steps=None, kind="random", max_norm=0.01, every=3)
    yield "gd", GD(3e-4), paper
    yield "adam", Adam(1e-2), paper
    yield "gd_ascent", GD(3e-4, ascent), paper
    yield "gd_ascent_every", GD(3e-4, every), paper
    yield "adam_random", Adam(1e-2, teleports=rand), paper
    yield "gd_schedule", GDSchedule(1e-4, 5e-3, 1), paper
    yield "gd_balance", GD(3e-4, balance), imbalanced
    yield "adam_balance", Adam(1e-2, teleports=balance), imbalanced
    yield "oracle_gd", with_oracle(GD(3e-4), 0.01, Schedule(10, 30), horizon=3, iters=3), paper[:2]
    from metateleport.checkpoint import load_optimizer

    update, _ = load_optimizer(REPO / "checkpoints" / "update.pt")
    yield "update+balance", WithTeleport(update, balance), imbalanced


def cases():
    """(name, optimizer, problems) for every pinned trajectory."""
    yield from _checkpoint_cases()
    yield from _hand_cases()


def losses(opt, problems) -> list[list[float]]:
    """The (N_STEPS + 1, B) losses of ``opt`` on ``problems``, torch's generator seeded."""
    from metateleport.optimizers import run

    torch.manual_seed(0)
    steps = 30 if "oracle" in opt.name else N_STEPS
    return run(opt, problems, steps).losses.tolist()


def record() -> None:
    torch.set_num_threads(1)
    out = {name: losses(opt, problems) for name, opt, problems in cases()}
    RECORD.write_text(json.dumps(out, indent=0) + "\n")
    print(f"wrote {len(out)} trajectories to {RECORD}")


if __name__ == "__main__":
    record()
