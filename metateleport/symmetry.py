"""The exact GL(d_k) action on the hidden layers of a LeakyReLU MLP (docs/design.md section 3).

For hidden layer k with input h_{k-1} of full column rank (so h^+ h = I_n), Z = W_k h_{k-1} and
g in GL(d_k):

    W_k'     = W_k + ( sigma^-1( g sigma(Z) ) - Z ) h_{k-1}^+
    W_{k+1}' = W_{k+1} g^-1

leaves the network output, hence the loss, unchanged for every g: W_k' h = Z + (sigma^-1(g
sigma(Z)) - Z) = sigma^-1(g sigma(Z)). It changes only the component of W_k in the span of the
batch, the smallest change of W_k that is exact on the batch: the identity at g = I, and on the
first hidden layer (whose input X is fixed) a group action, g_2 . (g_1 . W) = (g_2 g_1) . W. On
a deeper layer with n < d_{k-1} the orthogonal pseudo-inverse of the moved input g_{k-1} h does
not transform with g_{k-1}, so two moves agree with the move by the product on the batch
(outputs and loss) but not off it. (docs/history.md: the earlier form sigma^-1(g sigma(Z)) h^+
and why it went.)

We parameterize g = expm(T) with T in gl(d_k) and g^-1 = expm(-T) (both from ``expm_pair``);
unlike the first-order g = I + T, (I - T) of the public reference code, this is exact for every
T. Layers are acted on in order (1, 2), (2, 3), ..., each with the already-transformed input
h_{k-1}' = g_{k-1} h_{k-1}.

Biases (a bias column W_k = [A_k | b_k], mlp.py) enter through the augmented input [h; 1]:
layer k computes Z = W_k [h_{k-1}; 1], so the same formula with [h_{k-1}; 1] in place of h_{k-1}
moves A_k and b_k together (exact when [h; 1] has full column rank: n <= d_{k-1} + 1). In layer
k + 1, g^-1 acts on the columns that read layer k's units only: A_{k+1}' = A_{k+1} g^-1, and
b_{k+1} stays, since the constant 1 is not a unit of layer k and g does not mix it in.

Two groups (``GROUPS``, ``apply_group``): "gl", the action above, exact on its batch only, and
"diag", the positive per-unit rescalings g_k = exp(diag(t_k)) (``rescale_units``), exact for
every input because LeakyReLU is positively homogeneous (docs/design.md sections 3 and 10).
"""

from __future__ import annotations

import math

import torch

from .mlp import DEFAULT_SLOPE, affine, has_bias, leaky_relu, leaky_relu_inv, with_ones

__all__ = [
    "ACTIONS",
    "GROUPS",
    "act_on_inputs",
    "apply_group",
    "check_group",
    "RankError",
    "expm_pair",
    "first_order_pair",
    "group_act",
    "input_pinv",
    "pinv_full_column_rank",
    "rescale_units",
    "second_order_pair",
]

#: how T becomes (g, g^-1): "exact" (expm(T), expm(-T)) or "first_order" (I + T, I - T)
ACTIONS = ("exact", "first_order")
#: the groups a teleport moves in: GL(d_k) on the batch, or positive per-unit rescalings
GROUPS = ("gl", "diag")


class RankError(ValueError):
    """A hidden layer's input lacks full column rank: the group action would not be exact."""


def pinv_full_column_rank(
    h: torch.Tensor, layer: int = 1, rtol: float | None = None, check_rank: bool = True
) -> torch.Tensor:
    """Pseudo-inverse h^+ = R^-1 Q^T of a batch of full-column-rank matrices h = QR.

    h: (B, d, n) with n <= d. Returns (B, n, d). Raises RankError when n > d or when some h is
    numerically rank-deficient (smallest |R_ii| below rtol times the largest), naming the layer.
    """
    d, n = h.shape[-2], h.shape[-1]
    if n > d:
        raise RankError(
            f"the input of hidden layer {layer} is {d} x {n} with n={n} samples > "
            f"d_{layer - 1}={d} rows: it cannot have full column rank, so the group action "
            "is not exact"
        )
    Q, R = torch.linalg.qr(h)
    if check_rank:
        diag = R.diagonal(dim1=-2, dim2=-1).abs()
        tol = rtol if rtol is not None else 10 * max(d, n) * torch.finfo(h.dtype).eps
        bad = diag.amin(-1) <= tol * diag.amax(-1)
        if bool(bad.any()):
            idx = bad.nonzero().flatten().tolist()
            raise RankError(
                f"the input of hidden layer {layer} is numerically rank-deficient in problems "
                f"{idx[:8]}{'...' if len(idx) > 8 else ''}: the group action is not exact there"
            )
    # h^+ = R^-1 Q^T, a triangular solve.
    return torch.linalg.solve_triangular(R, Q.transpose(-2, -1), upper=True)


def expm_pair(T: torch.Tensor, tol: float = 1e-17) -> tuple[torch.Tensor, torch.Tensor]:
    """(expm(T), expm(-T)) for T (B, d, d), by a Taylor series with scaling and squaring.

    T is scaled by 2^-s so that every ||T_b||_F <= 1/2; the degree m is the smallest with
    theta^(m+1) / (m+1)! <= tol, where theta is the largest scaled norm (m <= 17 at
    theta = 1/2, m = 6 at the usual ||T||_F = 0.01). Both series share the powers of T (expm(-T)
    only flips the odd terms), and everything is a bmm, so autograd's backward is cheap: unlike
    torch.linalg.matrix_exp's, which exponentiates a 2d x 2d block matrix. Agrees with
    torch.linalg.matrix_exp to ~1e-15 in float64 (tests/test_symmetry.py).
    """
    norm = float(T.detach().pow(2).sum(dim=(-2, -1)).sqrt().max()) if T.numel() else 0.0
    if not math.isfinite(norm):
        # A diverged trajectory: let NaN/inf flow to the caller's guards (skipped window).
        norm = 0.0
    s = max(0, math.ceil(math.log2(norm / 0.5))) if norm > 0.5 else 0
    theta = norm / 2**s
    m, term = 1, theta
    while m < 30 and term * theta / (m + 1) > tol:
        m += 1
        term *= theta / m
    A = T / 2**s
    eye = torch.eye(T.shape[-1], dtype=T.dtype, device=T.device).expand_as(T)
    even, odd = eye, A
    power = A
    for k in range(2, m + 1):
        power = torch.bmm(power, A) / k
        if k % 2:
            odd = odd + power
        else:
            even = even + power
    g, g_inv = even + odd, even - odd
    for _ in range(s):
        g, g_inv = torch.bmm(g, g), torch.bmm(g_inv, g_inv)
    return g, g_inv


def first_order_pair(T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(I + T, I - T): the public reference code's group element and its "inverse".

    (I + T)(I - T) = I - T^2, so acting with this pair moves the loss by a second-order amount:
    a replication control (``tele_action: first_order``), never a teleport.
    """
    eye = torch.eye(T.shape[-1], dtype=T.dtype, device=T.device).expand_as(T)
    return eye + T, eye - T


def second_order_pair(T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(I + T + T^2/2, I - T + T^2/2): expm(T) and expm(-T) to second order, no group element.

    The orbit curve gamma(t) = expm(tM) . W and the curve acted on with this pair at T = tM agree
    up to O(t^3), so their first and second derivatives at t = 0 are equal: what the curvature
    objective (objectives.orbit_curvature) differentiates. Unlike ``expm_pair``, whose series
    degree follows ||T|| (at T = 0 it keeps the first-order term only), this is a fixed
    polynomial, so derivatives of any order in t are those of the pair as written.
    """
    eye = torch.eye(T.shape[-1], dtype=T.dtype, device=T.device).expand_as(T)
    half_sq = torch.bmm(T, T) / 2
    return eye + T + half_sq, eye - T + half_sq


#: the (g, g^-1) of each ``action`` of group_act
_PAIRS = {"exact": expm_pair, "first_order": first_order_pair, "second_order": second_order_pair}


def act_on_inputs(W: torch.Tensor, g_inv: torch.Tensor) -> torch.Tensor:
    """W_{k+1} g^-1 on the columns that read layer k's d_k units; a bias column stays."""
    d = g_inv.shape[-1]
    if W.shape[-1] == d:
        return torch.bmm(W, g_inv)
    return torch.cat([torch.bmm(W[..., :d], g_inv), W[..., d:]], dim=-1)


def rescale_units(
    weights: list[torch.Tensor], scales: list[torch.Tensor | None]
) -> list[torch.Tensor]:
    """The positive-diagonal part of the group: W_k <- diag(s_k) W_k, W_{k+1} <- W_{k+1}
    diag(s_k)^-1 for every hidden layer k with scales s_k (B, d_k) > 0 (None: leave it). A bias
    of layer k scales with its unit's row; one of layer k + 1 stays.

    sigma(s z) = s sigma(z) for s > 0 (LeakyReLU is positively homogeneous), so this equals
    ``group_act`` with T_k = diag(log s_k) but needs no pseudo-inverse: exact for any data.
    """
    if len(scales) != len(weights) - 1:
        raise ValueError(f"need one scale vector per hidden layer: {len(weights) - 1}, got "
                         f"{len(scales)}")
    new = list(weights)
    for k, s in enumerate(scales):
        if s is None:
            continue
        if s.shape != new[k].shape[:2]:
            raise ValueError(f"scales of hidden layer {k + 1} have shape {tuple(s.shape)}; "
                             f"expected {tuple(new[k].shape[:2])}")
        new[k] = s[:, :, None] * new[k]
        new[k + 1] = act_on_inputs(new[k + 1], torch.diag_embed(1 / s))
    return new


def input_pinv(X: torch.Tensor, W1: torch.Tensor | None = None) -> torch.Tensor | None:
    """X^+ (or [X; 1]^+ when the first layer's weight W1 has a bias column) for reuse across the
    steps of a trajectory, or None when it lacks full column rank: optimizers that do not
    teleport still run, and a teleport then raises the RankError naming the layer (group_act
    recomputes and checks the pseudo-inverse)."""
    if W1 is not None and has_bias(W1, X):
        X = with_ones(X)
    try:
        return pinv_full_column_rank(X, layer=1)
    except RankError:
        return None


def group_act(
    weights: list[torch.Tensor],
    X: torch.Tensor,
    Ts: list[torch.Tensor | None],
    slope: float = DEFAULT_SLOPE,
    *,
    check_rank: bool = True,
    x_pinv: torch.Tensor | None = None,
    compute_dtype: torch.dtype | None = torch.float64,
    action: str = "exact",
) -> list[torch.Tensor]:
    """Act with g_k = expm(T_k) on every hidden layer k = 1..L-1.

    weights: [W_1 (B, d_1, d_0), ..., W_L (B, d_L, d_{L-1})], each with one more column when
    its layer has a bias; X: (B, d_0, n);
    Ts: L-1 entries, T_k of shape (B, d_k, d_k), or None to leave layer k alone.
    x_pinv: optional precomputed X^+ (B, n, d_0) (``input_pinv``; [X; 1]^+ (B, n, d_0 + 1) when
        W_1 has a bias), reused across steps since X is fixed.
    compute_dtype: dtype of the internal computation (None: the weights' own). The pseudo-inverse
        loses about eps * cond(h_{k-1}), so float32 weights gain from a float64 computation
        (docs/results.md measures by how much).
    action: "exact" (g = expm(T)) or "first_order" (g = I + T with I - T as its inverse, the
        public reference's shortcut, which moves the loss: ``first_order_pair``); "second_order"
        (``second_order_pair``) only serves derivatives of the orbit curve at T = 0.
    Returns the new weights (same shapes and dtype); differentiable in weights and Ts.
    """
    L = len(weights)
    out_dtype = weights[0].dtype
    if compute_dtype is not None and compute_dtype != out_dtype:
        cast = [w.to(compute_dtype) for w in weights]
        Ts_cast = [None if T is None else T.to(compute_dtype) for T in Ts]
        pinv = None if x_pinv is None else x_pinv.to(compute_dtype)
        new = group_act(cast, X.to(compute_dtype), Ts_cast, slope, check_rank=check_rank,
                        x_pinv=pinv, compute_dtype=None, action=action)
        return [w.to(out_dtype) for w in new]
    if action not in _PAIRS:
        raise ValueError(f"action must be one of {tuple(_PAIRS)}, got {action!r}")
    if len(Ts) != L - 1:
        raise ValueError(f"need one T per hidden layer: {L - 1} for {L} layers, got {len(Ts)}")
    new = list(weights)
    h = X
    for k, T in enumerate(Ts):
        z = affine(new[k], h)
        if T is None:
            h = leaky_relu(z, slope)
            continue
        d = new[k].shape[1]
        if T.shape != (X.shape[0], d, d):
            raise ValueError(
                f"T_{k + 1} has shape {tuple(T.shape)}; expected (B={X.shape[0]}, {d}, {d})"
            )
        g, g_inv = _PAIRS[action](T)
        a = torch.bmm(g, leaky_relu(z, slope))
        h_in = with_ones(h) if has_bias(new[k], h) else h
        if k == 0 and x_pinv is not None:
            if x_pinv.shape[-1] != h_in.shape[1]:
                raise ValueError(f"x_pinv has shape {tuple(x_pinv.shape)}, but the first layer's "
                                 f"input is {tuple(h_in.shape)}: pass input_pinv(X, W_1)")
            h_pinv = x_pinv
        else:
            h_pinv = pinv_full_column_rank(h_in, layer=k + 1, check_rank=check_rank)
        new[k] = new[k] + torch.bmm(leaky_relu_inv(a, slope) - z, h_pinv)
        new[k + 1] = act_on_inputs(new[k + 1], g_inv)
        # sigma(W_k' h) = g sigma(z) exactly (h^+ h = I): the next layer's input is a.
        h = a
    return new


def check_group(group: str) -> str:
    """``group`` if it is one of GROUPS, else a ValueError naming the choices."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    return group


def apply_group(
    weights: list[torch.Tensor],
    X: torch.Tensor | None,
    params: list[torch.Tensor | None],
    group: str = "gl",
    slope: float = DEFAULT_SLOPE,
    *,
    x_pinv: torch.Tensor | None = None,
    action: str = "exact",
    check_rank: bool = True,
) -> list[torch.Tensor]:
    """Move ``weights`` by the group element of ``params``, one entry per hidden layer k.

    group "gl": T_k (B, d_k, d_k), g_k = expm(T_k), ``group_act`` on the batch X (B, d_0, n)
        (exact on that batch; ``x_pinv`` and ``action`` as there).
    group "diag": t_k (B, d_k), g_k = exp(diag(t_k)), ``rescale_units`` with s_k = exp(t_k):
        W_k's rows (its bias included) times s_k, W_{k+1}'s unit columns divided by s_k; exact
        for every input, so X may be None. ||diag(t_k)||_F = ||t_k||, the size of the move
        measured as for gl. ``action`` "second_order" gives the same exact move (the
        exponential is differentiable at every order as it stands); "first_order" is refused.
    None leaves a layer alone. Returns new weights, differentiable in weights and params.
    """
    check_group(group)
    if group == "gl":
        if X is None:
            raise ValueError("the gl group acts on a batch: pass X (B, d_0, n)")
        return group_act(weights, X, params, slope, check_rank=check_rank, x_pinv=x_pinv,
                         action=action)
    if action == "first_order":
        raise ValueError("action 'first_order' is the gl shortcut of the public reference; the "
                         "diag group has only the exact exp(diag(t))")
    for k, t in enumerate(params):
        if t is not None and t.shape != weights[k].shape[:2]:
            raise ValueError(f"t_{k + 1} of the diag group has shape {tuple(t.shape)}; expected "
                             f"(B, d_{k + 1}) = {tuple(weights[k].shape[:2])}")
    return rescale_units(weights, [None if t is None else t.exp() for t in params])
