"""The inner loop every optimizer shares (docs/design.md sections 4-6), and the composite that
attaches a teleport to an update rule.

An optimizer is an ``InnerOptimizer``: a local update (weights, gradients, state) -> (deltas,
state) and a teleport (weights, state, ctx) -> (weights, state). ``inner_step`` is the one step
they all run:

    L_t, g_t = L(W_t), grad L(W_t)       # g_t carries no graph (first-order inputs)
    W        = W_t + update(g_t)
    W_{t+1}  = teleport(W)                # loss unchanged

so meta-training and evaluation run the very same code. ``inner_step_groups`` runs that step
for the groups of a mixed batch (one architecture each) in lockstep, calling a learned
optimizer's LSTMs once for all of them (docs/design.md section 9). ``Teleporting`` is the one way to
build an optimizer that teleports: an update rule (baselines.GD, baselines.Adam, a learned m1),
a teleport (teleport.AscentTeleport / RandomTeleport / BalanceTeleport, learned.LearnedTeleport,
oracle.OracleTeleport) and a teleport.Schedule. States are dicts of tensors (or nested lists of
them), which keeps detaching them between unroll windows a tree map.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.utils._pytree import tree_map

from .mlp import mlp_loss
from .symmetry import input_pinv
from .tasks import MixedProblems, Problems, batched_mlp_loss_and_grad, groups_of
from .teleport import Schedule, Teleport

__all__ = [
    "InnerOptimizer",
    "LossAndGrad",
    "LossGuard",
    "State",
    "StepContext",
    "Teleporting",
    "Trajectory",
    "UpdateRule",
    "detach_state",
    "inner_step",
    "inner_step_groups",
    "run",
    "starting_weights",
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
    weight, with its state from ``init_state(problems)``.

    A rule may also have ``update_groups(weights, grads, states, ctxs) -> [(deltas, state)]``,
    the update of several groups in lockstep (one list entry each, as ``update`` per group),
    which ``inner_step_groups`` then calls instead: a learned m1 steps the coordinates of all
    groups in one LSTM call. A teleport may have ``teleport_groups`` alike."""

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


@dataclass
class LossGuard:
    """A loss guard for any optimizer (in the spirit of Premont-Schwarz et al., ICML 2022, "A
    Simple Guard for Learned Optimizers"): a step whose loss would exceed ``factor`` times the
    best loss the problem has had so far, or is not finite, is refused, and the problem takes a
    safe step instead: gradient descent from W_t with the scale-free step size
    lr = ``eta`` L(W_t) / ||g_t||^2 (the step to zero loss under linearization, scaled), halved
    up to ``backtracks`` times until the loss does not rise; if no such step is found, W_t stays.

    Against the best loss so far, not the last one: a bound per step (refuse only if the loss
    doubles) lets a factor compound over steps; this one keeps every loss under ``factor`` x
    min_{s <= t} L(W_s), so no problem diverges. A refused step drops its teleport too (the
    fallback starts from W_t), and the optimizer keeps the LSTM states the refused step wrote:
    restoring them would make a deterministic learned rule propose the same step again, and a
    guard that freezes a problem would hide its divergence rather than stop it.

    State: {"guard_best": (B,) the best loss so far}. Per step it records
    ``ctx.stats["guard_refused"]`` (B,), 1 where the step was refused (TensorBoard, results).
    Costs one forward pass per step, and up to ``backtracks`` more on a refused step.

    ``proposal_penalty`` (meta-training, train.refused_weight > 0): a refused step's proposal
    leaves the trajectory, and with it the learned networks' only meta-gradient for that step;
    with the flag set and autograd on, the guard also records ``ctx.stats["guard_penalty"]``
    (B,) = log(L(proposal) / (factor x best)) with its graph where a step was refused with a
    finite proposal (0 elsewhere), which the meta-loss adds (estimator.unroll_window): the
    learned step then learns from the steps the guard threw away.
    """

    factor: float = 2.0
    eta: float = 0.5
    backtracks: int = 8
    proposal_penalty: bool = False

    def __post_init__(self):
        if not (self.factor >= 1 and self.eta > 0 and self.backtracks >= 0):
            raise ValueError(f"need factor >= 1, eta > 0, backtracks >= 0, got {self.factor}, "
                             f"{self.eta}, {self.backtracks}")

    def init_state(self, problems: Problems) -> State:
        like = problems.weights[0]
        return {"guard_best": like.new_full((problems.batch_size,), float("inf"))}

    def __call__(self, weights, grads, loss, moved, state: State, ctx: StepContext,
                 loss_and_grad: LossAndGrad):
        """weights, grads, loss: W_t, g_t, L(W_t) (B,); moved: the step's proposal W_{t+1}.
        Returns the guarded W_{t+1} and the state with the new best loss."""
        l0 = loss.detach()
        best = torch.minimum(state["guard_best"], l0)
        with torch.no_grad():
            l1 = loss_and_grad([w.detach() for w in moved])[0]
        refuse = self.refuses(l1, best)
        ctx.stats["guard_refused"] = refuse.to(l0.dtype)
        if self.proposal_penalty and torch.is_grad_enabled():
            ctx.stats["guard_penalty"] = self._penalty(weights, moved, l1, refuse, best,
                                                       loss_and_grad)
        if bool(refuse.any()):
            safe = [torch.where(torch.isfinite(g), g, torch.zeros_like(g)) for g in grads]
            lr = self.fallback_step_size(weights, safe, l0, loss_and_grad)
            fallback = [w - _per_problem(lr, w) * g for w, g in zip(weights, safe)]
            moved = [torch.where(_per_problem(refuse, f), f, m) for f, m in zip(fallback, moved)]
        return moved, {**state, "guard_best": best}

    def _penalty(self, weights, moved, l1, refuse, best, loss_and_grad) -> torch.Tensor:
        """(B,) log(L(proposal) / (factor x best)) with graph where refused and finite, else 0.
        A non-finite proposal is replaced by W_t (no graph) before the forward pass, so that no
        NaN reaches the meta-gradient."""
        counted = refuse & torch.isfinite(l1)
        if not bool(counted.any()):
            return l1.new_zeros(l1.shape)
        proposal = [torch.where(_per_problem(counted, m), m, w.detach())
                    for w, m in zip(weights, moved)]
        lp = loss_and_grad(proposal)[0]
        excess = lp.clamp_min(1e-30).log() - (self.factor * best).clamp_min(1e-30).log()
        return torch.where(counted, excess, torch.zeros_like(excess))

    def refuses(self, proposed: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
        """Per problem, whether a step to loss ``proposed`` is refused against ``best``."""
        return ~torch.isfinite(proposed) | (proposed > self.factor * best)

    @torch.no_grad()
    def fallback_step_size(self, weights, grads, l0, loss_and_grad) -> torch.Tensor:
        """Per problem (B,), the first of eta L / ||g||^2, halved, whose GD step from
        ``weights`` (B leading each) does not raise the loss ``l0`` (0 where none does or the
        loss is not finite). ``loss_and_grad`` is called on each trial's weights."""
        sq = sum(g.pow(2).flatten(1).sum(1) for g in grads)
        lr = torch.where(torch.isfinite(l0) & (sq > 0), self.eta * l0 / sq.clamp_min(1e-30),
                         torch.zeros_like(l0))
        found = torch.zeros_like(l0, dtype=torch.bool)
        chosen = torch.zeros_like(l0)
        for _ in range(self.backtracks + 1):
            trial = loss_and_grad([w.detach() - _per_problem(lr, w) * g
                                   for w, g in zip(weights, grads)])[0]
            ok = ~found & torch.isfinite(trial) & (trial <= l0)
            chosen = torch.where(ok, lr, chosen)
            found = found | ok
            if bool(found.all()):
                break
            lr = lr / 2
        return chosen


def _per_problem(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """x (B,) shaped to broadcast over ``like`` (B, ...)."""
    return x.view((-1,) + (1,) * (like.dim() - 1))


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
        guard: a LossGuard on every step (update and teleport together), or None.
        start: a loss-preserving map of the initial weights, W_0 <- start(W_0), applied
            before the first step (``starting_weights``: run, the trainer's trajectories and
            LearnedTorchOptimizer.start alike), or None. teleport.balance_fully for
            model.balance_first.

    A rule with ``transport_state(before, after, state, rescaling)`` (a learned m1 reading
    per-coordinate moments) has its state carried through every move; ``rescaling`` says the
    move is a diag one (the move's ``group``), which multiplies every coordinate by a positive
    factor. A step the guard refuses drops its teleport but keeps the state the teleport
    carried (as it keeps the LSTM states the step wrote).

    Every teleport records in ``ctx.stats["tele_loss_change"]`` the relative loss change that
    the move alone caused, (L(after) - L(before)) / L(before), per problem: float rounding for
    the exact action, the tell-tale of an approximate one.
    """

    def __init__(self, rule: UpdateRule, move: Teleport | None = None,
                 schedule: Schedule | None = None, *, rule_state_on_teleport: str = "keep",
                 name: str = "", guard: LossGuard | None = None,
                 start: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None):
        if rule_state_on_teleport not in RULE_STATE_ON_TELEPORT:
            raise ValueError(f"rule_state_on_teleport must be one of {RULE_STATE_ON_TELEPORT}, "
                             f"got {rule_state_on_teleport!r}")
        self.rule, self.move = rule, move
        self.schedule = schedule or Schedule()
        self.rule_state_on_teleport = rule_state_on_teleport
        self.name = name or (rule.name if move is None else f"{rule.name}+{move.name}")
        self.guard = guard
        self.start = start

    def init_state(self, problems: Problems) -> State:
        state = self.rule.init_state(problems)
        if self.move is not None:
            state.update(self.move.init_state(problems))
        if self.guard is not None:
            state.update(self.guard.init_state(problems))
        return state

    def update(self, weights, grads, state: State, ctx: StepContext):
        return self.rule.update(weights, grads, state, ctx)

    def update_groups(self, weights, grads, states: list[State], ctxs: list[StepContext]):
        """``update`` for several groups in lockstep (UpdateRule)."""
        return _per_group(getattr(self.rule, "update_groups", None), self.rule.update,
                          weights, grads, states, ctxs)

    def teleport(self, weights, state: State, ctx: StepContext):
        return self.teleport_groups([weights], [state], [ctx])[0]

    def teleport_groups(self, weights, states: list[State], ctxs: list[StepContext]):
        """``teleport`` for several groups in lockstep: the move of the groups it is due for in
        one call (its ``teleport_groups`` where it has one), the stats per group."""
        out = list(zip(weights, states))
        due = [i for i, ctx in enumerate(ctxs)
               if self.move is not None and self.schedule.due(ctx.t)]
        if not due:
            return out
        moves = _per_group(getattr(self.move, "teleport_groups", None), self.move,
                           [weights[i] for i in due], [states[i] for i in due],
                           [ctxs[i] for i in due])
        for i, (moved, state) in zip(due, moves):
            with torch.no_grad():
                p = ctxs[i].problems
                l0 = mlp_loss([w.detach() for w in weights[i]], p.X, p.Y, p.slope)
                l1 = mlp_loss([w.detach() for w in moved], p.X, p.Y, p.slope)
                ctxs[i].stats["tele_loss_change"] = (l1 - l0) / l0
            transport = getattr(self.rule, "transport_state", None)
            if transport is not None:  # state tied to the coordinates follows them (a diag move)
                state = transport(weights[i], moved, state,
                                  getattr(self.move, "group", "gl") == "diag")
            if self.rule_state_on_teleport == "reset":
                state = self.rule.reset_state(state)
            out[i] = (moved, state)
        return out


@torch.no_grad()
def starting_weights(opt: InnerOptimizer, weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """The weights a run of ``opt`` starts from: a copy of ``weights`` (B, ...) moved by the
    optimizer's ``start`` map where it has one (Teleporting), else unchanged. Without graph:
    W_0 is data, no function of the meta-parameters."""
    weights = [w.clone() for w in weights]
    start = getattr(opt, "start", None)
    return weights if start is None else start(weights)


def _per_group(together: Callable | None, alone: Callable, *groups: list) -> list:
    """``together(*groups)`` (one call for all groups) where given, else ``alone`` per group."""
    if together is not None:
        return together(*groups)
    return [alone(*args) for args in zip(*groups)]


def inner_step(
    opt: InnerOptimizer, weights: list[torch.Tensor], state: State, ctx: StepContext,
    loss_and_grad: LossAndGrad | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor], State]:
    """One inner step. Returns (L(W_t) (B,) with graph, W_{t+1}, new state).

    loss_and_grad(weights) -> (loss (B,) with graph, detached gradients) defaults to the batched
    MLP (mlp.mlp_loss_and_grad); a TaskFamily's ``loss_and_grad`` may compute it another way
    (a user's nn.Module). An optimizer with a ``guard`` (LossGuard) has the step checked by it.
    """
    return inner_step_groups(opt, [weights], [state], [ctx], [loss_and_grad])[0]


def inner_step_groups(
    opt: InnerOptimizer, weights: list[list[torch.Tensor]], states: list[State],
    ctxs: list[StepContext], loss_and_grads: list[LossAndGrad | None] | None = None,
) -> list[tuple[torch.Tensor, list[torch.Tensor], State]]:
    """``inner_step`` for several groups of problems in lockstep (the groups of a mixed batch,
    one architecture each, at one inner step t): one list entry per group in and out,
    [(L(W_t) (B_i,), W_{t+1}, new state)].

    Losses, gradients, teleports and the guard run per group (their shapes differ); an
    optimizer with ``update_groups`` / ``teleport_groups`` (UpdateRule; Teleporting around a
    learned m1 and m2) calls each of its LSTMs once on the coordinates of all groups, which
    gives every group its own step up to float rounding. One group is ``inner_step``.
    """
    loss_and_grads = loss_and_grads or [None] * len(ctxs)
    loss_and_grads = [batched_mlp_loss_and_grad(ctx.problems) if f is None else f
                      for f, ctx in zip(loss_and_grads, ctxs)]
    losses, grads = zip(*(f(w) for f, w in zip(loss_and_grads, weights)))
    steps = _per_group(getattr(opt, "update_groups", None), opt.update,
                       weights, grads, states, ctxs)
    moved = [[w + d for w, d in zip(ws, deltas)] for ws, (deltas, _) in zip(weights, steps)]
    steps = _per_group(getattr(opt, "teleport_groups", None), opt.teleport,
                       moved, [state for _, state in steps], ctxs)
    guard = getattr(opt, "guard", None)
    if guard is not None:
        steps = [guard(w, g, loss, m, state, ctx, f) for w, g, loss, (m, state), ctx, f
                 in zip(weights, grads, losses, steps, ctxs, loss_and_grads)]
    return [(loss, w, state) for loss, (w, state) in zip(losses, steps)]


def detach_state(state: Any) -> Any:
    """Cut the graph of every tensor in a (nested) state: the truncation point of BPTT."""
    return tree_map(lambda x: x.detach() if isinstance(x, torch.Tensor) else x, state)


@dataclass
class Trajectory:
    """losses: (n_steps + 1, B), the loss at W_0..W_N; seconds: (n_steps + 1,), the wall time at
    which W_0..W_N were reached (0 for W_0); weights: the final W_N; refused: (B,) the steps
    of each problem that the optimizer's LossGuard refused (None without a guard);
    held_out_losses: (n_steps + 1, B), with ``run(..., held_out=True)``, the loss on each
    problem's held-out samples at W_0..W_N (summed over them, as the training loss over its
    samples and the held-out meta-loss), NaN for problems without held-out samples."""

    losses: torch.Tensor
    seconds: torch.Tensor
    weights: list[torch.Tensor]
    refused: torch.Tensor | None = None
    held_out_losses: torch.Tensor | None = None


@torch.no_grad()
def run(
    opt: InnerOptimizer, problems: Problems | MixedProblems, n_steps: int,
    loss_and_grad: LossAndGrad | None = None, held_out: bool = False,
) -> Trajectory:
    """Run ``opt`` for ``n_steps`` inner steps on every problem of the batch, without graph.
    ``loss_and_grad`` as in ``inner_step`` (default: the batched MLP). ``held_out``: also
    record each step's loss on the problems' held-out samples (Trajectory.held_out_losses).

    MixedProblems run their groups in lockstep (inner_step_groups: a learned optimizer's LSTMs
    called once per step for all groups; the optimizers are per problem, so this is each
    group's run): losses and refusals concatenate along the batch axis, seconds are the whole
    batch's, and ``weights`` is the list of the groups' final weights.
    """
    mixed = isinstance(problems, MixedProblems)
    if mixed and loss_and_grad is not None:
        raise ValueError("mixed problems run the batched MLP of each group")
    groups = groups_of(problems)
    loss_and_grads = [batched_mlp_loss_and_grad(g) if loss_and_grad is None else loss_and_grad
                      for g in groups]
    x_pinvs = [input_pinv(g.X, g.weights[0]) for g in groups]
    weights = [starting_weights(opt, g.weights) for g in groups]
    states = [opt.init_state(g) for g in groups]
    # CUDA runs asynchronously: wait for each step, or the times measure only the launches.
    sync = torch.cuda.synchronize if groups[0].X.is_cuda else (lambda: None)
    losses, seconds, refused, held = [], [0.0], None, []
    start = time.perf_counter()
    for t in range(n_steps):
        ctxs = [StepContext(t, g, x_pinv) for g, x_pinv in zip(groups, x_pinvs)]
        if held_out:
            held.append(_held_out_losses(weights, groups))
        steps = inner_step_groups(opt, weights, states, ctxs, loss_and_grads)
        losses.append(torch.cat([loss for loss, _, _ in steps]))
        weights, states = [w for _, w, _ in steps], [state for _, _, state in steps]
        if "guard_refused" in ctxs[0].stats:
            step = torch.cat([ctx.stats["guard_refused"] for ctx in ctxs])
            refused = step if refused is None else refused + step
        sync()
        seconds.append(time.perf_counter() - start)
    losses.append(torch.cat([f(w)[0] for f, w in zip(loss_and_grads, weights)]))
    if held_out:
        held.append(_held_out_losses(weights, groups))
    return Trajectory(torch.stack(losses), torch.tensor(seconds),
                      weights if mixed else weights[0], refused,
                      torch.stack(held) if held_out else None)


def _held_out_losses(weights: list[list[torch.Tensor]], groups: list[Problems]) -> torch.Tensor:
    """(sum of B_i,) each problem's loss on its held-out samples, NaN for groups without."""
    return torch.cat([
        torch.full((g.batch_size,), math.nan, dtype=g.X.dtype, device=g.X.device)
        if g.X_test is None else mlp_loss(w, g.X_test, g.Y_test, g.slope)
        for w, g in zip(weights, groups)])
