"""The teleport objectives: gradients with respect to the group parameter against finite
differences (float64), and cases with a known answer."""

from __future__ import annotations

import pytest
import torch

from metateleport.mlp import leaky_relu, mlp_loss, mlp_loss_and_grad
from metateleport.objectives import (
    Curvature,
    GradNormSq,
    Sharpness,
    curve_curvature,
    make_objective,
    orbit_curvature,
    perturbations,
    sharpness,
)
from metateleport.symmetry import apply_group, group_act
from metateleport.tasks import MLPTaskFamily
from metateleport.teleport import grad_norm_sq, teleport_feature

F64 = torch.float64
OBJECTIVES = {
    "grad_norm": GradNormSq(),
    "sharpness": Sharpness(radii=(0.05, 0.2), n_directions=6, seed=3),
    "curvature": Curvature(seed=5, n_directions=2),
}


def problems(widths=(5, 6, 4, 3), n=5, bias=True, seed=0):
    return MLPTaskFamily(list(widths), n, init="normal", data="normal", dtype=F64,
                         bias=bias).sample(2, seed)


def group_params(p, group, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    shape = (lambda d: (2, d, d)) if group == "gl" else (lambda d: (2, d))
    return [scale * torch.randn(shape(w.shape[1]), generator=gen, dtype=F64)
            for w in p.weights[:-1]]


def objective_at(obj, p, params, group):
    return obj(apply_group(p.weights, p.X, params, group, p.slope), p.X, p.Y, p.slope, group)


@pytest.mark.parametrize("group", ["gl", "diag"])
@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_gradient_wrt_group_parameter_matches_finite_differences(name, group):
    obj, p = OBJECTIVES[name], problems()
    P = [q.requires_grad_() for q in group_params(p, group, 0.1, 1)]
    value = objective_at(obj, p, P, group)
    grads = torch.autograd.grad(value.sum(), P)
    V = group_params(p, group, 1.0, 2)
    eps = 1e-6
    with torch.no_grad():
        plus = [q + eps * v for q, v in zip(P, V)]
        minus = [q - eps * v for q, v in zip(P, V)]
    with torch.enable_grad():
        fd = (objective_at(obj, p, plus, group) - objective_at(obj, p, minus, group)) / (2 * eps)
    an = sum((g * v).flatten(1).sum(1) for g, v in zip(grads, V))
    fd = fd.detach()
    assert float(fd.abs().min()) > 0
    torch.testing.assert_close(an, fd, rtol=1e-6, atol=1e-9 * float(fd.abs().max()))


def test_grad_norm_is_todays_objective_and_its_gl_gradient_the_teleport_feature():
    p = problems((6, 8, 7, 3), 6, bias=True)
    w = [x.clone().requires_grad_() for x in p.weights]
    torch.testing.assert_close(GradNormSq()(p.weights, p.X, p.Y), grad_norm_sq(w, p.X, p.Y))
    Ts = [torch.zeros(2, d, d, dtype=F64, requires_grad=True) for d in (8, 7)]
    G = torch.autograd.grad(objective_at(GradNormSq(), p, Ts, "gl").sum(), Ts)
    for a, b in zip(G, teleport_feature(p.weights, p.X, p.Y)):
        torch.testing.assert_close(a, b)


def test_grad_norm_along_the_diag_orbit_has_its_closed_form():
    # rows i of grad W_1 (bias included) scale by 1/s_i, columns i of grad W_2 by s_i, the
    # output bias's gradient stays: ||grad||^2(t) = sum_i a_i e^{-2 t_i} + b_i e^{2 t_i} + c
    p = problems((5, 7, 3), 6, bias=True)
    _, (g1, g2) = mlp_loss_and_grad(p.weights, p.X, p.Y)
    a, b = g1.pow(2).sum(2), g2[..., :7].pow(2).sum(1)
    c = g2[..., 7].pow(2).sum(1)
    (t,) = group_params(p, "diag", 0.7, 4)
    expected = (a * (-2 * t).exp() + b * (2 * t).exp()).sum(1) + c
    torch.testing.assert_close(objective_at(GradNormSq(), p, [t], "diag"), expected)


def test_sharpness_of_an_isotropic_quadratic_with_antithetic_draws_is_exact():
    # L(w) = c/2 ||w - w0||^2: L(w + e) - L(w) = c e.(w - w0) + c/2 |e|^2, and the linear
    # term cancels between e and -e: the mean is c/2 mean_j r_j^2 whatever the draws
    c, radii = 3.0, (0.1, 0.4, 0.9)
    gen = torch.Generator().manual_seed(0)
    w = [torch.randn(2, 4, 5, generator=gen, dtype=F64), torch.randn(2, 3, 4, generator=gen,
                                                                   dtype=F64)]
    w0 = [torch.randn_like(x) for x in w]

    def loss_fn(ws):
        reps = ws[0].shape[0] // 2
        return sum(0.5 * c * (x - y.repeat(reps, 1, 1)).pow(2).flatten(1).sum(1)
                   for x, y in zip(ws, w0))

    E = perturbations(w, radii, 7, torch.Generator().manual_seed(1))
    both = [torch.cat([e, -e]) for e in E]
    expected = 0.5 * c * sum(r * r for r in radii) / len(radii)
    torch.testing.assert_close(sharpness(w, both, loss_fn), torch.full((2,), expected,
                                                                       dtype=F64))


def test_sharpness_of_a_quadratic_at_its_minimum_is_r2_trace_over_2_dim():
    # E_u[L(w0 + r u)] - L(w0) = r^2 tr(H) / (2 D) for u uniform on the unit sphere of R^D
    D, r = 12, 0.5
    h = torch.linspace(0.5, 6.0, D, dtype=F64)
    w = [torch.zeros(1, 3, 4, dtype=F64)]

    def loss_fn(ws):
        return 0.5 * (h * ws[0].flatten(1).pow(2)).sum(1)

    E = perturbations(w, (r,), 20000, torch.Generator().manual_seed(2))
    value = float(sharpness(w, E, loss_fn))
    assert value == pytest.approx(r * r * float(h.sum()) / (2 * D), rel=0.02)


def test_sharpness_objective_equals_a_loop_over_its_draws_and_is_deterministic():
    p = problems()
    obj = Sharpness(radii=(0.1, 0.3), n_directions=3, seed=7, distribution="orthant")
    E = perturbations(p.weights, obj.radii, obj.n_directions, torch.Generator().manual_seed(7),
                      "orthant")
    assert all(bool((e >= 0).all()) for e in E)
    norms = torch.sqrt(sum(e.pow(2).flatten(2).sum(2) for e in E))
    torch.testing.assert_close(norms[:, 0], torch.tensor([0.1] * 3 + [0.3] * 3, dtype=F64))
    loop = torch.stack([mlp_loss([w + e[j] for w, e in zip(p.weights, E)], p.X, p.Y)
                        for j in range(6)]).mean(0) - mlp_loss(p.weights, p.X, p.Y)
    torch.testing.assert_close(obj(p.weights, p.X, p.Y), loop)
    assert torch.equal(obj(p.weights, p.X, p.Y), obj(p.weights, p.X, p.Y))


def test_curvature_of_the_hyperbola_orbit_of_one_unit():
    # one hidden unit, W_1 = a (1 x d_0), W_2 = b (d_2 x 1): gamma(t) = (e^t a, e^-t b), a
    # hyperbola, kappa = 2 |a| |b| / (|a|^2 + |b|^2)^(3/2)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(1, 1, 4, generator=gen, dtype=F64)
    b = torch.randn(1, 3, 1, generator=gen, dtype=F64)
    A, B = a.norm(), b.norm()
    expected = 2 * A * B / (A * A + B * B) ** 1.5
    for m in (1.0, -0.3):  # the scale of M does not change a curve's curvature
        kappa = orbit_curvature([a, b], None, [torch.full((1, 1), m, dtype=F64)], "diag")
        torch.testing.assert_close(kappa, expected.reshape(1))


def test_curvature_of_diag_orbits_has_its_closed_form():
    # W_k(t)_ij = W_ij exp(t (m_k,i - m_{k-1},j)) (m = 0 on the input, output and bias
    # columns): gamma' = c * W, gamma'' = c^2 * W, elementwise
    p = problems((5, 6, 4, 3), 5, bias=True)
    M = group_params(p, "diag", 1.0, 3)
    zeros = [torch.zeros(2, 5, dtype=F64), *M, torch.zeros(2, 3, dtype=F64)]
    cs = []
    for k in range(len(p.weights)):
        cols = torch.cat([zeros[k], torch.zeros(2, 1, dtype=F64)], dim=1)
        cs.append(zeros[k + 1][:, :, None] - cols[:, None, :])
    g1 = torch.cat([(c * w).flatten(1) for c, w in zip(cs, p.weights)], 1)
    g2 = torch.cat([(c * c * w).flatten(1) for c, w in zip(cs, p.weights)], 1)
    torch.testing.assert_close(orbit_curvature(p.weights, None, M, "diag"),
                               curve_curvature(g1, g2))


@pytest.mark.parametrize("bias", [False, True])
def test_unit_curvature_is_the_orbit_curvature_of_each_units_rescaling(bias):
    """teleport.unit_curvature (m2's curvature input) against objectives.orbit_curvature with
    the diag direction e_i on one unit of one hidden layer, every unit of a 3-hidden-layer net
    (its bias moving with it)."""
    from metateleport.teleport import unit_curvature

    p = problems((5, 6, 4, 3, 2), 3, bias=bias)
    kappas = unit_curvature(p.weights)
    widths = [w.shape[1] for w in p.weights[:-1]]
    assert [k.shape for k in kappas] == [(2, d) for d in widths]
    for k, d in enumerate(widths):
        for i in range(d):
            M = [None] * len(widths)
            M[k] = torch.zeros(2, d, dtype=F64)
            M[k][:, i] = 1.0
            torch.testing.assert_close(kappas[k][:, i],
                                       orbit_curvature(p.weights, None, M, "diag"))


def test_curvature_of_a_two_layer_gl_orbit_is_the_references_formula():
    # one hidden layer, X square and invertible: gamma'(0) = ((M A) / sigma'(Z) X^-1, -W_2 M),
    # gamma''(0) = ((M^2 A) / sigma'(Z) X^-1, W_2 M^2) with A = sigma(Z), Z = W_1 X (the
    # public reference's curvature_utils, exact for one hidden layer)
    p = MLPTaskFamily([5, 6, 3], 5, init="normal", data="normal", dtype=F64).sample(2, 1)
    W1, W2 = p.weights
    (M,) = group_params(p, "gl", 1.0, 6)
    Z = torch.bmm(W1, p.X)
    A, Xinv = leaky_relu(Z), torch.linalg.inv(p.X)
    inv_slope = torch.where(Z >= 0, 1.0, 10.0).to(F64)
    MM = torch.bmm(M, M)
    g1 = torch.cat([torch.bmm(inv_slope * torch.bmm(M, A), Xinv).flatten(1),
                    -torch.bmm(W2, M).flatten(1)], 1)
    g2 = torch.cat([torch.bmm(inv_slope * torch.bmm(MM, A), Xinv).flatten(1),
                    torch.bmm(W2, MM).flatten(1)], 1)
    torch.testing.assert_close(orbit_curvature(p.weights, p.X, [M], "gl"),
                               curve_curvature(g1, g2))


def test_curvature_of_a_deep_gl_orbit_matches_finite_differences_of_the_exact_curve():
    # two hidden layers moving together, biases: the derivatives of t -> expm(tM) . W, taken
    # by central differences of the exact action, agree with the second-order jets
    p = problems((5, 6, 4, 3), 5, bias=True)
    M = group_params(p, "gl", 1.0, 8)

    def curve(t):
        moved = group_act(p.weights, p.X, [t * m for m in M], p.slope)
        return torch.cat([w.flatten(1) for w in moved], 1)

    h = 1e-4
    g1 = (curve(h) - curve(-h)) / (2 * h)
    g2 = (curve(h) - 2 * curve(0.0) + curve(-h)) / h ** 2
    torch.testing.assert_close(orbit_curvature(p.weights, p.X, M, "gl"),
                               curve_curvature(g1, g2), rtol=1e-5, atol=0)


def test_curvature_directions_are_seeded_and_per_layer():
    p = problems((5, 6, 4, 3), 5, bias=True)
    one = Curvature(seed=1, layer=2)
    (M,) = one.directions(p.weights, "gl")
    assert M[0] is None and M[1].shape == (2, 4, 4)
    assert torch.equal(one(p.weights, p.X, p.Y), one(p.weights, p.X, p.Y))
    assert not torch.equal(one(p.weights, p.X, p.Y), Curvature(seed=2, layer=2)(
        p.weights, p.X, p.Y))
    with pytest.raises(ValueError, match="2 hidden layer"):
        Curvature(layer=3).directions(p.weights, "diag")


def test_objective_errors():
    with pytest.raises(ValueError, match="objective must be one of"):
        make_objective("flatness")
    with pytest.raises(ValueError, match="radii must be positive"):
        Sharpness(radii=(0.1, -1.0))
    with pytest.raises(ValueError, match="distribution must be one of"):
        Sharpness(distribution="cube")
    with pytest.raises(ValueError, match="n_directions"):
        Curvature(n_directions=0)
    with pytest.raises(ValueError, match="options are for an objective given by name"):
        make_objective(GradNormSq(), seed=1)
    assert make_objective("sharpness", radii=0.2).radii == (0.2,)
