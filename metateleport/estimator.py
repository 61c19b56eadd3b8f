"""The truncated-BPTT meta-gradient estimator (docs/design.md section 6): one window of K inner
steps unrolled with its graph to the meta-parameters, the window's meta-loss, and the guarded
meta-step that applies its gradient.

The meta-loss of a window starting at inner step t is the mean over trajectories of

    sum_{s = t+1}^{t+K} L(W_s)          ("sum"), or
    sum_{s = t+1}^{t+K} log L(W_s)      ("log"),

i.e. the losses reached by the window's K updates (L(W_t) itself does not depend on them),
with train.scale_weight > 0 plus that times the mean of ``scale_growth``, log P(W_{t+K}) /
P(W_t) for P the squared path norm: how much the window grew the function's scale.
The meta-step skips a window whose meta-loss or meta-gradient is not finite, clips the
meta-gradient norm and, in a data-parallel run, replaces the meta-gradient by its mean over
ranks first. ``unroll_groups`` unrolls the groups of a mixed batch (one architecture each) in
lockstep, with one call of each LSTM per inner step for all of them. What a window starts
from, when trajectories end and how the meta step size moves is the trainer's business
(trainer.MetaTrainer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from .inner import LossAndGrad, State, StepContext, inner_step_groups
from .learned import LearnedOptimizer
from .mlp import mlp_loss, path_norm_sq
from .tasks import MixedProblems, Problems

__all__ = [
    "META_LOSSES",
    "META_LOSS_ON",
    "apply_meta_step",
    "scale_growth",
    "unroll_groups",
    "unroll_window",
    "window_meta_loss",
]

META_LOSSES = ("log", "sum")
#: what the meta-loss measures: the training loss, the loss on held-out samples, or that
#: where a group has them and the training loss where it has not (a task distribution whose
#: digits groups carry held-out samples and whose synthetic ones do not)
META_LOSS_ON = ("train", "held_out", "held_out_where_available")


def window_meta_loss(losses: torch.Tensor, kind: str) -> torch.Tensor:
    """losses: (K, B) inner losses reached in a window -> scalar meta-loss."""
    if kind not in META_LOSSES:
        raise ValueError(f"meta-loss must be one of {META_LOSSES}, got {kind!r}")
    if kind == "log":
        losses = losses.log()
    return losses.sum(dim=0).mean()


def scale_growth(starts: list[list[torch.Tensor]], ends: list[list[torch.Tensor]],
                 d_0s: list[int]) -> torch.Tensor:
    """log P(end) - log P(start) of every trajectory of every group, concatenated (B,): P
    the squared path norm (mlp.path_norm_sq) of a group's weights at a window's start and
    end, ``d_0s`` its input widths. The graph runs through ``ends`` only."""
    return torch.cat([path_norm_sq(end, d).log() - path_norm_sq(start, d).detach().log()
                      for start, end, d in zip(starts, ends, d_0s)])


def unroll_window(
    opt: LearnedOptimizer,
    weights: list[torch.Tensor],
    state: State,
    problems: Problems,
    x_pinv: torch.Tensor | None,
    t0: int,
    K: int,
    loss_and_grad: LossAndGrad | None = None,
    on: str = "train",
) -> tuple[torch.Tensor, list[torch.Tensor], State, StepContext]:
    """K inner steps from inner step t0, keeping the graph to the meta-parameters.

    Returns (losses (K, B) = L(W_{t0+1}) .. L(W_{t0+K}), the final weights and state, the last
    step's context with its stats). L(W_{t0}) is left out: it does not depend on the window.
    With a guard that records proposal penalties (inner.LossGuard.proposal_penalty), the
    context's ``stats["guard_penalty"]`` (B,) is their sum over the window, with its graph.
    ``loss_and_grad``: the family's (tasks.TaskFamily.loss_and_grad), default the batched MLP.
    ``on``: "train", L is the training loss the optimizer descends; "held_out", L is the loss on
    the problems' held-out samples (X_test, Y_test), which the optimizer never sees: a
    meta-objective of generalization; "held_out_where_available", the held-out loss of the
    groups that have held-out samples and the training loss of the others (META_LOSS_ON).
    """
    losses, weights, states, ctx = unroll_groups(opt, [weights], [state], [problems], [x_pinv],
                                                 t0, K, [loss_and_grad], on)
    return losses, weights[0], states[0], ctx


def unroll_groups(
    opt: LearnedOptimizer,
    weights: list[list[torch.Tensor]],
    states: list[State],
    groups: list[Problems],
    x_pinvs: list[torch.Tensor | None],
    t0: int,
    K: int,
    loss_and_grads: list[LossAndGrad | None] | None = None,
    on: str = "train",
) -> tuple[torch.Tensor, list[list[torch.Tensor]], list[State], StepContext]:
    """``unroll_window`` of several groups (a mixed batch's, one architecture each) in lockstep,
    one list entry per group in and out: every inner step is inner.inner_step_groups, which
    calls each LSTM once on the coordinates of all groups.

    Returns (losses (K, sum of B_i), the groups' side by side as in MixedProblems, the final
    weights and states per group, the last step's context). With several groups that context
    is one over all of them (MixedProblems), each stat (sum of B_i,) the groups' concatenated.
    """
    if on not in META_LOSS_ON:
        raise ValueError(f"on must be one of {META_LOSS_ON}, got {on!r}")
    if on == "held_out" and any(p.X_test is None for p in groups):
        raise ValueError("a held-out meta-loss needs problems with held-out samples (X_test)")
    held = [on == "held_out" or (on == "held_out_where_available" and p.X_test is not None)
            for p in groups]
    loss_and_grads = loss_and_grads or [None] * len(groups)
    losses = [[] for _ in groups]
    penalty: list[torch.Tensor | None] = [None] * len(groups)
    for k in range(K):
        ctxs = [StepContext(t0 + k, p, x_pinv) for p, x_pinv in zip(groups, x_pinvs)]
        steps = inner_step_groups(opt, weights, states, ctxs, loss_and_grads)
        weights, states = [w for _, w, _ in steps], [state for _, _, state in steps]
        for i, (p, ctx, (loss, _, _)) in enumerate(zip(groups, ctxs, steps)):
            if "guard_penalty" in ctx.stats:
                step = ctx.stats["guard_penalty"]
                penalty[i] = step if penalty[i] is None else penalty[i] + step
            if held[i]:
                losses[i].append(mlp_loss(weights[i], p.X_test, p.Y_test, p.slope))
            elif k > 0:
                losses[i].append(loss)
    for i, (p, ctx, f) in enumerate(zip(groups, ctxs, loss_and_grads)):
        if not held[i]:
            losses[i].append(mlp_loss(weights[i], p.X, p.Y, p.slope) if f is None
                             else f(weights[i])[0])
        if penalty[i] is not None:
            ctx.stats["guard_penalty"] = penalty[i]
    if len(groups) == 1:
        return torch.stack(losses[0]), weights, states, ctxs[0]
    ctx = StepContext(ctxs[0].t, MixedProblems(groups), stats={
        key: torch.cat([c.stats[key] for c in ctxs]) for key in ctxs[0].stats})
    return torch.cat([torch.stack(part) for part in losses], dim=1), weights, states, ctx


def apply_meta_step(
    meta_opt: torch.optim.Optimizer, params: Iterable[torch.Tensor], meta_loss: torch.Tensor,
    grad_clip: float, average: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[bool, float]:
    """Backpropagate ``meta_loss``, clip the meta-gradient norm and take the step, unless the
    loss or the norm is not finite, or the step would make a parameter non-finite: then the
    parameters are left as they were. Returns (applied, grad norm).

    ``average`` (data-parallel runs: DistContext.all_reduce_mean) maps a flat tensor to its mean
    over ranks. The meta-gradient is then replaced by its mean before clipping, and a loss that
    is not finite on any rank skips the step on every rank, so that all ranks stay identical.
    """
    params = list(params)
    meta_opt.zero_grad(set_to_none=True)
    finite = bool(torch.isfinite(meta_loss))
    if finite:
        meta_loss.backward()
    if average is not None:
        finite = _average_grads(params, finite, average)
    if not finite:
        meta_opt.zero_grad(set_to_none=True)
        return False, math.nan
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip).item()
    if not math.isfinite(grad_norm):
        meta_opt.zero_grad(set_to_none=True)
        return False, grad_norm
    before = [p.detach().clone() for p in params]
    meta_opt.step()
    if not all(bool(torch.isfinite(p).all()) for p in params):
        # A finite gradient can still overflow a parameter: keep the last finite ones.
        with torch.no_grad():
            for p, old in zip(params, before):
                p.copy_(old)
        meta_opt.zero_grad(set_to_none=True)
        return False, grad_norm
    return True, grad_norm


def _average_grads(
    params: list[torch.Tensor], finite: bool, average: Callable[[torch.Tensor], torch.Tensor]
) -> bool:
    """Replace every gradient by its mean over ranks, in one collective: the flattened gradients
    followed by a "loss not finite here" flag. Returns False (nothing replaced) when the flag is
    set on some rank. A rank whose loss is not finite sends zeros; every other rank has gradients
    for the same parameters, since all run the same graph."""
    ref = params[0]
    grads = [p.grad.reshape(-1) if finite and p.grad is not None else p.new_zeros(p.numel())
             for p in params]
    flat = average(torch.cat([*grads, ref.new_tensor([0.0 if finite else 1.0])]))
    if flat[-1] > 0:
        return False
    offset = 0
    for p in params:
        if p.grad is not None:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()
    return True
