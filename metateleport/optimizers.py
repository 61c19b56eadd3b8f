"""The inner stepping loop and the hand-designed optimizers (design.md sections 4-5).

Every optimizer, hand-designed or learned, is an ``InnerOptimizer``: a local update
(weights, gradients, state) -> (deltas, state) and an optional teleport
(weights, problems, state) -> (weights, state). ``inner_step`` is the one step they all share:

    L_t, g_t = L(W_t), grad L(W_t)       # g_t carries no graph (first-order inputs)
    W        = W_t + update(g_t)
    W_{t+1}  = teleport(W)                # loss unchanged

so meta-training and evaluation run the very same code. States are dicts of tensors (or
nested lists of them), which keeps detaching them between unroll windows a tree map.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.utils._pytree import tree_map

from .symmetry import input_pinv
from .tasks import Problems, mlp_loss_and_grad
from .teleport import ascent_teleport, balance_teleport, random_teleport

__all__ = [
    "GD",
    "Adam",
    "GDSchedule",
    "InnerOptimizer",
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

State = dict[str, Any]


@dataclass
class StepContext:
    """What an optimizer may read besides weights and gradients at inner step ``t``."""

    t: int
    problems: Problems
    x_pinv: torch.Tensor | None = None
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


class InnerOptimizer(Protocol):
    name: str

    def init_state(self, problems: Problems) -> State: ...

    def update(
        self, weights: list[torch.Tensor], grads: list[torch.Tensor], state: State,
        ctx: StepContext,
    ) -> tuple[list[torch.Tensor], State]:
        """Return the local update (one delta per weight) and the new state."""
        ...

    def teleport(
        self, weights: list[torch.Tensor], state: State, ctx: StepContext
    ) -> tuple[list[torch.Tensor], State]:
        """Return the (possibly) teleported weights and the new state."""
        ...


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


def on_schedule(t: int, every: int = 1, first: int | None = None) -> bool:
    """Whether a teleport follows the update of inner step t: every ``every`` steps from step 0,
    and only while t < ``first`` (None: the whole run)."""
    return t % every == 0 and (first is None or t < first)


TELEPORT_KINDS = ("ascent", "balance", "random")


@dataclass
class TeleportSchedule:
    """Hand-designed teleports after the update of chosen inner steps, one call for every kind:

    - "ascent": ``steps`` normalized gradient-ascent steps on ||grad L||^2, each of norm
      ``max_norm`` (or ``step_size`` times the feature, capped at it) (teleport.ascent_teleport);
    - "balance": the closed-form balancing rescaling (teleport.balance_teleport);
    - "random": T with normal entries rescaled to ||T_k||_F = ``max_norm`` (torch's generator).

    When: after the updates of the steps in ``at_steps`` if given, else of every step t with
    ``on_schedule(t, every, first)``.
    """

    at_steps: tuple[int, ...] | None = ()
    steps: int = 8
    step_size: float | None = None
    max_norm: float = 0.01
    kind: str = "ascent"
    every: int = 1
    first: int | None = None

    def __post_init__(self):
        if self.kind not in TELEPORT_KINDS:
            raise ValueError(f"teleport kind must be one of {TELEPORT_KINDS}, got {self.kind!r}")
        if self.every < 1 or (self.first is not None and self.first < 1):
            raise ValueError(f"need every >= 1 and first >= 1 or None, got {self.every}, "
                             f"{self.first}")

    def due(self, t: int) -> bool:
        if self.at_steps is not None:
            return t in self.at_steps
        return on_schedule(t, self.every, self.first)

    def __call__(self, weights, state, ctx: StepContext):
        if not self.due(ctx.t):
            return weights, state
        p = ctx.problems
        if self.kind == "balance":
            return balance_teleport(weights), state
        if self.kind == "random":
            return random_teleport(weights, p.X, self.max_norm, slope=p.slope,
                                   x_pinv=ctx.x_pinv), state
        moved = ascent_teleport(weights, p.X, p.Y, self.steps, self.step_size, self.max_norm,
                                p.slope, x_pinv=ctx.x_pinv)
        return moved, state


@dataclass
class WithTeleport:
    """Any optimizer's update rule with a hand-designed teleport schedule instead of its own
    teleports: e.g. "LSTM(update)+balance" is WithTeleport(lstm_update, TeleportSchedule(
    kind="balance", at_steps=(0,)))."""

    base: Any
    teleports: TeleportSchedule
    name: str = ""

    def __post_init__(self):
        if not self.name:
            self.name = f"{self.base.name}+{self.teleports.kind}"

    def init_state(self, problems: Problems) -> State:
        return self.base.init_state(problems)

    def update(self, weights, grads, state, ctx):
        return self.base.update(weights, grads, state, ctx)

    def teleport(self, weights, state, ctx):
        return self.teleports(weights, state, ctx)


def _no_teleport(weights, state, ctx):
    return weights, state


@dataclass
class GD:
    """Gradient descent with a fixed step size, optionally with gradient-ascent teleports."""

    lr: float = 3e-4
    teleports: TeleportSchedule | None = None
    name: str = "GD"

    def init_state(self, problems: Problems) -> State:
        return {}

    def update(self, weights, grads, state, ctx):
        return gd_update(grads, self.lr), state

    def teleport(self, weights, state, ctx):
        return (self.teleports or _no_teleport)(weights, state, ctx)


@dataclass
class GDSchedule:
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

    def teleport(self, weights, state, ctx):
        return weights, state


@dataclass
class Adam:
    """Adam with a fixed step size, optionally with gradient-ascent teleports."""

    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    teleports: TeleportSchedule | None = None
    name: str = "Adam"

    def init_state(self, problems: Problems) -> State:
        zeros = [torch.zeros_like(w) for w in problems.weights]
        return {"m": zeros, "v": [z.clone() for z in zeros], "step": 0}

    def update(self, weights, grads, state, ctx):
        return adam_update(grads, state, self.lr, self.beta1, self.beta2, self.eps)

    def teleport(self, weights, state, ctx):
        return (self.teleports or _no_teleport)(weights, state, ctx)


LossAndGrad = Callable[[list[torch.Tensor]], tuple[torch.Tensor, list[torch.Tensor]]]


def inner_step(
    opt: InnerOptimizer, weights: list[torch.Tensor], state: State, ctx: StepContext,
    loss_and_grad: LossAndGrad | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor], State]:
    """One inner step. Returns (L(W_t) (B,) with graph, W_{t+1}, new state).

    loss_and_grad(weights) -> (loss (B,) with graph, detached gradients) defaults to the batched
    MLP (tasks.mlp_loss_and_grad); modules.py passes one that runs a user's nn.Module.
    """
    p = ctx.problems
    if loss_and_grad is None:
        loss, grads = mlp_loss_and_grad(weights, p.X, p.Y, p.slope)
    else:
        loss, grads = loss_and_grad(weights)
    deltas, state = opt.update(weights, grads, state, ctx)
    weights = [w + d for w, d in zip(weights, deltas)]
    weights, state = opt.teleport(weights, state, ctx)
    return loss, weights, state


def detach_state(state: Any) -> Any:
    """Cut the graph of every tensor in a (nested) state: the truncation point of BPTT."""
    return tree_map(lambda x: x.detach() if isinstance(x, torch.Tensor) else x, state)


@dataclass
class Trajectory:
    """losses: (n_steps + 1, B), the loss at W_0..W_N; seconds: (n_steps + 1,), the wall time at
    which W_0..W_N were reached (0 for W_0); weights: the final W_N."""

    losses: torch.Tensor
    seconds: torch.Tensor
    weights: list[torch.Tensor]


@torch.no_grad()
def run(
    opt: InnerOptimizer, problems: Problems, n_steps: int,
    loss_and_grad: LossAndGrad | None = None,
) -> Trajectory:
    """Run ``opt`` for ``n_steps`` inner steps on every problem of the batch, without graph.
    ``loss_and_grad`` as in ``inner_step`` (default: the batched MLP)."""
    p = problems
    if loss_and_grad is None:
        def loss_and_grad(ws):
            return mlp_loss_and_grad(ws, p.X, p.Y, p.slope)

    x_pinv = input_pinv(p.X, p.weights[0])
    weights = [w.clone() for w in p.weights]
    state = opt.init_state(p)
    # CUDA runs asynchronously: wait for each step, or the times measure only the launches.
    sync = torch.cuda.synchronize if p.X.is_cuda else (lambda: None)
    losses, seconds = [], [0.0]
    start = time.perf_counter()
    for t in range(n_steps):
        ctx = StepContext(t, p, x_pinv)
        loss, weights, state = inner_step(opt, weights, state, ctx, loss_and_grad)
        losses.append(loss)
        sync()
        seconds.append(time.perf_counter() - start)
    losses.append(loss_and_grad(weights)[0])
    return Trajectory(torch.stack(losses), torch.tensor(seconds), weights)
