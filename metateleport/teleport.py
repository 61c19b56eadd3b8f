"""Teleportation: moving the weights along the loss level set (docs/design.md sections 4 and 8).

The objective is the squared gradient norm after the move, Obj(T) = ||grad_W L(expm(T) . W)||^2,
whose loss is held fixed by the exact group action. The teleport feature G = dObj/dT at T = 0
(one d_k x d_k matrix per hidden layer) is what the group meta-optimizer reads.

Two layers: pure functions (``teleport_feature``, ``ascent_teleport``, ``random_teleport``,
``balance_teleport``, ...) and the ``Teleport`` objects every caller composes with an update rule
and a ``Schedule`` (inner.Teleporting): ``AscentTeleport``, ``RandomTeleport``,
``BalanceTeleport`` here, learned.LearnedTeleport (m2) and oracle.OracleTeleport beside them. A
teleport is one call, ``teleport(weights, state, ctx) -> (weights, state)``; ``norm`` is the
Frobenius norm of a move's T_k everywhere. The ascent and random teleports move in either group of
symmetry.GROUPS: "gl" (T_k (B, d_k, d_k), exact on the batch) or "diag" (t_k (B, d_k), the
positive per-unit rescalings exp(diag(t_k)), exact for every input; ||diag(t_k)||_F = ||t_k||, so
``norm`` means the same size in both). Too large a teleport makes a fixed step size diverge
(a steeper point is also a more curved one): docs/history.md measures where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from .mlp import DEFAULT_SLOPE, mlp_loss
from .symmetry import ACTIONS, apply_group, check_group, rescale_units

if TYPE_CHECKING:
    from .inner import StepContext
    from .tasks import Problems

State = dict[str, Any]

__all__ = [
    "HAND_TELEPORTS",
    "AscentTeleport",
    "BalanceTeleport",
    "RandomTeleport",
    "Schedule",
    "Teleport",
    "ascent_teleport",
    "balance_fully",
    "balance_signal",
    "balance_teleport",
    "balanced_problems",
    "clip_frobenius",
    "grad_norm_sq",
    "make_teleport",
    "random_teleport",
    "rescale_frobenius",
    "teleport_feature",
    "unit_curvature",
]


def grad_norm_sq(
    weights: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor, slope: float = DEFAULT_SLOPE
) -> torch.Tensor:
    """Obj = ||grad_W L(W)||^2 summed over all layers, per problem (B,); twice differentiable."""
    if not all(w.requires_grad for w in weights):
        raise ValueError("grad_norm_sq needs weights that require grad (it differentiates L)")
    loss = mlp_loss(weights, X, Y, slope)
    grads = torch.autograd.grad(loss.sum(), weights, create_graph=True)
    return sum(g.pow(2).sum(dim=(1, 2)) for g in grads)


def teleport_feature(
    weights: list[torch.Tensor],
    X: torch.Tensor,
    Y: torch.Tensor,
    slope: float = DEFAULT_SLOPE,
    *,
    x_pinv: torch.Tensor | None = None,
    method: str = "auto",
    group: str = "gl",
) -> list[torch.Tensor]:
    """G_k = dObj/dT_k at T = 0 for every hidden layer k.

    weights: [W_1 (B, d_1, d_0), ...]; X: (B, d_0, n); Y: (B, d_L, n).
    Returns L-1 detached tensors G_k of shape (B, d_k, d_k), or, for group "diag", g_k =
    dObj/dt_k at t = 0 of shape (B, d_k) (always by autograd).
    method: "autograd" (double backward through the group action, any depth, biases or not),
    "closed_form" (bias-free two-layer nets only, see ``_feature_two_layer``) or "auto" (closed
    form when it applies).
    """
    if check_group(group) == "diag":
        if method not in ("auto", "autograd"):
            raise ValueError(f"the diag feature is computed by autograd, got method {method!r}")
        method = "autograd"
    two_layer = (len(weights) == 2 and weights[0].shape[-1] == X.shape[1]
                 and weights[1].shape[-1] == weights[0].shape[1])
    if method == "auto":
        method = "closed_form" if two_layer else "autograd"
    if method == "closed_form":
        if not two_layer:
            shapes = [tuple(w.shape) for w in weights]
            raise ValueError("the closed-form feature needs 2 bias-free layers, got weights of "
                             f"shapes {shapes}")
        with torch.no_grad():
            return [_feature_two_layer(weights[0].detach(), weights[1].detach(), X, Y, slope)]
    if method != "autograd":
        raise ValueError(f"method must be auto, autograd or closed_form, got {method!r}")
    with torch.enable_grad():
        base = [w.detach() for w in weights]
        shape = (lambda d: (X.shape[0], d, d)) if group == "gl" else (lambda d: (X.shape[0], d))
        Ts = [torch.zeros(shape(w.shape[1]), dtype=w.dtype, device=w.device, requires_grad=True)
              for w in base[:-1]]
        moved = apply_group(base, X, Ts, group, slope, x_pinv=x_pinv)
        obj = grad_norm_sq(moved, X, Y, slope)
        # Problems are independent: the gradient of the batch sum is the per-problem gradient.
        return [G.detach() for G in torch.autograd.grad(obj.sum(), Ts)]


def _feature_two_layer(W1, W2, X, Y, slope):
    """Closed-form G for L = 2, equal to the double-backward one (tests/test_teleport.py).

    With Z = W1 X, D = sigma'(Z), A = sigma(Z), R = W2 A - Y, the action g = expm(T) gives
    A' = g A, W2' = W2 g^-1 and leaves R unchanged, so (D is locally constant in T)

        grad W2' = R A^T g^T,   grad W1' = ((g^-T W2^T R) * D) X^T.

    Differentiating the squared norms at T = 0 (d expm = dT, d expm(-T) = -dT) with
    P = R A^T = grad W2, E = W2^T R and Gamma = (E * D) X^T = grad W1:

        G = 2 P^T P - 2 E ((Gamma X) * D)^T.
    """
    Z = torch.bmm(W1, X)
    D = torch.where(Z >= 0, torch.ones_like(Z), torch.full_like(Z, slope))
    A = Z * D
    R = torch.bmm(W2, A) - Y
    P = torch.bmm(R, A.transpose(1, 2))
    E = torch.bmm(W2.transpose(1, 2), R)
    gamma = torch.bmm(E * D, X.transpose(1, 2))
    Q = torch.bmm(gamma, X) * D
    return 2 * torch.bmm(P.transpose(1, 2), P) - 2 * torch.bmm(E, Q.transpose(1, 2))


def _frobenius(T: torch.Tensor) -> torch.Tensor:
    return T.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()


def rescale_frobenius(T: torch.Tensor, norm: float | torch.Tensor, eps: float = 1e-30):
    """Scale each T[b] (B, d, d) to Frobenius norm ``norm`` (a zero T stays zero)."""
    return T * (norm / _frobenius(T).clamp_min(eps))


def clip_frobenius(T: torch.Tensor, max_norm: float, eps: float = 1e-30) -> torch.Tensor:
    """Scale down each T[b] whose Frobenius norm exceeds ``max_norm``."""
    return T * (max_norm / _frobenius(T).clamp_min(eps)).clamp_max(1.0)


def _per_problem(fn, x: torch.Tensor, *args) -> torch.Tensor:
    """``fn`` (rescale_frobenius, clip_frobenius) on a gl T (B, d, d) or a diag t (B, d), whose
    diag(t) has Frobenius norm ||t||."""
    return fn(x, *args) if x.dim() == 3 else fn(x[:, None], *args)[:, 0]


def ascent_teleport(
    weights: list[torch.Tensor],
    X: torch.Tensor,
    Y: torch.Tensor,
    steps: int = 8,
    step_size: float | None = None,
    max_norm: float = 0.01,
    slope: float = DEFAULT_SLOPE,
    *,
    x_pinv: torch.Tensor | None = None,
    group: str = "gl",
) -> list[torch.Tensor]:
    """Gradient-ascent teleport: ``steps`` times, T_k = step_size * G_k(W), capped at
    ||T_k||_F <= max_norm per problem and layer, then W <- expm(T) . W.

    step_size=None normalizes every step to ||T_k||_F = max_norm (normalized ascent).
    group "diag": the same steps on t_k (B, d_k) with the diag feature, W <- exp(diag(t)) . W.
    Returns new detached weights with the same loss and a larger ||grad L||^2.
    """
    if steps < 0 or max_norm <= 0:
        raise ValueError(f"need steps >= 0 and max_norm > 0, got {steps}, {max_norm}")
    with torch.no_grad():
        weights = [w.detach() for w in weights]
        for _ in range(steps):
            G = teleport_feature(weights, X, Y, slope, x_pinv=x_pinv, group=group)
            if step_size is None:
                Ts = [_per_problem(rescale_frobenius, g, max_norm) for g in G]
            else:
                Ts = [_per_problem(clip_frobenius, step_size * g, max_norm) for g in G]
            weights = apply_group(weights, X, Ts, group, slope, x_pinv=x_pinv)
    return weights


def random_teleport(
    weights: list[torch.Tensor],
    X: torch.Tensor,
    norm: float,
    generator: torch.Generator | None = None,
    slope: float = DEFAULT_SLOPE,
    *,
    x_pinv: torch.Tensor | None = None,
    action: str = "exact",
    group: str = "gl",
) -> list[torch.Tensor]:
    """Random teleport: T_k with i.i.d. normal entries, rescaled to ||T_k||_F = norm per problem
    (``action`` as in symmetry.group_act); group "diag": t_k (B, d_k) likewise, ||t_k|| = norm."""
    Ts = []
    for w in weights[:-1]:
        shape = (w.shape[0], w.shape[1]) + ((w.shape[1],) if group == "gl" else ())
        T = torch.randn(shape, generator=generator, dtype=w.dtype, device="cpu").to(w.device)
        Ts.append(_per_problem(rescale_frobenius, T, norm))
    return apply_group(weights, X, Ts, group, slope, x_pinv=x_pinv, action=action)


def _unit_norms(weights: list[torch.Tensor], k: int, eps: float = 1e-30):
    """(||row i of W_k||, ||column i of W_{k+1}||) for hidden layer k (0-based), each (B, d):
    the row includes unit i's bias (it scales with the unit), the next layer's bias column is
    no unit's column."""
    d = weights[k].shape[1]
    return (weights[k].norm(dim=2).clamp_min(eps),
            weights[k + 1][..., :d].norm(dim=1).clamp_min(eps))


def balance_signal(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """r_k,i = log(||column i of W_{k+1}|| / ||row i of W_k||) for every hidden layer k, each
    (B, d_k): 0 where unit i's outgoing and incoming weights are balanced, and
    log(s^2) after W_k <- diag(s) W_k, W_{k+1} <- W_{k+1} diag(s)^-1 of a balanced point."""
    out = []
    for k in range(len(weights) - 1):
        rows, cols = _unit_norms(weights, k)
        out.append(cols.log() - rows.log())
    return out


def unit_curvature(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """kappa_k,i = 2 r s / (r^2 + s^2)^(3/2), r = ||row i of W_k||, s = ||column i of W_{k+1}||,
    for every hidden layer k, each (B, d_k): the curvature at t = 0 of the orbit of unit i's
    rescaling, gamma(t) = (e^t row i, e^-t column i) (objectives.orbit_curvature with the diag
    direction e_i): gamma' = (row, -column) and gamma'' = (row, column) give |gamma'|^2 =
    |gamma''|^2 = r^2 + s^2 and gamma' . gamma'' = r^2 - s^2. Largest at balance for a given
    r^2 + s^2; the paper's "curvature of the minimum" per unit, in closed form."""
    out = []
    for k in range(len(weights) - 1):
        r, s = _unit_norms(weights, k)
        out.append(2 * r * s / (r * r + s * s).pow(1.5))
    return out


def balance_teleport(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """The closed-form balancing teleport (docs/design.md section 8): for hidden layers k = 1, 2,
    ... in order, s_i = sqrt(||column i of W_{k+1}|| / ||row i of W_k||), then W_k <- diag(s) W_k,
    W_{k+1} <- W_{k+1} diag(s)^-1, after which unit i of layer k has equal incoming and outgoing
    norms. One sweep: with one hidden layer every unit ends balanced; with more, the last
    hidden layer does, and an earlier one only until the next layer's rescaling changes the
    norms of its outgoing columns. Exact (a positive diagonal group element), differentiable,
    same shapes."""
    weights = list(weights)
    for k in range(len(weights) - 1):
        rows, cols = _unit_norms(weights, k)
        scales: list[torch.Tensor | None] = [None] * (len(weights) - 1)
        scales[k] = (cols / rows).sqrt()
        weights = rescale_units(weights, scales)
    return weights


def balance_fully(weights: list[torch.Tensor], tol: float = 1e-5,
                  max_sweeps: int = 500) -> list[torch.Tensor]:
    """``balance_teleport`` swept until every unit of every hidden layer is balanced: until
    max |balance_signal| <= ``tol`` over all problems and units, at most ``max_sweeps`` sweeps.
    Each unit's rescaling exactly minimizes the sum of the squared norms of all weights over
    its own scale, so the sweeps are coordinate descent on that convex function of the log
    scales, and their fixed point is the point of least norm on the rescaling orbit, where
    every unit is balanced (one sweep reaches it with one hidden layer). Exact for every input
    (positive diagonal group elements); model.balance_first applies it to W_0."""
    if tol <= 0 or max_sweeps < 1:
        raise ValueError(f"need tol > 0 and max_sweeps >= 1, got {tol}, {max_sweeps}")
    weights = list(weights)
    for _ in range(max_sweeps):
        weights = balance_teleport(weights)
        if max(float(r.abs().max()) for r in balance_signal(weights)) <= tol:
            break
    return weights


def balanced_problems(problems, balance=balance_fully):
    """The problems (one shape, or MixedProblems: every group) with every network's weights
    moved by ``balance`` (balance_fully, or one sweep: balance_teleport): the same function of
    every input, as a balance_first optimizer starts from them."""
    import dataclasses

    from .tasks import MixedProblems

    if isinstance(problems, MixedProblems):
        return MixedProblems([balanced_problems(g, balance) for g in problems.groups])
    return dataclasses.replace(problems, weights=balance(problems.weights))


@dataclass(frozen=True)
class Schedule:
    """When a teleport follows the update of inner step t: at the steps in ``at`` if given, else
    every ``every`` steps from step 0 while t < ``until`` (None: the whole run). The one
    spelling of a schedule (config keys model.tele_every, model.tele_until)."""

    every: int = 1
    until: int | None = None
    at: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.every < 1 or (self.until is not None and self.until < 1):
            raise ValueError(f"need every >= 1 and until >= 1 or None, got {self.every}, "
                             f"{self.until}")
        if self.at is not None:
            object.__setattr__(self, "at", tuple(int(t) for t in self.at))

    def due(self, t: int) -> bool:
        if self.at is not None:
            return t in self.at
        return t % self.every == 0 and (self.until is None or t < self.until)


class Teleport(Protocol):
    """A move along the level set: ``(weights, state, ctx) -> (weights, state)``.

    weights: [W_k (B, d_k, d_{k-1} (+1))]; state: the whole optimizer state (a learned teleport
    keeps its LSTM state in it); ctx: inner.StepContext (the problems, X^+, a stats dict).
    ``init_state(problems)`` returns the entries this teleport adds to the optimizer state.
    """

    name: str

    def init_state(self, problems: Problems) -> State: ...

    def __call__(self, weights: list[torch.Tensor], state: State, ctx: StepContext
                 ) -> tuple[list[torch.Tensor], State]: ...


class _Stateless:
    def init_state(self, problems: Problems) -> State:
        return {}


@dataclass
class AscentTeleport(_Stateless):
    """``steps`` gradient-ascent steps on ||grad L||^2 (``ascent_teleport``): each T_k of norm
    ``norm`` (normalized ascent), or ``step_size`` times the feature capped at ``norm``, in the
    ``group`` "gl" (the default) or "diag"."""

    steps: int = 8
    step_size: float | None = None
    norm: float = 0.01
    name: str = "teleport"
    group: str = "gl"

    def __post_init__(self):
        check_group(self.group)

    def __call__(self, weights, state, ctx):
        p = ctx.problems
        return ascent_teleport(weights, p.X, p.Y, self.steps, self.step_size, self.norm,
                               p.slope, x_pinv=ctx.x_pinv, group=self.group), state


@dataclass
class RandomTeleport(_Stateless):
    """T_k with i.i.d. normal entries rescaled to ||T_k||_F = ``norm`` (``random_teleport``,
    torch's global generator), with the ``action`` of symmetry.group_act, in the ``group`` "gl"
    (the default) or "diag" (t_k with ||t_k|| = ``norm``; action "exact" only)."""

    norm: float = 0.01
    action: str = "exact"
    name: str = "random tele"
    group: str = "gl"

    def __post_init__(self):
        if not self.norm > 0:
            raise ValueError(f"norm must be > 0, got {self.norm}")
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {self.action!r}")
        if check_group(self.group) == "diag" and self.action != "exact":
            raise ValueError(f"the diag group has only the exact action, got {self.action!r}")

    def __call__(self, weights, state, ctx):
        p = ctx.problems
        return random_teleport(weights, p.X, self.norm, slope=p.slope, x_pinv=ctx.x_pinv,
                               action=self.action, group=self.group), state


@dataclass
class BalanceTeleport(_Stateless):
    """The closed-form balancing rescaling (``balance_teleport``), exact for every input."""

    name: str = "balance"
    group = "diag"  # a per-unit rescaling (not a field: it is no option)

    def __call__(self, weights, state, ctx):
        return balance_teleport(weights), state


#: the hand-designed teleports by name (LearnedOpt.teleport's ``kind``, evaluation's baselines)
HAND_TELEPORTS: dict[str, type] = {"ascent": AscentTeleport, "random": RandomTeleport,
                                   "balance": BalanceTeleport}


def make_teleport(kind: str, **kwargs) -> Teleport:
    """The hand-designed teleport ``kind`` (a key of HAND_TELEPORTS) with its options."""
    if kind not in HAND_TELEPORTS:
        raise ValueError(f"teleport kind must be one of {tuple(HAND_TELEPORTS)}, got {kind!r}")
    return HAND_TELEPORTS[kind](**kwargs)
