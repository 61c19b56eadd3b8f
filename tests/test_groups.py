"""The two groups of a teleport: "gl" (exact on the batch) and "diag" (exact for every input),
for the hand-designed teleports, the group action and LearnedTorchOptimizer.teleport."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from metateleport.inner import StepContext
from metateleport.mlp import mlp_forward, mlp_loss
from metateleport.symmetry import apply_group, group_act, input_pinv, rescale_units
from metateleport.tasks import MLPTaskFamily, Problems
from metateleport.teleport import (
    AscentTeleport,
    RandomTeleport,
    grad_norm_sq,
    make_teleport,
    teleport_feature,
)
from metateleport.torch_optim import LearnedTorchOptimizer

CKPT = Path(__file__).resolve().parents[1] / "checkpoints"
F64 = torch.float64


def problems(widths, n, bias, seed=0) -> Problems:
    p = MLPTaskFamily(widths, n, init="normal", data="normal", dtype=F64, bias=bias).sample(3, seed)
    return p


def unseen(p: Problems, n: int = 40) -> torch.Tensor:
    gen = torch.Generator().manual_seed(123)
    return torch.randn(p.X.shape[0], p.X.shape[1], n, generator=gen, dtype=F64)


def ctx_of(p: Problems) -> StepContext:
    return StepContext(0, p, input_pinv(p.X, p.weights[0]))


def mlp(widths, bias) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(len(widths) - 1):
        layers += [nn.Linear(widths[k], widths[k + 1], bias=bias), nn.LeakyReLU(0.1)]
    return nn.Sequential(*layers[:-1]).double()


def test_apply_group_diag_is_rescale_units_and_gl_is_group_act():
    p = problems([5, 6, 4, 3], 5, bias=True)
    gen = torch.Generator().manual_seed(1)
    ts = [torch.randn(3, d, generator=gen, dtype=F64) for d in (6, 4)]
    Ts = [torch.randn(3, d, d, generator=gen, dtype=F64) / 4 for d in (6, 4)]
    diag = apply_group(p.weights, None, ts, "diag")
    for a, b in zip(diag, rescale_units(p.weights, [t.exp() for t in ts])):
        assert torch.equal(a, b)
    for a, b in zip(apply_group(p.weights, p.X, Ts, "gl"), group_act(p.weights, p.X, Ts)):
        assert torch.equal(a, b)
    # exp(diag(t)) through the gl action equals the diag move on the batch
    on_batch = apply_group(p.weights, p.X, [torch.diag_embed(t) for t in ts], "gl")
    torch.testing.assert_close(mlp_forward(on_batch, p.X)[0], mlp_forward(diag, p.X)[0])
    with pytest.raises(ValueError, match="group must be one of"):
        apply_group(p.weights, p.X, ts, "orthogonal")
    with pytest.raises(ValueError, match=r"t_1 of the diag group has shape"):
        apply_group(p.weights, None, Ts, "diag")
    with pytest.raises(ValueError, match="first_order"):
        apply_group(p.weights, None, ts, "diag", action="first_order")


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("move", [RandomTeleport(norm=2.0, group="diag"),
                                  AscentTeleport(steps=4, norm=0.5, group="diag")])
def test_diag_teleports_keep_outputs_on_unseen_inputs(bias, move):
    p = problems([5, 7, 6, 3], 5, bias)
    moved, _ = move(p.weights, {}, ctx_of(p))
    assert max(float((a - b).abs().max()) for a, b in zip(moved, p.weights)) > 1e-2
    X_new = unseen(p)
    before, after = mlp_forward(p.weights, X_new)[0], mlp_forward(moved, X_new)[0]
    assert float((after - before).abs().max() / before.abs().max()) < 1e-13
    if bias:
        assert torch.equal(moved[-1][..., -1], p.weights[-1][..., -1]), "output bias stays"


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("move", [RandomTeleport(norm=0.5), AscentTeleport(steps=4, norm=0.2)])
def test_gl_teleports_keep_the_batch_loss_but_move_unseen_outputs(bias, move):
    p = problems([5, 7, 6, 3], 5, bias)
    moved, _ = move(p.weights, {}, ctx_of(p))
    l0, l1 = mlp_loss(p.weights, p.X, p.Y), mlp_loss(moved, p.X, p.Y)
    assert float(((l1 - l0).abs() / l0).max()) < 1e-10
    X_new = unseen(p)
    before, after = mlp_forward(p.weights, X_new)[0], mlp_forward(moved, X_new)[0]
    assert float((after - before).abs().max() / before.abs().max()) > 1e-3


def test_diag_ascent_raises_the_grad_norm_and_random_has_the_norm():
    p = problems([6, 8, 4], 6, bias=True)
    moved, _ = AscentTeleport(steps=3, norm=0.1, group="diag")(p.weights, {}, ctx_of(p))
    gn = [grad_norm_sq([w.clone().requires_grad_() for w in ws], p.X, p.Y)
          for ws in (p.weights, moved)]
    assert bool((gn[1] > gn[0]).all())
    torch.manual_seed(0)
    rnd, _ = RandomTeleport(norm=0.3, group="diag")(p.weights, {}, ctx_of(p))
    # rows of W_1 (bias included) scale by s = exp(t), ||t|| = 0.3 per problem
    s = rnd[0][..., 0] / p.weights[0][..., 0]
    torch.testing.assert_close(s.log().norm(dim=1), torch.full((3,), 0.3, dtype=F64))


def test_diag_feature_is_the_diagonal_of_the_gl_feature_on_a_square_batch():
    # bias-free two layers, X square and invertible: diag(t) through the gl action is exactly
    # the diag move, so dObj/dt = diag(G)
    p = MLPTaskFamily([6, 8, 4], 6, init="normal", data="normal", dtype=F64).sample(2, 3)
    (G,) = teleport_feature(p.weights, p.X, p.Y)
    (g,) = teleport_feature(p.weights, p.X, p.Y, group="diag")
    assert g.shape == (2, 8)
    torch.testing.assert_close(g, G.diagonal(dim1=1, dim2=2), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="diag feature is computed by autograd"):
        teleport_feature(p.weights, p.X, p.Y, method="closed_form", group="diag")


def test_group_option_errors():
    with pytest.raises(ValueError, match="group must be one of"):
        make_teleport("random", group="so")
    with pytest.raises(ValueError, match="group must be one of"):
        AscentTeleport(group="GL")
    with pytest.raises(ValueError, match="only the exact action"):
        RandomTeleport(action="first_order", group="diag")
    assert RandomTeleport().group == AscentTeleport().group == "gl"


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("kind", ["random", "ascent"])
def test_torch_optim_teleport_group_diag_is_exact_off_the_batch(kind, bias):
    torch.manual_seed(0)
    model = mlp([6, 9, 7, 3], bias)
    opt = LearnedTorchOptimizer(model.parameters(), CKPT / "update.pt")
    X, Y = torch.randn(30, 6, dtype=F64), torch.randn(30, 3, dtype=F64)  # n > d + 1: fine
    other = torch.randn(50, 6, dtype=F64)
    before, out0 = [p.detach().clone() for p in model.parameters()], model(other).detach()
    stats = opt.teleport(model, X, Y, kind=kind, norm=0.5, group="diag")
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))
    assert stats["output_change"] < 1e-13
    with torch.no_grad():
        assert float((model(other) - out0).abs().max() / out0.abs().max()) < 1e-13
    # gl, the default, keeps the loss on a batch it can be exact on and moves other outputs
    n = 6 + bias
    with torch.no_grad():
        loss0 = 0.5 * float((model(X[:n]) - Y[:n]).pow(2).sum())
    opt.teleport(model, X[:n], Y[:n], kind=kind, norm=0.5)
    with torch.no_grad():
        assert 0.5 * float((model(X[:n]) - Y[:n]).pow(2).sum()) == pytest.approx(loss0,
                                                                                  rel=1e-8)
        assert float((model(other) - out0).abs().max() / out0.abs().max()) > 1e-3


def test_torch_optim_teleport_group_errors():
    model = mlp([6, 5, 3], bias=True)
    opt = LearnedTorchOptimizer(model.parameters(), CKPT / "update.pt")
    X, Y = torch.randn(5, 6, dtype=F64), torch.randn(5, 3, dtype=F64)
    with pytest.raises(ValueError, match="own group"):
        opt.teleport(model, X, Y, kind="checkpoint", group="diag")
    with pytest.raises(ValueError, match="own group"):
        opt.teleport(model, X, Y, kind="balance", group="gl")
    with pytest.raises(ValueError, match="group must be one of"):
        opt.teleport(model, X, Y, kind="random", group="rotation")
    with pytest.raises(ValueError, match=r"n=8 samples.*inputs\[:7\]"):
        opt.teleport(model, torch.randn(8, 6, dtype=F64), kind="random", group="gl")
    opt.teleport(model, torch.randn(40, 6, dtype=F64), kind="balance", group="diag")
