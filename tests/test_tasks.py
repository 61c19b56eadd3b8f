import pytest
import torch

from metateleport.mlp import mlp_loss, mlp_loss_and_grad
from metateleport.tasks import MLPTaskFamily, Split


def test_shapes_and_uniform_range():
    p = MLPTaskFamily([8, 16, 16, 4], n_samples=6).sample(5, seed=3)
    assert p.X.shape == (5, 8, 6) and p.Y.shape == (5, 4, 6)
    assert [tuple(w.shape) for w in p.weights] == [(5, 16, 8), (5, 16, 16), (5, 4, 16)]
    for t in [p.X, p.Y, *p.weights]:
        assert t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1


def test_same_seed_same_problems_and_prefix_property():
    fam = MLPTaskFamily()
    a, b = fam.sample(6, seed=11), fam.sample(6, seed=11)
    assert torch.equal(a.X, b.X) and all(torch.equal(u, v) for u, v in zip(a.weights, b.weights))
    small = fam.sample(2, seed=11)
    assert torch.equal(small.X, a.X[:2]) and torch.equal(small.weights[1], a.weights[1][:2])
    assert not torch.equal(fam.sample(6, seed=12).X, a.X)


def test_splits_are_disjoint_streams_for_equal_seeds():
    fam = MLPTaskFamily()
    xs = {s: fam.sample(4, seed=0, split=s).X for s in Split}
    assert not torch.equal(xs[Split.TRAIN], xs[Split.VAL])
    assert not torch.equal(xs[Split.TRAIN], xs[Split.TEST])
    assert not torch.equal(xs[Split.VAL], xs[Split.TEST])
    assert torch.equal(fam.sample(4, seed=0, split="test").X, xs[Split.TEST])


def test_known_first_value_is_machine_independent():
    # PCG64 + SeedSequence is specified bit for bit by numpy: this value is the same everywhere.
    import numpy as np

    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([Split.TEST.value, 5, 0])))
    x = MLPTaskFamily(dtype=torch.float64).sample(1, seed=5, split="test").X
    assert x[0, 0, 0].item() == rng.random()


def test_normal_init_and_scale():
    p = MLPTaskFamily(init="normal", data="normal", init_scale=0.1).sample(64, seed=0)
    assert p.weights[0].min() < 0 and abs(p.weights[0].std().item() - 0.1) < 0.01
    assert abs(p.X.std().item() - 1.0) < 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"widths": [20, 20]}, "at least 3"),
        ({"init": "cauchy"}, "init must be one of"),
        ({"data": "cauchy"}, "data must be one of"),
        ({"slope": 1.0}, "slope"),
        ({"widths": [10, 30, 5], "n_samples": 11}, "n_samples=11 > d_0=10"),
        ({"widths": [10, 5, 5, 2], "n_samples": 8}, "n_samples=8 > d_1=5"),
    ],
)
def test_bad_family_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPTaskFamily(**kwargs)


def test_bad_sample_arguments():
    fam = MLPTaskFamily()
    with pytest.raises(ValueError, match="split"):
        fam.sample(2, seed=0, split="training")
    with pytest.raises(ValueError, match="seed"):
        fam.sample(2, seed=-1)
    with pytest.raises(ValueError, match="batch_size"):
        fam.sample(0, seed=0)


@pytest.mark.parametrize("widths, n", [([20, 20, 20], 20), ([8, 16, 16, 4], 8)])
def test_hand_backprop_matches_autograd(widths, n):
    p = MLPTaskFamily(widths, n, init="normal", data="normal", dtype=torch.float64).sample(3, 0)
    w = [x.clone().requires_grad_() for x in p.weights]
    loss, grads = mlp_loss_and_grad(w, p.X, p.Y)
    ref = torch.autograd.grad(mlp_loss(w, p.X, p.Y).sum(), w)
    assert loss.shape == (3,) and loss.requires_grad
    for g, r in zip(grads, ref):
        assert not g.requires_grad
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)


def test_loss_is_per_problem():
    p = MLPTaskFamily(dtype=torch.float64).sample(4, 0)
    full = mlp_loss(p.weights, p.X, p.Y)
    for i in range(4):
        q = p[i]
        torch.testing.assert_close(mlp_loss(q.weights, q.X, q.Y), full[i:i + 1])


def test_shape_errors_name_the_weight():
    p = MLPTaskFamily().sample(2, 0)
    with pytest.raises(ValueError, match="W_2"):
        mlp_loss([p.weights[0], p.weights[1][:, :, :5]], p.X, p.Y)
    with pytest.raises(ValueError, match="Y has shape"):
        mlp_loss(p.weights, p.X, p.Y[:, :3])
