"""The trajectories that the behaviour-preservation test pins (tests/test_shipped_trajectories.py).

``cases()`` builds every optimizer the test replays: each shipped checkpoint on a few test
problems of its own family, the hand-designed baselines with and without teleports, and the
oracle, all in float64 (DTYPE). ``record()`` writes their losses to
tests/data/shipped_trajectories.json; run it only when a change of behaviour is intended, and
say so in the commit:

    python -m tests.trajectory_record
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).resolve().parent / "data" / "shipped_trajectories.json"
#: problems per case; steps of a hand-designed optimizer (the oracle's: 30) and of a learned one
N_PROBLEMS, N_STEPS, LEARNED_STEPS = 3, 60, 10
#: The pins run in float64 and compare to RTOL, because rounding differs between CPUs: the
#: AVX-512 and the default (non-vector) kernels of one torch build differ from the first step,
#: in float32 and float64 alike, and a learned optimizer amplifies that about tenfold every two
#: or three steps (float64: 1e-16 to above 1e-9 by step 12-54, to 1e-3 by 18-59; float32 reaches
#: 2-70% of the loss by step 60), so a float32 or a long record pins one machine. The
#: hand-designed optimizers agree bit for bit over 60 steps; the learned ones to below 1e-9 over
#: LEARNED_STEPS (measured with ATEN_CPU_CAPABILITY=default against AVX-512).
DTYPE = torch.float64
RTOL = 1e-7


def _checkpoint_cases():
    from metateleport.checkpoint import load_optimizer
    from metateleport.tasks import make_family

    for path in sorted((REPO / "checkpoints").glob("*.pt")):
        opt, meta = load_optimizer(path)
        opt = opt.to(DTYPE)
        family = make_family(meta["task"], DTYPE)
        yield f"checkpoint:{path.stem}", opt, family.sample(N_PROBLEMS, 0, "test"), LEARNED_STEPS


def _hand_cases():
    from metateleport.optimizers import GD, Adam, GDSchedule, TeleportSchedule, WithTeleport
    from metateleport.oracle import with_oracle
    from metateleport.tasks import make_family
    from metateleport.teleport import Schedule

    paper = make_family({}, DTYPE).sample(N_PROBLEMS, 0, "test")
    imbalanced = make_family({"unit_span": 10.0}, DTYPE).sample(N_PROBLEMS, 0, "test")
    balance = TeleportSchedule(at_steps=(0,), kind="balance")
    ascent = TeleportSchedule(at_steps=(0, 30), steps=8, step_size=None, max_norm=0.01)
    every = TeleportSchedule(at_steps=None, kind="ascent", steps=2, step_size=0.5,
                             max_norm=0.01, every=5, first=40)
    rand = TeleportSchedule(at_steps=None, kind="random", max_norm=0.01, every=3)
    yield "gd", GD(3e-4), paper, N_STEPS
    yield "adam", Adam(1e-2), paper, N_STEPS
    yield "gd_ascent", GD(3e-4, ascent), paper, N_STEPS
    yield "gd_ascent_every", GD(3e-4, every), paper, N_STEPS
    yield "adam_random", Adam(1e-2, teleports=rand), paper, N_STEPS
    yield "gd_schedule", GDSchedule(1e-4, 5e-3, 1), paper, N_STEPS
    yield "gd_balance", GD(3e-4, balance), imbalanced, N_STEPS
    yield "adam_balance", Adam(1e-2, teleports=balance), imbalanced, N_STEPS
    oracle = with_oracle(GD(3e-4), 0.01, Schedule(10, 30), horizon=3, iters=3)
    yield "oracle_gd", oracle, paper[:2], 30
    from metateleport.checkpoint import load_optimizer

    update, _ = load_optimizer(REPO / "checkpoints" / "update.pt")
    yield "update+balance", WithTeleport(update.to(DTYPE), balance), imbalanced, LEARNED_STEPS


def cases():
    """(name, optimizer, problems, steps) for every pinned trajectory."""
    yield from _checkpoint_cases()
    yield from _hand_cases()


def losses(opt, problems, steps: int) -> list[list[float]]:
    """The (steps + 1, B) losses of ``opt`` on ``problems``, torch's generator seeded."""
    from metateleport.optimizers import run

    torch.manual_seed(0)
    return run(opt, problems, steps).losses.tolist()


def record() -> None:
    torch.set_num_threads(1)
    out = {name: losses(opt, problems, steps) for name, opt, problems, steps in cases()}
    RECORD.write_text(json.dumps(out, indent=0) + "\n")
    print(f"wrote {len(out)} trajectories to {RECORD}")


if __name__ == "__main__":
    record()
