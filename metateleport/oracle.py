"""The headroom oracle (docs/design.md section 8): how much can any teleport of norm <= eps help a
given update rule?

For an update rule U (GD, Adam, a trained m1) and a teleport after the updates of steps
0, P, 2P, ... (period P), the oracle picks each T = (T_1, ..., T_{L-1}), ||T_k||_F <= eps, by
gradient descent on T of the mean log-loss k steps later, differentiating through the k unrolled
updates of U (true second-order gradients: U's input gradients keep their graph here):

    min_T  log L(W_{t+k}),   W_{t+1} = expm(T) . W,   W_{s+1} = W_s + U(grad L(W_s)) after.

The teleports found this way are greedy (each looks k steps ahead) and locally optimal, so the
gain of the oracle over no teleport is an estimate from below of the best gain that a teleport of
that norm and schedule can buy, and it bounds what a learned m2 with the same budget can learn
(its teleports are in the same set, chosen with less information). The random baseline teleports
on the same schedule with random T of norm eps (teleport.random_teleport).

``OracleTeleport`` is a teleport.Teleport; ``with_oracle(U, norm, schedule)`` composes it with
its update rule (inner.Teleporting), which runs through ``inner.run`` like every other optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .inner import State, StepContext, Teleporting
from .mlp import mlp_loss
from .symmetry import group_act
from .teleport import Schedule

__all__ = ["OracleTeleport", "autograd_loss_and_grad", "with_oracle"]


def _project(V: torch.Tensor, eps: float) -> torch.Tensor:
    """V (B, d, d) scaled into the ball ||T||_F <= eps, with a finite gradient at V = 0 (where
    teleport.clip_frobenius's norm has an infinite derivative)."""
    norm = (V.pow(2).sum(dim=(1, 2), keepdim=True) + 1e-30).sqrt()
    return V * (eps / norm).clamp_max(1.0)


def autograd_loss_and_grad(weights, X, Y, slope):
    """Per-problem loss (B,) and gradients that keep their graph (create_graph=True)."""
    loss = mlp_loss(weights, X, Y, slope)
    grads = torch.autograd.grad(loss.sum(), weights, create_graph=True)
    return loss, list(grads)


@dataclass
class OracleTeleport:
    """Oracle teleports of norm <= ``norm`` per hidden layer for the update rule ``rule``: each
    T optimized over ``iters`` Adam steps of size ``lr`` (default norm / 4) for the log-loss
    ``horizon`` updates of ``rule`` later. ``stats`` collects, per teleport, the step, the mean
    gain in log-loss at the horizon over not teleporting, and the mean ||T||."""

    rule: Any
    norm: float
    horizon: int = 10
    iters: int = 20
    lr: float | None = None
    name: str = "oracle"

    def __post_init__(self):
        if self.norm <= 0 or self.horizon < 1 or self.iters < 1:
            raise ValueError("need norm > 0 and horizon, iters >= 1, got "
                             f"{self.norm}, {self.horizon}, {self.iters}")
        self.stats: list[dict] = []

    def init_state(self, problems) -> State:
        return {}

    def _lookahead(self, weights, state, ctx: StepContext) -> torch.Tensor:
        """log L(W_{t+1+horizon}) (B,) after ``horizon`` updates of the rule from (W, state)."""
        p = ctx.problems
        weights = [w if w.requires_grad else w.detach().requires_grad_(True) for w in weights]
        for i in range(self.horizon):
            step = StepContext(ctx.t + 1 + i, p, ctx.x_pinv)
            _, grads = autograd_loss_and_grad(weights, p.X, p.Y, p.slope)
            deltas, state = self.rule.update(weights, grads, state, step)
            weights = [w + d for w, d in zip(weights, deltas)]
        return mlp_loss(weights, p.X, p.Y, p.slope).log()

    def __call__(self, weights, state: State, ctx: StepContext):
        p = ctx.problems
        eps = self.norm
        base_w = [w.detach() for w in weights]
        with torch.enable_grad():
            V = [torch.zeros(w.shape[0], w.shape[1], w.shape[1], dtype=w.dtype,
                             device=w.device, requires_grad=True) for w in base_w[:-1]]
            adam = torch.optim.Adam(V, lr=self.lr or eps / 4)
            none = self._lookahead(base_w, state, ctx).detach()
            best, best_T = none.clone(), [torch.zeros_like(v) for v in V]
            for _ in range(self.iters):
                Ts = [_project(v, eps) for v in V]
                moved = group_act(base_w, p.X, Ts, p.slope, x_pinv=ctx.x_pinv)
                obj = self._lookahead(moved, state, ctx)
                with torch.no_grad():
                    # keep, per problem, the best T evaluated (never worse than no teleport)
                    better = torch.isfinite(obj) & (obj < best)
                    best = torch.where(better, obj, best)
                    best_T = [torch.where(better[:, None, None], t.detach(), b)
                              for t, b in zip(Ts, best_T)]
                adam.zero_grad()
                loss = torch.where(torch.isfinite(obj), obj, torch.zeros_like(obj)).sum()
                if loss.requires_grad:
                    loss.backward()
                adam.step()
        self.stats.append({"t": ctx.t, "gain": float((none - best).mean()),
                           "norm": float(torch.stack([t.pow(2).sum((1, 2)) for t in best_T])
                                         .sum(0).sqrt().mean())})
        with torch.no_grad():
            return group_act(base_w, p.X, best_T, p.slope, x_pinv=ctx.x_pinv), state


def with_oracle(rule: Any, norm: float, schedule: Schedule | None = None, *, horizon: int = 10,
                iters: int = 20, lr: float | None = None, name: str = "") -> Teleporting:
    """``rule`` (its update only) with OracleTeleport(rule, norm, ...) on ``schedule`` (default
    Schedule(every=10)); the oracle's stats are ``.move.stats``."""
    move = OracleTeleport(rule, norm, horizon, iters, lr)
    return Teleporting(rule, move, schedule or Schedule(10), name=name or f"{rule.name}+oracle")
