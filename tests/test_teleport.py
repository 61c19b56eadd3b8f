import pytest
import torch

from metateleport.baselines import GD
from metateleport.inner import Teleporting, run
from metateleport.mlp import mlp_loss
from metateleport.symmetry import group_act
from metateleport.tasks import MLPTaskFamily
from metateleport.teleport import (
    AscentTeleport,
    Schedule,
    ascent_teleport,
    clip_frobenius,
    grad_norm_sq,
    random_teleport,
    rescale_frobenius,
    teleport_feature,
)


def objective(p, Ts):
    moved = [w.requires_grad_() for w in group_act(p.weights, p.X, Ts)]
    return grad_norm_sq(moved, p.X, p.Y)


@pytest.mark.parametrize("widths, n", [([6, 6, 6], 6), ([10, 30, 5], 10), ([5, 7, 6, 3], 5)])
def test_feature_matches_central_finite_differences(widths, n):
    p = MLPTaskFamily(widths, n, init="normal", data="normal", dtype=torch.float64).sample(2, 4)
    G = teleport_feature(p.weights, p.X, p.Y)
    assert [tuple(g.shape) for g in G] == [(2, d, d) for d in widths[1:-1]]
    eps = 1e-6
    gen = torch.Generator().manual_seed(0)
    for k, d in enumerate(widths[1:-1]):
        for _ in range(3):
            V = torch.randn(2, d, d, generator=gen, dtype=torch.float64)
            Ts = [torch.zeros(2, e, e, dtype=torch.float64) for e in widths[1:-1]]
            plus = [t.clone() for t in Ts]
            minus = [t.clone() for t in Ts]
            plus[k], minus[k] = eps * V, -eps * V
            fd = (objective(p, plus) - objective(p, minus)) / (2 * eps)
            an = (G[k] * V).sum(dim=(1, 2))
            rel = ((an - fd).abs() / fd.abs().clamp_min(1e-12)).max().item()
            assert rel < 1e-5


def test_feature_entrywise_on_paper_task(paper_family64):
    p = paper_family64.sample(1, 7)
    (G,) = teleport_feature(p.weights, p.X, p.Y)
    eps = 1e-7
    for i, j in [(0, 0), (3, 17), (19, 2)]:
        E = torch.zeros(1, 20, 20, dtype=torch.float64)
        E[0, i, j] = eps
        fd = (objective(p, [E]) - objective(p, [-E])) / (2 * eps)
        assert abs(G[0, i, j].item() - fd.item()) < 1e-5 * abs(fd.item())


def test_feature_batched_equals_per_problem(paper_family64):
    p = paper_family64.sample(4, 1)
    full = teleport_feature(p.weights, p.X, p.Y)[0]
    for i in range(4):
        q = p[i]
        torch.testing.assert_close(teleport_feature(q.weights, q.X, q.Y)[0], full[i:i + 1])


def test_ascent_raises_grad_norm_and_keeps_loss(paper_family64):
    p = paper_family64.sample(8, 2)
    moved = ascent_teleport(p.weights, p.X, p.Y, steps=8, max_norm=0.01)
    before = grad_norm_sq([w.clone().requires_grad_() for w in p.weights], p.X, p.Y)
    after = grad_norm_sq([w.clone().requires_grad_() for w in moved], p.X, p.Y)
    assert bool((after > before).all())
    l0, l1 = mlp_loss(p.weights, p.X, p.Y), mlp_loss(moved, p.X, p.Y)
    assert ((l1 - l0).abs() / l0).max() < 1e-9


def test_ascent_with_step_size_caps_each_step(paper_family64):
    p = paper_family64.sample(2, 3)
    (G,) = teleport_feature(p.weights, p.X, p.Y)
    small = 1e-3 * 0.01 / G.norm(dim=(1, 2)).max().item()  # well under the cap
    moved = ascent_teleport(p.weights, p.X, p.Y, steps=1, step_size=small, max_norm=0.01)
    expect = group_act(p.weights, p.X, [small * G])
    torch.testing.assert_close(moved[0], expect[0])
    capped = ascent_teleport(p.weights, p.X, p.Y, steps=1, step_size=1e9, max_norm=0.01)
    expect = group_act(p.weights, p.X, [rescale_frobenius(G, 0.01)])
    torch.testing.assert_close(capped[1], expect[1])


def test_norm_helpers():
    T = torch.randn(3, 4, 4)
    T[1] *= 1e-4
    assert torch.allclose(rescale_frobenius(T, 2.0).norm(dim=(1, 2)), torch.full((3,), 2.0))
    c = clip_frobenius(T, 1e-2).norm(dim=(1, 2))
    assert c[0] <= 1e-2 + 1e-7 and torch.isclose(c[1], T[1].norm())


def test_random_teleport_keeps_loss_and_moves(paper_family64):
    p = paper_family64.sample(4, 5)
    moved = random_teleport(p.weights, p.X, 0.5, torch.Generator().manual_seed(0))
    l0, l1 = mlp_loss(p.weights, p.X, p.Y), mlp_loss(moved, p.X, p.Y)
    assert ((l1 - l0).abs() / l0).max() < 1e-9
    assert (moved[1] - p.weights[1]).abs().max() > 1e-3


def test_teleport_at_step_30_speeds_up_gd_on_paper_task():
    p = MLPTaskFamily().sample(32, seed=0, split="test")
    plain = run(GD(3e-4), p, 100).losses[99].median()
    at_30 = Schedule(at=(30,))
    tele = run(Teleporting(GD(3e-4), AscentTeleport(8, None, 0.01), at_30), p, 100)
    tele = tele.losses[99].median()
    assert tele < plain - 0.3


def test_too_large_teleport_makes_fixed_lr_gd_diverge():
    p = MLPTaskFamily().sample(32, seed=0, split="test")
    big = Teleporting(GD(3e-4), AscentTeleport(8, None, 0.2), Schedule(at=(30,)))
    final = run(big, p, 100).losses[99]
    assert int((~torch.isfinite(final)).sum()) >= 8
    assert torch.isfinite(run(GD(3e-4), p, 100).losses[99]).all()


@pytest.mark.parametrize("widths, n", [([20, 20, 20], 20), ([10, 30, 5], 10), ([12, 7, 9], 6)])
def test_closed_form_feature_equals_double_backward(widths, n):
    p = MLPTaskFamily(widths, n, init="normal", data="normal", dtype=torch.float64).sample(6, 9)
    (auto,) = teleport_feature(p.weights, p.X, p.Y, method="autograd")
    (closed,) = teleport_feature(p.weights, p.X, p.Y, method="closed_form")
    torch.testing.assert_close(closed, auto, rtol=1e-9, atol=1e-9 * auto.abs().max().item())


def test_feature_method_errors():
    p = MLPTaskFamily([5, 7, 6, 3], 5).sample(1, 0)
    with pytest.raises(ValueError, match="needs 2 bias-free layers"):
        teleport_feature(p.weights, p.X, p.Y, method="closed_form")
    with pytest.raises(ValueError, match="method must be"):
        teleport_feature(p.weights, p.X, p.Y, method="fast")
