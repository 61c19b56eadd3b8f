"""Options of the group meta-optimizer m2 (issue 10, item 4): the balance skip path, the
lookahead input (checked against finite differences in float64) and m1's state across a
teleport."""

import pytest
import torch

from metateleport.config import ConfigError, config_from_dict
from metateleport.inner import StepContext, inner_step
from metateleport.learned import LearnedOptimizer
from metateleport.mlp import mlp_loss
from metateleport.symmetry import group_act
from metateleport.tasks import MLPTaskFamily
from metateleport.teleport import balance_signal
from metateleport.unroll import MetaTrainer


def _step(opt, problems, t=0, state=None):
    state = opt.init_state(problems) if state is None else state
    ctx = StepContext(t, problems)
    _, weights, state = inner_step(opt, problems.weights, state, ctx)
    return weights, state, ctx


def test_balance_skip_starts_at_zero_and_its_half_is_the_balancing_move():
    torch.manual_seed(0)
    p = MLPTaskFamily(unit_span=10).sample(3, 0)
    plain = LearnedOptimizer("update_tele", balance_input=True, tele_norm=None)
    skip = LearnedOptimizer("update_tele", balance_input=True, balance_skip=True,
                            tele_norm=None)
    missing = skip.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["group_net.skip.weight"] and float(skip.group_net.skip.weight.detach()) == 0
    torch.testing.assert_close(_step(skip, p)[0], _step(plain, p)[0], rtol=0, atol=0)
    # a = 1/2 and a silent LSTM head: T_ii = r_i / 2, the closed-form balancing rescaling
    wide = LearnedOptimizer("update_tele", balance_input=True, balance_skip=True,
                            tele_norm=None, max_tele_norm=100.0).double()
    with torch.no_grad():
        wide.group_net.skip.weight.fill_(0.5)
        wide.group_net.head.weight.zero_()
        wide.group_net.head.bias.zero_()
    p64 = MLPTaskFamily(unit_span=10, dtype=torch.float64).sample(3, 0)
    before = balance_signal(p64.weights)[0].abs().max()
    weights, _, ctx = _step(wide, p64)
    assert before > 1 and balance_signal(weights)[0].abs().max() < 1e-6
    assert ctx.stats["tele_loss_change"].abs().max() < 1e-10


def test_balance_skip_gets_a_meta_gradient():
    cfg = config_from_dict({"task": {"unit_span": 10.0},
                            "model": {"variant": "update_tele", "balance_input": True,
                                      "balance_skip": True, "tele_norm": None},
                            "train": {"batch_size": 2, "n_steps": 4, "unroll": 2,
                                      "trajectories": 2, "val_every": 0, "val_problems": 2}})
    trainer = MetaTrainer(cfg)
    trainer.window()
    assert trainer.opt.group_net.skip.weight.grad.abs().sum() > 0


def _lookahead_objective(opt, weights, state, problems, Ts):
    """log L(W' + m1(grad L(W'))), W' = expm(T) . W, recomputed from scratch."""
    moved = [w.detach().requires_grad_(True) for w in group_act(weights, problems.X, Ts)]
    loss = mlp_loss(moved, problems.X, problems.Y)
    grads = torch.autograd.grad(loss.sum(), moved)
    deltas, _ = opt.update(moved, list(grads), state, StepContext(1, problems))
    return mlp_loss([w + d for w, d in zip(moved, deltas)], problems.X, problems.Y).log()


def test_lookahead_feature_matches_finite_differences():
    torch.manual_seed(0)
    family = MLPTaskFamily(widths=(5, 6, 7, 3), n_samples=5, dtype=torch.float64)
    p = family.sample(2, 0)
    opt = LearnedOptimizer("update_tele", lookahead_input=True, tele_norm=None).double()
    weights, state, ctx = _step(opt, p)  # a state m1 has written to
    weights = [w.detach() for w in weights]
    look = opt.lookahead_feature(weights, state, StepContext(1, p))
    assert [tuple(g.shape) for g in look] == [(2, 6, 6), (2, 7, 7)]
    h = 1e-6
    for k, i, j in [(0, 0, 0), (0, 2, 5), (1, 6, 1), (1, 3, 3)]:
        Ts = [torch.zeros(2, d, d, dtype=torch.float64) for d in (6, 7)]
        Ts[k][:, i, j] = h
        up = _lookahead_objective(opt, weights, state, p, Ts)
        Ts[k][:, i, j] = -h
        down = _lookahead_objective(opt, weights, state, p, Ts)
        torch.testing.assert_close(look[k][:, i, j], (up - down) / (2 * h), rtol=1e-4,
                                   atol=1e-7)


def test_lookahead_input_reaches_m2():
    opt = LearnedOptimizer("update_tele", balance_input=True, lookahead_input=True)
    assert opt.group_net.lstm.lstm.input_size == 5
    p = MLPTaskFamily(unit_span=10).sample(2, 0)
    seen = []
    hook = opt.group_net.lstm.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    _step(opt, p)
    hook.remove()
    look = seen[0][:, 3:]
    assert torch.isfinite(look).all() and look[:, 0].std() > 0  # log-sign features, not zeros


@pytest.mark.parametrize("variant", ["update_tele", "update_balance", "update_random_tele"])
def test_m1_state_is_reset_after_a_teleport_only(variant):
    p = MLPTaskFamily().sample(2, 0)
    keep = LearnedOptimizer(variant, tele_norm=0.01, tele_every=2)
    reset = LearnedOptimizer(variant, tele_norm=0.01, tele_every=2, m1_state_on_tele="reset")
    reset.load_state_dict(keep.state_dict())
    torch.manual_seed(0)
    w_keep, s_keep, _ = _step(keep, p, t=0)
    torch.manual_seed(0)
    w_reset, s_reset, _ = _step(reset, p, t=0)
    torch.testing.assert_close(w_reset, w_keep, rtol=0, atol=0)  # the move itself is the same
    assert all(s.abs().sum() == 0 for s in s_reset["m1"])
    assert all(s.abs().sum() > 0 for s in s_keep["m1"])
    _, s_odd, _ = _step(reset, p, t=1, state=s_keep)  # no teleport at t = 1: state kept
    assert all(s.abs().sum() > 0 for s in s_odd["m1"])


@pytest.mark.parametrize("model, match", [
    ({"variant": "update_tele", "tele_group": "diag", "lookahead_input": True},
     "model.tele_group"),
    ({"variant": "update_tele", "tele_group": "so3"}, "model.tele_group"),
    ({"variant": "update_tele", "balance_skip": True}, "model.balance_skip"),
    ({"variant": "update", "lookahead_input": True}, "model.lookahead_input"),
    ({"variant": "update_tele", "m1_state_on_tele": "transport"}, "model.m1_state_on_tele"),
])
def test_config_refuses_bad_m2_options(model, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"model": model})


@pytest.mark.parametrize("norm_over", ["layer", "network"])
def test_diag_m2_keeps_the_function_everywhere_and_bounds_its_move(norm_over):
    torch.manual_seed(0)
    p = MLPTaskFamily(widths=(6, 5, 4, 3), n_samples=5, bias=True, unit_span=5.0,
                      dtype=torch.float64).sample(3, 0)
    opt = LearnedOptimizer("update_tele", tele_group="diag", tele_norm=None, max_tele_norm=0.3,
                           tele_scale=10.0, balance_input=True, tele_input="normalized",
                           tele_norm_over=norm_over).double()
    state = opt.init_state(p)
    assert state["m2"][0].shape[1] == 3 * (5 + 4), "one LSTM row per hidden unit"
    ctx = StepContext(0, p)
    moved, _ = opt.move(p.weights, state, ctx)
    X_new = torch.randn(3, 6, 40, dtype=torch.float64)  # inputs the teleport never saw
    from metateleport.mlp import mlp_forward

    torch.testing.assert_close(mlp_forward(moved, X_new, p.slope)[0],
                               mlp_forward(p.weights, X_new, p.slope)[0], rtol=1e-12, atol=1e-12)
    assert not all(torch.equal(a, b) for a, b in zip(moved, p.weights))
    norms = ctx.stats["tele_norm"]
    bound = 0.3 * (2 ** 0.5 if norm_over == "layer" else 1)  # two hidden layers
    assert bool((norms <= bound * (1 + 1e-9)).all()) and bool((norms > 0.1).all())


def test_diag_m2_gets_a_meta_gradient():
    torch.manual_seed(0)
    p = MLPTaskFamily(unit_span=5.0, dtype=torch.float64).sample(2, 0)
    opt = LearnedOptimizer("update_tele", tele_group="diag", tele_norm=None,
                           max_tele_norm=1.0, tele_scale=0.1).double()
    weights, state = p.weights, opt.init_state(p)
    total = 0.0
    for t in range(3):
        _, weights, state = inner_step(opt, weights, state, StepContext(t, p))
        total = total + mlp_loss(weights, p.X, p.Y, p.slope).log().sum()
    grads = torch.autograd.grad(total, list(opt.group_net.parameters()), allow_unused=True)
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)
    assert all(g is None or bool(torch.isfinite(g).all()) for g in grads)


@pytest.mark.parametrize("group", ["diag", "gl"])
def test_curvature_input_reads_each_units_orbit_curvature(group):
    """model.curvature_input: m2 reads log kappa_i (teleport.unit_curvature) of unit i on t_i
    (diag) or on T_ii, 0 off the diagonal (gl), after the balance signal."""
    from metateleport.networks import flatten_coords
    from metateleport.teleport import unit_curvature

    opt = LearnedOptimizer("update_tele", balance_input=True, curvature_input=True,
                           tele_group=group)
    assert opt.group_net.lstm.lstm.input_size == 4
    p = MLPTaskFamily([20, 20, 20, 20], unit_span=10).sample(2, 0)
    _, extra = opt.move._inputs(p.weights, StepContext(0, p), None)
    kappa = [k.log() for k in unit_curvature(p.weights)]
    if group == "gl":
        kappa = [torch.diag_embed(k) for k in kappa]
    torch.testing.assert_close(extra[:, 1], flatten_coords(kappa).reshape(-1))
    assert bool((extra[:, 1] != 0).any()) and extra.shape[1] == 2
    cfg = config_from_dict({"model": {"variant": "update_tele", "curvature_input": True,
                                      "tele_group": group},
                            "train": {"batch_size": 2, "n_steps": 4, "unroll": 2,
                                      "trajectories": 4, "val_problems": 2}})
    assert torch.isfinite(torch.tensor(MetaTrainer(cfg).window()["meta_loss"]))
