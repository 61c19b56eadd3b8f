"""Old import path of the inner loop (inner.py) and the hand-designed update rules
(baselines.py), with the old ways of attaching a teleport, each now one inner.Teleporting:

    GD(lr, TeleportSchedule(...)) / Adam(lr, teleports=...)   (the old ``teleports`` argument)
    WithTeleport(base, TeleportSchedule(...))
    TeleportSchedule(at_steps, steps, step_size, max_norm, kind, every, first)

New code composes ``inner.Teleporting(rule, move, teleport.Schedule(...))`` directly.
"""

from __future__ import annotations

from typing import Any

from . import baselines
from .baselines import GDSchedule, adam_update, gd_update
from .inner import (
    InnerOptimizer,
    LossAndGrad,
    State,
    StepContext,
    Teleporting,
    Trajectory,
    detach_state,
    inner_step,
    run,
)
from .teleport import HAND_TELEPORTS, Schedule, make_teleport

__all__ = [
    "GD",
    "Adam",
    "GDSchedule",
    "InnerOptimizer",
    "LossAndGrad",
    "State",
    "StepContext",
    "TeleportSchedule",
    "Trajectory",
    "WithTeleport",
    "adam_update",
    "detach_state",
    "gd_update",
    "inner_step",
    "on_schedule",
    "run",
]

#: the old name of teleport.HAND_TELEPORTS' keys
TELEPORT_KINDS = tuple(HAND_TELEPORTS)


def on_schedule(t: int, every: int = 1, first: int | None = None) -> bool:
    """Old spelling of teleport.Schedule(every, until=first).due(t)."""
    return Schedule(every, first).due(t)


class TeleportSchedule:
    """Old spelling of a hand-designed teleport with its schedule: ``kind`` "ascent" (``steps``,
    ``step_size``, ``max_norm``), "random" (norm ``max_norm``) or "balance", after the updates
    of the steps in ``at_steps``, or (``at_steps=None``) of every ``every``-th step while
    t < ``first``. Callable as a teleport on its own schedule."""

    def __init__(self, at_steps: tuple[int, ...] | None = (), steps: int = 8,
                 step_size: float | None = None, max_norm: float = 0.01, kind: str = "ascent",
                 every: int = 1, first: int | None = None):
        if kind not in HAND_TELEPORTS:
            raise ValueError(f"teleport kind must be one of {TELEPORT_KINDS}, got {kind!r}")
        options = {"ascent": {"steps": steps, "step_size": step_size, "norm": max_norm},
                   "random": {"norm": max_norm}, "balance": {}}[kind]
        self.kind, self.move = kind, make_teleport(kind, **options)
        self.schedule = Schedule(every, first, at_steps)
        self.at_steps, self.steps, self.step_size, self.max_norm = (
            self.schedule.at, steps, step_size, max_norm)

    def due(self, t: int) -> bool:
        return self.schedule.due(t)

    def __call__(self, weights, state, ctx):
        if not self.due(ctx.t):
            return weights, state
        return self.move(weights, state, ctx)


def _with(rule: Any, teleports: TeleportSchedule | None, name: str):
    if teleports is None:
        return rule
    return Teleporting(rule, teleports.move, teleports.schedule, name=name)


def WithTeleport(base: Any, teleports: TeleportSchedule, name: str = "") -> Teleporting:  # noqa: N802
    """Old spelling of Teleporting(base, teleports.move, teleports.schedule)."""
    return _with(base, teleports, name or f"{base.name}+{teleports.kind}")


def GD(lr: float = 3e-4, teleports: TeleportSchedule | None = None, name: str = "GD"):  # noqa: N802
    """baselines.GD, with the old ``teleports`` argument."""
    return _with(baselines.GD(lr, name), teleports, name)


def Adam(lr: float = 1e-2, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,  # noqa: N802
         teleports: TeleportSchedule | None = None, name: str = "Adam"):
    """baselines.Adam, with the old ``teleports`` argument."""
    return _with(baselines.Adam(lr, beta1, beta2, eps, name), teleports, name)
