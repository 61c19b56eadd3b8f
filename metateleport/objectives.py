"""The paper's teleport objectives (docs/design.md sections 4 and 10): what a teleport ascends or
descends along the orbit of the weights.

An objective maps the weights of B problems [W_k (B, d_k, d_{k-1} (+1))], their batch X
(B, d_0, n), Y (B, d_L, n), the LeakyReLU slope and the group ("gl" or "diag",
symmetry.GROUPS) to one number per problem, shape (B,), differentiable with respect to the
weights. Composed with symmetry.apply_group it is a differentiable function of the group
parameter (T_k for gl, t_k for diag), which is what teleporter.Teleporter steps on.

The loss is the package's, mlp.mlp_loss: L(W) = 1/2 ||Y - f(X)||_F^2 summed over the samples
(class labels as one-hot rows). A mean over the samples would scale the grad-norm objective by
1/n^2 and sharpness by 1/n and leave curvature alone (it does not read Y): the direction of every
gradient step on the group parameter is the same, only raw step sizes would differ.

- ``GradNormSq``: ||grad_W L||^2 over all layers (teleport.grad_norm_sq), today's objective; it
  makes gradient descent faster right after the teleport.
- ``Sharpness``: mean over fixed draws of L(W + r_j u_j) - L(W), u_j a unit direction in the
  space of all weights (biases included) and r_j from ``radii``, as the public reference measures
  it (which draws 100 directions at each radius 0.1, ..., 0.9). The draws come from a generator
  seeded afresh at every call, so the objective is a deterministic, differentiable function of
  the weights.
- ``Curvature``: the curvature at t = 0 of the orbit curve gamma(t) = expm(tM) . W for a fixed
  (seeded) direction M of the group's Lie algebra, kappa = sqrt(|g1|^2 |g2|^2 - (g1 . g2)^2) /
  |g1|^3 with g1 = gamma'(0), g2 = gamma''(0): the curvature of a space curve, in any dimension.
  The paper reports that moving to larger curvature of the minimum lowers validation loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch.func import jvp

from .mlp import DEFAULT_SLOPE, mlp_loss
from .symmetry import apply_group, check_group
from .teleport import grad_norm_sq

__all__ = [
    "OBJECTIVES",
    "Curvature",
    "GradNormSq",
    "Objective",
    "Sharpness",
    "curve_curvature",
    "make_objective",
    "orbit_curvature",
    "perturbations",
    "sharpness",
]

#: how ``Sharpness`` draws unit directions: uniform on the sphere, or the reference's torch.rand
DISTRIBUTIONS = ("sphere", "orthant")


class Objective(Protocol):
    """``objective(weights, X, Y, slope, group) -> (B,)``, differentiable in the weights;
    ``reads_targets``: whether it reads Y (a teleporter asks for targets only then)."""

    name: str
    reads_targets: bool

    def __call__(self, weights: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
                 slope: float = DEFAULT_SLOPE, group: str = "gl") -> torch.Tensor: ...


@dataclass(frozen=True)
class GradNormSq:
    """||grad_W L(W)||^2 summed over all layers, per problem (B,); twice differentiable."""

    name: str = "grad_norm"
    reads_targets = True

    def __call__(self, weights, X, Y, slope=DEFAULT_SLOPE, group="gl"):
        # grad_norm_sq differentiates L: weights off a graph get one of their own
        weights = [w if w.requires_grad else w.detach().requires_grad_() for w in weights]
        return grad_norm_sq(weights, X, Y, slope)


def perturbations(
    weights: list[torch.Tensor], radii: Sequence[float], n_directions: int,
    generator: torch.Generator, distribution: str = "sphere",
) -> list[torch.Tensor]:
    """Fixed perturbations E_j = r_j u_j of all weights, j = 1..N with N = len(radii) x
    n_directions (the radius of draw j is radii[j // n_directions]).

    u_j: a unit vector in the space of all weights of a problem (every layer, bias columns
    included): a normal draw normalized ("sphere", uniform on the sphere) or a U[0, 1) draw
    normalized ("orthant", the public reference's torch.rand). Drawn on the CPU in float64.
    Returns one tensor (N, B, *W_k.shape[1:]) per layer, in the weights' dtype and device.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    B = weights[0].shape[0]
    sizes = [w[0].numel() for w in weights]
    N = len(radii) * n_directions
    draw = torch.randn if distribution == "sphere" else torch.rand
    u = draw(N, B, sum(sizes), generator=generator, dtype=torch.float64)
    r = torch.tensor([float(x) for x in radii], dtype=torch.float64).repeat_interleave(
        n_directions)
    e = u / u.norm(dim=2, keepdim=True) * r[:, None, None]
    like = weights[0]
    return [part.reshape(N, *w.shape).to(like.dtype).to(like.device)
            for part, w in zip(e.split(sizes, dim=2), weights)]


def sharpness(
    weights: list[torch.Tensor], perturbs: list[torch.Tensor],
    loss_fn: Callable[[list[torch.Tensor]], torch.Tensor],
) -> torch.Tensor:
    """mean_j L(W + E_j) - L(W), per problem (B,).

    weights: [W_k (B, ...)]; perturbs: [E_k (N, B, ...)] (``perturbations``); loss_fn: weights
    of any leading batch size M -> losses (M,), called once on the N x B perturbed problems
    (flattened draw-major) and once on ``weights``. Differentiable in the weights.
    """
    N, B = perturbs[0].shape[:2]
    shifted = [(w[None] + e).reshape(N * B, *w.shape[1:]) for w, e in zip(weights, perturbs)]
    return loss_fn(shifted).reshape(N, B).mean(0) - loss_fn(weights)


@dataclass(frozen=True)
class Sharpness:
    """Mean loss increase under fixed random perturbations of the weights (``sharpness``).

    radii: the perturbation radii (default the reference's 0.1, 0.2, ..., 0.9); n_directions:
    unit directions per radius; seed: the generator's seed, fixed, so every call perturbs by the
    same draws; distribution: "sphere" or "orthant" (``perturbations``). The group is not read:
    sharpness is a property of the point, whichever orbit it was reached by.
    """

    radii: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    n_directions: int = 100
    seed: int = 0
    distribution: str = "sphere"
    name: str = "sharpness"
    reads_targets = True

    def __post_init__(self):
        radii = (self.radii,) if isinstance(self.radii, (int, float)) else tuple(self.radii)
        if not radii or not all(float(r) > 0 for r in radii):
            raise ValueError(f"radii must be positive numbers, got {self.radii!r}")
        object.__setattr__(self, "radii", tuple(float(r) for r in radii))
        if self.n_directions < 1:
            raise ValueError(f"n_directions must be >= 1, got {self.n_directions}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got "
                             f"{self.distribution!r}")

    def __call__(self, weights, X, Y, slope=DEFAULT_SLOPE, group="gl"):
        gen = torch.Generator().manual_seed(self.seed)
        perturbs = perturbations(weights, self.radii, self.n_directions, gen, self.distribution)

        def loss_fn(ws):
            reps = ws[0].shape[0] // X.shape[0]
            return mlp_loss(ws, X.repeat(reps, 1, 1), Y.repeat(reps, 1, 1), slope)

        return sharpness(weights, perturbs, loss_fn)


def curve_curvature(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """kappa = sqrt(|g1|^2 |g2|^2 - (g1 . g2)^2) / |g1|^3 for velocities g1 and accelerations
    g2 of shape (B, D): the curvature of a curve in R^D (|g1 x g2| / |g1|^3 in R^3), per row.

    The radicand is |g1|^2 |g2 - proj_g1 g2|^2 >= 0; it is clamped at a tiny positive number
    against rounding, which also keeps the square root's gradient finite on a straight curve."""
    a, b, c = g1.pow(2).sum(1), g2.pow(2).sum(1), (g1 * g2).sum(1)
    tiny = torch.finfo(g1.dtype).tiny
    return (a * b - c * c).clamp_min(tiny).sqrt() / a.pow(1.5)


def orbit_curvature(
    weights: list[torch.Tensor], X: torch.Tensor | None, M: list[torch.Tensor | None],
    group: str = "gl", slope: float = DEFAULT_SLOPE,
) -> torch.Tensor:
    """Curvature at t = 0 of gamma(t) = expm(tM) . W, per problem (B,).

    M: one Lie-algebra direction per hidden layer, as symmetry.apply_group's params (gl: M_k
    (B, d_k, d_k); diag: m_k (B, d_k); None: that layer does not move). gamma'(0) and
    gamma''(0) come from two nested forward-mode derivatives (torch.func.jvp) of the curve over
    the flattened weights of every layer; for gl the curve is acted on with
    symmetry.second_order_pair, which agrees with expm(tM) to O(t^3) and so has the same two
    derivatives at 0. Every layer moves together, the deeper ones with their moved inputs, so
    the cross terms between layers are in (the public reference adds up each layer's own terms,
    which is the same for one hidden layer). Differentiable in the weights.
    """
    t0 = weights[0].new_zeros(())
    one = torch.ones_like(t0)

    def curve(t):
        moved = apply_group(weights, X, [None if m is None else t * m for m in M], group, slope,
                            action="second_order")
        return torch.cat([w.flatten(1) for w in moved], dim=1)

    def velocity(t):
        return jvp(curve, (t,), (one,))[1]

    g1, g2 = jvp(velocity, (t0,), (one,))
    return curve_curvature(g1, g2)


@dataclass(frozen=True)
class Curvature:
    """Curvature of the minimum (``orbit_curvature``) along fixed random directions.

    seed: the generator of the directions, seeded afresh at every call; n_directions: the mean
    of kappa over this many directions M; layer: move only this hidden layer (1-based; the
    reference uses one), or None for all. M_k has i.i.d. normal entries (gl: d_k x d_k; diag:
    d_k). kappa does not depend on the scale of M (a curve's curvature is independent of its
    speed), only on its direction. The group is that of the orbit: the teleport's own.
    """

    seed: int = 0
    n_directions: int = 1
    layer: int | None = None
    name: str = "curvature"
    reads_targets = False

    def __post_init__(self):
        if self.n_directions < 1:
            raise ValueError(f"n_directions must be >= 1, got {self.n_directions}")
        if self.layer is not None and self.layer < 1:
            raise ValueError(f"layer is a 1-based hidden layer index, got {self.layer}")

    def directions(self, weights: list[torch.Tensor], group: str) -> list[list[torch.Tensor]]:
        """The n_directions lists of M_k this objective reads for ``weights`` and ``group``."""
        check_group(group)
        hidden = len(weights) - 1
        if self.layer is not None and self.layer > hidden:
            raise ValueError(f"layer {self.layer} asked for, but the network has {hidden} "
                             "hidden layer(s)")
        gen = torch.Generator().manual_seed(self.seed)
        B, like = weights[0].shape[0], weights[0]
        out = []
        for _ in range(self.n_directions):
            Ms = []
            for k, w in enumerate(weights[:-1]):
                d = w.shape[1]
                shape = (B, d, d) if group == "gl" else (B, d)
                m = torch.randn(shape, generator=gen, dtype=torch.float64)
                keep = self.layer is None or self.layer == k + 1
                Ms.append(m.to(like.dtype).to(like.device) if keep else None)
            out.append(Ms)
        return out

    def __call__(self, weights, X, Y, slope=DEFAULT_SLOPE, group="gl"):
        kappas = [orbit_curvature(weights, X, M, group, slope)
                  for M in self.directions(weights, group)]
        return torch.stack(kappas).mean(0)


#: the objectives by name (teleporter.Teleporter's ``objective``)
OBJECTIVES: dict[str, type] = {"grad_norm": GradNormSq, "sharpness": Sharpness,
                               "curvature": Curvature}


def make_objective(objective: str | Objective, **kwargs) -> Objective:
    """The objective named ``objective`` (a key of OBJECTIVES) built with ``kwargs``, or
    ``objective`` itself when it is already one (then kwargs must be empty)."""
    if isinstance(objective, str):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {tuple(OBJECTIVES)} or an objective "
                             f"object, got {objective!r}")
        return OBJECTIVES[objective](**kwargs)
    if kwargs:
        raise ValueError("options are for an objective given by name, not for an objective "
                         f"object ({objective!r})")
    if not callable(objective):
        raise ValueError(f"objective must be one of {tuple(OBJECTIVES)} or a callable "
                         f"objective, got {objective!r}")
    return objective
