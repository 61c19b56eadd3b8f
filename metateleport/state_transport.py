"""Carrying a torch.optim optimizer's state through a teleport (docs/design.md section 10).

A loss-preserving move W' = phi(W) maps gradients by grad L(W') = J_phi^-T grad L(W). For the
diag group the move is elementwise and linear, p' = a * p for every parameter p: an nn.Linear
weight of layer k gets a_ij = s_k,i / s_{k-1},j (s_k = exp(t_k) the scales of hidden layer k,
s = 1 for the input and output units) and its bias a_i = s_k,i. It holds for every W, not only
the current one, because L(phi(W)) = L(W) for every W and every input. So every gradient the
optimizer saw, had it been computed at the teleported image of the point it was computed at, is
g / a; a state that is a linear combination of past gradients (SGD's momentum_buffer, Adam's
exp_avg, RMSprop's grad_avg) becomes state / a, one of squared gradients (Adam's exp_avg_sq and
max_exp_avg_sq, AdaGrad's sum, RMSprop's square_avg) state / a^2. After ``rescale_state`` the
optimizer's next step from the teleported point is the step it would take had its whole
gradient history been computed there (tests/test_teleporter.py replays it).

Exact only where the state is such a combination: a weight decay that enters the gradient (SGD,
Adam, AdaGrad, RMSprop with weight_decay > 0; AdamW's decoupled decay is fine), AdaGrad's
nonzero initial_accumulator_value, and RMSprop's momentum_buffer (it sums g / (sqrt(v) + eps),
which eps keeps from transforming) break it; ``check_transformable`` refuses them, and any
optimizer or state entry not listed in ``STATE_POWERS``, with an error that names it.

The gl group has no such transform: its move depends on the point and on the batch (exact on
that batch only), so even past gradients on other batches at other points have no image, and an
elementwise second moment could not follow a mixing of units anyway. A teleporter refuses
"transform" there; "reset" (a fresh state, the public reference's choice) and "keep" remain.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["OPTIMIZER_STATES", "STATE_POWERS", "check_transformable", "reset_state",
           "rescale_state"]

#: what a teleport does with an optimizer's state: transport it, drop it, or leave it as it is
OPTIMIZER_STATES = ("transform", "reset", "keep")

#: per optimizer class, the power q of each per-parameter state entry: state' = state * a^-q
#: (1: sums of gradients, 2: of squared gradients, 0: counters, unchanged)
STATE_POWERS: dict[type, dict[str, int]] = {
    torch.optim.SGD: {"momentum_buffer": 1},
    torch.optim.Adam: {"step": 0, "exp_avg": 1, "exp_avg_sq": 2, "max_exp_avg_sq": 2},
    torch.optim.Adagrad: {"step": 0, "sum": 2},
    torch.optim.RMSprop: {"step": 0, "square_avg": 2, "grad_avg": 1},
}


def _powers(optimizer: torch.optim.Optimizer) -> dict[str, int]:
    # AdamW is an Adam with decoupled weight decay: its state is Adam's
    for cls, powers in STATE_POWERS.items():
        if isinstance(optimizer, cls):
            return powers
    names = ", ".join(f"torch.optim.{c.__name__}" for c in STATE_POWERS)
    raise ValueError(
        f"optimizer_state='transform' knows how the state of {names} (and AdamW) transforms, "
        f"not that of {type(optimizer).__name__}: pass optimizer_state='reset' or 'keep'"
    )


def check_transformable(optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor]) -> None:
    """Raise ValueError, naming the reason, unless ``rescale_state`` is exact for ``params``
    (see the module docstring). Call it before moving anything."""
    powers = _powers(optimizer)
    name = type(optimizer).__name__
    ids = {id(p) for p in params}
    for group in optimizer.param_groups:
        if not any(id(p) in ids for p in group["params"]):
            continue
        if group.get("weight_decay", 0) and not group.get("decoupled_weight_decay", False):
            raise ValueError(
                f"{name} with weight_decay={group['weight_decay']} adds weight_decay * p to "
                "every gradient, which does not transform with the rescaling: its state has no "
                "exact transform (use AdamW, or optimizer_state='reset' or 'keep')"
            )
        if group.get("initial_accumulator_value", 0):
            raise ValueError(
                f"{name}'s initial_accumulator_value={group['initial_accumulator_value']} is "
                "not a sum of squared gradients, so its sum has no exact transform "
                "(optimizer_state='reset' or 'keep')"
            )
        if isinstance(optimizer, torch.optim.RMSprop) and group.get("momentum", 0):
            raise ValueError(
                "RMSprop's momentum_buffer sums g / (sqrt(v) + eps), which eps keeps from "
                "transforming exactly: use momentum=0, or optimizer_state='reset' or 'keep'"
            )
    for p in params:
        for key, value in optimizer.state.get(p, {}).items():
            if key not in powers and isinstance(value, torch.Tensor) and value.dim() > 0:
                raise ValueError(f"{name}'s state entry {key!r} is not one whose transform is "
                                 "known: pass optimizer_state='reset' or 'keep'")


def rescale_state(optimizer: torch.optim.Optimizer,
                  factors: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """In place: for each (parameter p, factor a of p's shape) with p' = a * p, divide p's
    gradient sums by a and its squared-gradient sums by a^2 (``STATE_POWERS``). A parameter the
    optimizer has no state for yet is skipped."""
    powers = _powers(optimizer)
    for p, a in factors:
        state = optimizer.state.get(p)
        if not state:
            continue
        for key, value in state.items():
            q = powers.get(key, 0)
            if q and isinstance(value, torch.Tensor):
                value.div_(a.to(value.dtype).pow(q))


def reset_state(optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor]) -> None:
    """Drop the state of ``params``: the optimizer starts them afresh at its next step, as a
    newly built optimizer would (the public reference rebuilds it after every teleport)."""
    for p in params:
        optimizer.state.pop(p, None)
