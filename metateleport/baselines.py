"""The hand-designed update rules (docs/design.md section 7): gradient descent, a two-phase step
size and Adam. Each is an inner.UpdateRule with a no-op teleport, so it runs alone through
inner.run; inner.Teleporting attaches a teleport to any of them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .inner import State
from .tasks import Problems

__all__ = ["GD", "Adam", "GDSchedule", "adam_update", "gd_update"]


def gd_update(grads: list[torch.Tensor], lr: float | torch.Tensor) -> list[torch.Tensor]:
    """Plain gradient descent: delta = -lr * g (lr a float or a (B,) tensor)."""
    if isinstance(lr, torch.Tensor) and lr.dim() == 1:
        lr = lr[:, None, None]
    return [-lr * g for g in grads]


def adam_update(
    grads: list[torch.Tensor], state: State, lr: float, beta1: float = 0.9,
    beta2: float = 0.999, eps: float = 1e-8,
) -> tuple[list[torch.Tensor], State]:
    """Adam (Kingma & Ba) with bias correction; state holds m, v (per weight) and step."""
    step = state["step"] + 1
    m = [beta1 * m_ + (1 - beta1) * g for m_, g in zip(state["m"], grads)]
    v = [beta2 * v_ + (1 - beta2) * g * g for v_, g in zip(state["v"], grads)]
    c1, c2 = 1 - beta1**step, 1 - beta2**step
    deltas = [-lr * (m_ / c1) / ((v_ / c2).sqrt() + eps) for m_, v_ in zip(m, v)]
    return deltas, {"m": m, "v": v, "step": step}


class _NoTeleport:
    def teleport(self, weights, state, ctx):
        return weights, state

    def reset_state(self, state: State) -> State:
        return state


@dataclass
class GD(_NoTeleport):
    """Gradient descent with a fixed step size."""

    lr: float = 3e-4
    name: str = "GD"

    def init_state(self, problems: Problems) -> State:
        return {}

    def update(self, weights, grads, state, ctx):
        return gd_update(grads, self.lr), state


@dataclass
class GDSchedule(_NoTeleport):
    """Gradient descent with a two-phase step size: ``lr_first`` for the first ``switch``
    steps, ``lr`` after. The baseline for LSTM(lr,tele): the public reference found that its
    learned step size amounts to such a schedule (a small step while the loss is ~5e5 and the
    curvature high, then a larger one)."""

    lr_first: float = 1e-4
    lr: float = 1e-3
    switch: int = 1
    name: str = "GD two-phase"

    def init_state(self, problems: Problems) -> State:
        return {}

    def update(self, weights, grads, state, ctx):
        return gd_update(grads, self.lr_first if ctx.t < self.switch else self.lr), state


@dataclass
class Adam(_NoTeleport):
    """Adam with a fixed step size."""

    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name: str = "Adam"

    def init_state(self, problems: Problems) -> State:
        zeros = [torch.zeros_like(w) for w in problems.weights]
        return {"m": zeros, "v": [z.clone() for z in zeros], "step": 0}

    def update(self, weights, grads, state, ctx):
        return adam_update(grads, state, self.lr, self.beta1, self.beta2, self.eps)
