import math

import pytest
import torch
from torch import nn

from metateleport.meta_optimizers import LearnedOptimizer
from metateleport.modules import (
    ModuleProblem,
    ModuleTaskFamily,
    inspect_module,
    load_weights_into,
    meta_train_module,
    run_module,
)
from metateleport.optimizers import StepContext, inner_step, run
from metateleport.symmetry import RankError, pinv_full_column_rank
from metateleport.tasks import Problems, mlp_loss, mlp_loss_and_grad
from metateleport.trainer import MetaTrainer
from metateleport.unroll import window_meta_loss


def mlp(widths, slope=0.1, dtype=torch.float64):
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b, bias=False), nn.LeakyReLU(slope)]
    return nn.Sequential(*layers[:-1]).to(dtype)


def problem_and_module(widths, n, seed=0):
    """The same normal-data problem as a batched Problems (B=1) and as an nn.Sequential."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(1, widths[0], n, generator=g, dtype=torch.float64)
    Y = torch.randn(1, widths[-1], n, generator=g, dtype=torch.float64)
    W = [torch.randn(1, b, a, generator=g, dtype=torch.float64)
         for a, b in zip(widths[:-1], widths[1:])]
    module = mlp(widths)
    with torch.no_grad():
        for lin, w in zip(module[::2], W):
            lin.weight.copy_(w[0])
    return Problems(X, Y, W, 0.1), module


def learned(variant, dtype=torch.float64):
    torch.manual_seed(0)
    return LearnedOptimizer(variant).to(dtype)


@pytest.mark.parametrize("variant", ["update_tele", "lr_tele", "update"])
@pytest.mark.parametrize("widths,n", [([6, 6, 6], 6), ([5, 7, 6, 3], 5)])
def test_module_path_matches_batched_path(variant, widths, n):
    p, module = problem_and_module(widths, n)
    opt = learned(variant)
    ref = run(opt, p, 20)
    got = run_module(opt, module, p.X[0].T, p.Y[0].T, 20)
    assert got.losses.shape == ref.losses.shape == (21, 1)
    assert torch.isfinite(ref.losses).all()
    # The two paths differ only in how the loss and gradients are computed (autograd through
    # the functional module vs hand backprop); in float64 that leaves rounding noise.
    torch.testing.assert_close(got.losses, ref.losses, rtol=1e-10, atol=0)
    for a, b in zip(got.weights, ref.weights):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_module_path_meta_gradient_matches_batched_path():
    p, module = problem_and_module([6, 6, 6], 6)
    mp = ModuleProblem(module, p.X[0].T, p.Y[0].T)
    opt = learned("update_tele")
    x_pinv = pinv_full_column_rank(p.X)

    def meta_grads(loss_and_grad, final_loss):
        weights, state = [w.clone() for w in p.weights], opt.init_state(p)
        losses = []
        for k in range(5):
            loss, weights, state = inner_step(opt, weights, state, StepContext(k, p, x_pinv),
                                              loss_and_grad)
            if k > 0:
                losses.append(loss)
        losses.append(final_loss(weights))
        meta_loss = window_meta_loss(torch.stack(losses), "log")
        return torch.autograd.grad(meta_loss, list(opt.parameters()))

    ref = meta_grads(None, lambda w: mlp_loss(w, p.X, p.Y, p.slope))
    got = meta_grads(mp.loss_and_grad, mp.loss)
    assert sum(g.abs().sum() for g in ref) > 0
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_run_module_leaves_module_alone_and_load_weights_installs_the_result():
    p, module = problem_and_module([5, 7, 6, 3], 5, seed=1)
    X_rows, Y_rows = p.X[0].T, p.Y[0].T
    before = [w.detach().clone() for w in module.parameters()]
    traj = run_module(learned("lr_tele"), module, X_rows, Y_rows, 10)
    for a, b in zip(module.parameters(), before):
        assert torch.equal(a, b)
    assert traj.losses[-1, 0] < traj.losses[0, 0]
    load_weights_into(module, traj.weights)
    with torch.no_grad():
        loss = 0.5 * (module(X_rows) - Y_rows).pow(2).sum()
    torch.testing.assert_close(loss, traj.losses[-1, 0], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="layer '2' has weight shape"):
        load_weights_into(module, [traj.weights[0], traj.weights[0], traj.weights[2]])


def test_module_problem_uses_the_batched_column_convention():
    module = mlp([4, 6, 3], slope=0.2, dtype=torch.float32)
    X_rows, Y_rows = torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 3)
    mp = ModuleProblem(module, X_rows, Y_rows)
    p = mp.problems
    assert p.X.shape == (1, 4, 4) and p.Y.shape == (1, 3, 4) and p.X.dtype == torch.float32
    assert [tuple(w.shape) for w in p.weights] == [(1, 6, 4), (1, 3, 6)]
    assert p.slope == pytest.approx(0.2) and mp.spec.widths == (4, 6, 3)
    torch.testing.assert_close(p.X[0], X_rows.T.float())
    loss, grads = mp.loss_and_grad(p.weights)
    torch.testing.assert_close(loss, mlp_loss(p.weights, p.X, p.Y, p.slope))
    assert loss.shape == (1,) and not any(g.requires_grad for g in grads)
    assert [g.shape for g in grads] == [w.shape for w in p.weights]


def test_non_finite_data_or_weights_are_refused_by_name():
    module = mlp([4, 6, 3], dtype=torch.float32)
    X_rows, Y_rows = torch.randn(4, 4), torch.randn(4, 3)
    bad_x = X_rows.clone()
    bad_x[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"X_rows holds 1 non-finite value"):
        ModuleProblem(module, bad_x, Y_rows)
    bad_y = Y_rows.clone()
    bad_y[0] = float("inf")
    with pytest.raises(ValueError, match=r"Y_rows holds 3 non-finite value"):
        ModuleProblem(module, X_rows, bad_y)
    with torch.no_grad():
        module[2].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"weight of layer '2' holds 1 non-finite"):
        ModuleProblem(module, X_rows, Y_rows)


class SharedActivation(nn.Module):
    def __init__(self, scramble=False):
        super().__init__()
        self.first, self.second = nn.Linear(3, 5, bias=False), nn.Linear(5, 3, bias=False)
        self.act = nn.LeakyReLU(0.1)
        self.scramble = scramble

    def forward(self, x):
        h = self.act(self.first(x))
        return self.second(h.flip(-1) if self.scramble else h)


def test_any_module_with_the_mlp_structure_runs_and_a_different_forward_is_refused():
    X, Y = torch.randn(3, 3), torch.randn(3, 3)
    traj = run_module(learned("update_tele", torch.float32), SharedActivation(), X, Y, 3)
    assert torch.isfinite(traj.losses).all()
    with pytest.raises(ValueError, match="forward does not compute"):
        ModuleProblem(SharedActivation(scramble=True), X, Y)


@pytest.mark.parametrize("module,message", [
    (nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False)),
     "layer '1' is ReLU"),
    (nn.Sequential(nn.Linear(3, 4, bias=False), nn.LeakyReLU(0.1), nn.Linear(4, 4, bias=False),
                   nn.LeakyReLU(0.2), nn.Linear(4, 2, bias=False)),
     "layer '3' has LeakyReLU slope 0.2, but layer '1' has 0.1"),
    (nn.Sequential(nn.Linear(3, 4, bias=False), nn.LeakyReLU(0.1), nn.Linear(5, 2, bias=False)),
     "layer '2' takes 5 inputs, but .* '0' outputs 4"),
    (nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 4, bias=False), nn.LeakyReLU(0.1),
                   nn.Linear(4, 2, bias=False)),
     "layer '1' is a second Linear layer in a row"),
    (nn.Sequential(nn.Linear(3, 4, bias=False), nn.LeakyReLU(1.0), nn.Linear(4, 2, bias=False)),
     "layer '1' has LeakyReLU slope 1.0; it must be > 0 and != 1"),
    (nn.Sequential(nn.Linear(3, 2, bias=False)), "at least 2 nn.Linear layers"),
])
def test_invalid_modules_are_refused_naming_the_layer(module, message):
    with pytest.raises(ValueError, match=message):
        inspect_module(module)
    with pytest.raises(ValueError, match=message):
        ModuleProblem(module, torch.randn(3, 3), torch.randn(3, 2))


def test_more_samples_than_inputs_runs_without_teleport_and_teleport_names_the_rank_problem():
    module, X, Y = mlp([3, 5, 2], dtype=torch.float32), torch.randn(8, 3), torch.randn(8, 2)
    assert ModuleProblem(module, X, Y).x_pinv is None
    traj = run_module(learned("update", torch.float32), module, X, Y, 3)
    assert torch.isfinite(traj.losses).all()
    with pytest.raises(RankError, match="hidden layer 1"):
        run_module(learned("update_tele", torch.float32), module, X, Y, 3)


def small_module(i, scale=1.0):
    torch.manual_seed(100 + i)
    module = mlp([4, 6, 3], dtype=torch.float32)
    with torch.no_grad():
        for w in module.parameters():
            w.mul_(scale)
    return module


@pytest.mark.parametrize("variant", ["update_tele", "lr_tele"])
def test_meta_train_module_trains_the_optimizer(variant):
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(4, 4, generator=g), torch.randn(4, 3, generator=g)
    opt = learned(variant, torch.float32)
    before = [w.detach().clone() for w in opt.parameters()]
    windows = []
    history = meta_train_module(opt, small_module, X, Y, n_trajectories=3, n_steps=20, unroll=5,
                                on_window=windows.append)
    assert len(history) == len(windows) == 3 * 4
    assert all(math.isfinite(v) for v in history)
    assert all(math.isfinite(w["grad_norm"]) and w["grad_norm"] > 0 for w in windows)
    assert windows[-1]["skipped"] == 0 and [w["trajectory"] for w in windows[::4]] == [0, 1, 2]
    assert all(torch.isfinite(w.grad).all() for w in opt.parameters() if w.grad is not None)
    assert any(not torch.equal(a, b) for a, b in zip(opt.parameters(), before))


def test_meta_train_module_skips_non_finite_windows():
    X, Y = torch.randn(4, 4), torch.randn(4, 3)
    opt = learned("update_tele", torch.float32)
    before = [w.detach().clone() for w in opt.parameters()]
    windows = []
    history = meta_train_module(opt, lambda i: small_module(i, scale=1e30), X, Y,
                                n_trajectories=2, n_steps=10, unroll=5, on_window=windows.append)
    # weights of 1e30: the float32 loss overflows; one skipped window ends each trajectory,
    # nothing is applied
    assert len(history) == 2 and not any(math.isfinite(v) for v in history)
    assert [w["skipped"] for w in windows] == [1, 2]
    for a, b in zip(opt.parameters(), before):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="meta_loss must be one of"):
        meta_train_module(opt, small_module, X, Y, 1, meta_loss="mean")


def test_module_family_draws_module_seed_times_per_seed_plus_k_and_matches_the_batched_mlp():
    drawn = []

    def make(i):
        drawn.append(i)
        torch.manual_seed(i)
        return mlp([5, 7, 6, 3])

    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(5, 5, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g)
    family = ModuleTaskFamily(make, X, Y, problems_per_seed=3)
    p = family.sample(2, seed=4, start=1)
    assert drawn == [13, 14] and p.X.shape == (2, 5, 5) and p.Y.dtype == torch.float64
    torch.manual_seed(14)
    assert torch.equal(p.weights[1][1], mlp([5, 7, 6, 3])[2].weight)
    loss, grads = family.loss_and_grad(p)(p.weights)
    ref_loss, ref_grads = mlp_loss_and_grad(p.weights, p.X, p.Y, p.slope)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert loss.requires_grad and not any(g.requires_grad for g in grads)


def test_module_family_refuses_what_it_cannot_serve():
    X, Y = torch.randn(4, 4), torch.randn(4, 3)
    family = ModuleTaskFamily(lambda i: mlp([4, 6, 3] if i == 0 else [4, 5, 3],
                                            dtype=torch.float32), X, Y, problems_per_seed=2)
    with pytest.raises(ValueError, match="training problems only"):
        family.sample(1, 0, "val")
    with pytest.raises(ValueError, match="problems_per_seed=2 per seed"):
        family.sample(2, 0, start=1)
    family.sample(1, 0)
    with pytest.raises(ValueError, match=r"make_module\(1\) has widths \(4, 5, 3\)"):
        family.sample(1, 0, start=1)


def test_meta_trainer_trains_on_a_module_family_and_resumes_bit_identically():
    from metateleport.config import build_optimizer, config_from_dict

    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(4, 4, generator=g), torch.randn(4, 3, generator=g)
    cfg = config_from_dict({"train": {"batch_size": 2, "n_steps": 4, "unroll": 2,
                                      "trajectories": 4, "meta_lr_schedule": "constant"}})

    def trainer():
        torch.manual_seed(0)
        return MetaTrainer(cfg, family=ModuleTaskFamily(small_module, X, Y, problems_per_seed=2),
                           opt=build_optimizer(cfg))

    whole = trainer()
    stats = [whole.window() for _ in range(whole.total_meta_steps)]
    assert len(stats) == 4 and all(math.isfinite(s["meta_loss"]) for s in stats)
    assert stats[-1]["skipped"] == 0 and whole.trajectories == 4
    part = trainer()
    part.window()
    state = part.state_dict()
    resumed = trainer()  # a new family: its functional model comes from the restored problems
    resumed.load_state_dict(state)
    assert [resumed.window() for _ in range(3)] == stats[1:]
    a, b = whole.opt.state_dict(), resumed.opt.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_module_with_biases_is_the_batched_mlp_with_bias_columns():
    import torch
    from torch import nn

    from metateleport.inner import run
    from metateleport.learned import LearnedOptimizer
    from metateleport.mlp import mlp_loss
    from metateleport.modules import ModuleProblem, load_weights_into, run_module

    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(5, 6), nn.LeakyReLU(0.1), nn.Linear(6, 3)).double()
    X, Y = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    mp = ModuleProblem(module, X, Y)
    assert [tuple(w.shape) for w in mp.problems.weights] == [(1, 6, 6), (1, 3, 7)]
    p = mp.problems
    torch.testing.assert_close(mp.loss(p.weights), mlp_loss(p.weights, p.X, p.Y))
    opt = LearnedOptimizer("update_tele", tele_norm=0.05).double()
    torch.manual_seed(1)
    mine = run_module(opt, module, X, Y, 5)
    torch.manual_seed(1)
    batched = run(opt, p, 5)
    torch.testing.assert_close(mine.losses, batched.losses, rtol=1e-10, atol=0)
    load_weights_into(module, mine.weights)
    torch.testing.assert_close(0.5 * (module(X) - Y).pow(2).sum().reshape(1), mine.losses[-1])
