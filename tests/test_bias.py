"""Biases in the batched core: W_k = [A_k | b_k] acting on [h; 1] (tasks.py, symmetry.py)."""

import pytest
import torch

from metateleport.mlp import mlp_loss, mlp_loss_and_grad
from metateleport.symmetry import group_act, input_pinv, rescale_units
from metateleport.tasks import MLPTaskFamily
from metateleport.teleport import balance_signal, balance_teleport, teleport_feature

# (widths, n): n = d_{k-1} + 1, the largest batch with full column rank of [h; 1]
CASES = [([10, 8, 4], 11), ([6, 9, 7, 3], 7), ([20, 20, 20], 21)]


def family(widths, n, **kw):
    return MLPTaskFamily(widths, n, init="normal", data="normal", bias=True,
                         dtype=torch.float64, **kw)


@pytest.mark.parametrize("widths, n", CASES)
def test_gradient_matches_finite_differences(widths, n):
    p = family(widths, n).sample(2, 0)
    _, grads = mlp_loss_and_grad(p.weights, p.X, p.Y)
    g = torch.Generator().manual_seed(1)
    for k, W in enumerate(p.weights):
        assert W.shape[2] == widths[k] + 1
        direction = torch.randn(W.shape, generator=g, dtype=W.dtype)
        eps = 1e-6
        plus = [w + eps * direction if i == k else w for i, w in enumerate(p.weights)]
        minus = [w - eps * direction if i == k else w for i, w in enumerate(p.weights)]
        fd = (mlp_loss(plus, p.X, p.Y) - mlp_loss(minus, p.X, p.Y)) / (2 * eps)
        torch.testing.assert_close((grads[k] * direction).sum(dim=(1, 2)), fd, rtol=1e-6,
                                   atol=1e-8)


def test_bias_column_is_nn_linear_bias():
    p = family([5, 4, 3], 6).sample(1, 0)
    lin1, lin2 = torch.nn.Linear(5, 4).double(), torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        for lin, W in ((lin1, p.weights[0][0]), (lin2, p.weights[1][0])):
            lin.weight.copy_(W[:, :-1])
            lin.bias.copy_(W[:, -1])
    out = lin2(torch.nn.functional.leaky_relu(lin1(p.X[0].T), 0.1))
    loss = 0.5 * (out - p.Y[0].T).pow(2).sum()
    torch.testing.assert_close(loss, mlp_loss(p.weights, p.X, p.Y)[0])


@pytest.mark.parametrize("widths, n", CASES)
@pytest.mark.parametrize("norm", [0.01, 1.0])
def test_group_action_is_exact_with_biases(widths, n, norm):
    p = family(widths, n).sample(16, 0)
    g = torch.Generator().manual_seed(0)
    Ts = [norm * torch.randn(16, d, d, generator=g, dtype=torch.float64)
          / d for d in widths[1:-1]]
    before = mlp_loss(p.weights, p.X, p.Y)
    for x_pinv in (None, input_pinv(p.X, p.weights[0])):
        moved = group_act(p.weights, p.X, Ts, x_pinv=x_pinv)
        rel = ((mlp_loss(moved, p.X, p.Y) - before).abs() / before).max()
        assert rel < 1e-9
        assert all(m.shape == w.shape for m, w in zip(moved, p.weights))
        # g acts on the columns that read the hidden units, never on the output bias
        assert torch.equal(moved[-1][..., -1], p.weights[-1][..., -1])
        assert not torch.allclose(moved[0][..., -1], p.weights[0][..., -1])


def test_mixed_bias_and_bias_free_layers():
    p = family([6, 9, 7, 3], 7).sample(4, 0)
    weights = [p.weights[0], p.weights[1][..., :-1], p.weights[2]]  # middle layer bias-free
    Ts = [0.3 * torch.eye(9, dtype=torch.float64).expand(4, 9, 9),
          0.2 * torch.ones(4, 7, 7, dtype=torch.float64)]
    before = mlp_loss(weights, p.X, p.Y)
    moved = group_act(weights, p.X, Ts)
    torch.testing.assert_close(mlp_loss(moved, p.X, p.Y), before, rtol=1e-9, atol=0)


def test_x_pinv_of_the_wrong_input_is_refused():
    p = family([10, 8, 4], 11).sample(2, 0)
    Ts = [torch.zeros(2, 8, 8, dtype=torch.float64)]
    with pytest.raises(ValueError, match=r"pass input_pinv\(X, W_1\)"):
        group_act(p.weights, p.X[:, :, :10], Ts, x_pinv=input_pinv(p.X[:, :, :10]))


def test_too_many_samples_for_biased_rank():
    with pytest.raises(ValueError, match=r"n_samples=12 > d_0 \+ 1=11"):
        family([10, 8, 4], 12)


def test_feature_and_balance_with_biases():
    p = family([10, 8, 4], 11).sample(3, 0)
    (G,) = teleport_feature(p.weights, p.X, p.Y)  # autograd: the closed form is bias-free only
    assert G.shape == (3, 8, 8) and torch.isfinite(G).all()
    with pytest.raises(ValueError, match="bias-free"):
        teleport_feature(p.weights, p.X, p.Y, method="closed_form")
    balanced = balance_teleport(p.weights)
    torch.testing.assert_close(mlp_loss(balanced, p.X, p.Y), mlp_loss(p.weights, p.X, p.Y),
                               rtol=1e-12, atol=0)
    # a unit's row includes its bias; the output layer's bias column belongs to no unit
    rows = balanced[0].norm(dim=2)
    cols = balanced[1][..., :-1].norm(dim=1)
    torch.testing.assert_close(rows, cols)
    assert balance_signal(balanced)[0].abs().max() < 1e-12
    s = torch.rand(3, 8, dtype=torch.float64) + 0.5
    scaled = rescale_units(p.weights, [s])
    torch.testing.assert_close(scaled[0], s[:, :, None] * p.weights[0])
    assert torch.equal(scaled[1][..., -1], p.weights[1][..., -1])


def test_unit_span_rescales_with_biases_and_keeps_the_loss():
    plain = family([10, 8, 4], 11).sample(4, 0)
    spread = family([10, 8, 4], 11, unit_span=10.0).sample(4, 0)
    torch.testing.assert_close(mlp_loss(spread.weights, spread.X, spread.Y),
                               mlp_loss(plain.weights, plain.X, plain.Y), rtol=1e-12, atol=0)
    assert torch.equal(spread.weights[1][..., -1], plain.weights[1][..., -1])
