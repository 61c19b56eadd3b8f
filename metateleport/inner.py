"""The inner loop every optimizer shares (docs/design.md sections 4-6), and the composite that
attaches a teleport to an update rule.

An optimizer is an ``InnerOptimizer``: a local update (weights, gradients, state) -> (deltas,
state) and a teleport (weights, state, ctx) -> (weights, state). ``inner_step`` is the one step
they all run:

    L_t, g_t = L(W_t), grad L(W_t)       # g_t carries no graph (first-order inputs)
    W        = W_t + update(g_t)
    W_{t+1}  = teleport(W)                # loss unchanged

so meta-training and evaluation run the very same code. ``Teleporting`` is the one way to
build an optimizer that teleports: an update rule (baselines.GD, baselines.Adam, a learned m1),
a teleport (teleport.AscentTeleport / RandomTeleport / BalanceTeleport, learned.LearnedTeleport,
oracle.OracleTeleport) and a teleport.Schedule. States are dicts of tensors (or nested lists of
them), which keeps detaching them between unroll windows a tree map.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.utils._pytree import tree_map

from .mlp import mlp_loss, mlp_loss_and_grad
from .symmetry import input_pinv
from .tasks import Problems
from .teleport import Schedule, Teleport

__all__ = [
    "InnerOptimizer",
    "LossAndGrad",
    "State",
    "StepContext",
    "Teleporting",
    "Trajectory",
    "UpdateRule",
    "detach_state",
    "inner_step",
    "run",
]

State = dict[str, Any]
LossAndGrad = Callable[[list[torch.Tensor]], tuple[torch.Tensor, list[torch.Tensor]]]

#: what an update rule's state does across a teleport
RULE_STATE_ON_TELEPORT = ("keep", "reset")


@dataclass
class StepContext:
    """What an optimizer may read besides weights and gradients at inner step ``t``: the
    problems, X^+ (symmetry.input_pinv) and a dict where it records per-problem stats (B,)."""

    t: int
    problems: Problems
    x_pinv: torch.Tensor | None = None
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


class UpdateRule(Protocol):
    """A local update: ``update(weights, grads, state, ctx) -> (deltas, state)``, one delta per
    weight, with its state from ``init_state(problems)``."""

    name: str

    def init_state(self, problems: Problems) -> State: ...

    def update(
        self, weights: list[torch.Tensor], grads: list[torch.Tensor], state: State,
        ctx: StepContext,
    ) -> tuple[list[torch.Tensor], State]: ...


class InnerOptimizer(UpdateRule, Protocol):
    """An update rule with a teleport after every update (the identity for most steps)."""

    def teleport(
        self, weights: list[torch.Tensor], state: State, ctx: StepContext
    ) -> tuple[list[torch.Tensor], State]: ...


class Teleporting:
    """Update rule + teleport + schedule.

    Args:
        rule: the update rule (its ``update`` only: an InnerOptimizer given here keeps its
            update and loses its own teleports).
        move: the Teleport applied after the update of every step the schedule makes due, or
            None (the rule alone).
        schedule: teleport.Schedule.
        rule_state_on_teleport: "keep" the rule's state across a teleport, or "reset" it
            (``rule.reset_state``) after each: a learned m1's memory refers to the coordinates
            before the move.
        name: for tables (default "<rule>+<move>").

    Every teleport records in ``ctx.stats["tele_loss_change"]`` the relative loss change that
    the move alone caused, (L(after) - L(before)) / L(before), per problem: ~1e-7 for the exact
    action, the tell-tale of an approximate one.
    """

    def __init__(self, rule: UpdateRule, move: Teleport | None = None,
                 schedule: Schedule | None = None, *, rule_state_on_teleport: str = "keep",
                 name: str = ""):
        if rule_state_on_teleport not in RULE_STATE_ON_TELEPORT:
            raise ValueError(f"rule_state_on_teleport must be one of {RULE_STATE_ON_TELEPORT}, "
                             f"got {rule_state_on_teleport!r}")
        self.rule, self.move = rule, move
        self.schedule = schedule or Schedule()
        self.rule_state_on_teleport = rule_state_on_teleport
        self.name = name or (rule.name if move is None else f"{rule.name}+{move.name}")

    def init_state(self, problems: Problems) -> State:
        state = self.rule.init_state(problems)
        if self.move is not None:
            state.update(self.move.init_state(problems))
        return state

    def update(self, weights, grads, state: State, ctx: StepContext):
        return self.rule.update(weights, grads, state, ctx)

    def teleport(self, weights, state: State, ctx: StepContext):
        if self.move is None or not self.schedule.due(ctx.t):
            return weights, state
        moved, state = self.move(weights, state, ctx)
        with torch.no_grad():
            p = ctx.problems
            l0 = mlp_loss([w.detach() for w in weights], p.X, p.Y, p.slope)
            l1 = mlp_loss([w.detach() for w in moved], p.X, p.Y, p.slope)
            ctx.stats["tele_loss_change"] = (l1 - l0) / l0
        if self.rule_state_on_teleport == "reset":
            state = self.rule.reset_state(state)
        return moved, state


def inner_step(
    opt: InnerOptimizer, weights: list[torch.Tensor], state: State, ctx: StepContext,
    loss_and_grad: LossAndGrad | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor], State]:
    """One inner step. Returns (L(W_t) (B,) with graph, W_{t+1}, new state).

    loss_and_grad(weights) -> (loss (B,) with graph, detached gradients) defaults to the batched
    MLP (mlp.mlp_loss_and_grad); a TaskFamily's ``loss_and_grad`` may compute it another way
    (a user's nn.Module).
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
