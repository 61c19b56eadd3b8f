"""Where the orbit has leverage: imbalanced and ill-conditioned task families, the balancing
teleport, teleport schedules, m2's balance input and the first-order control."""

import math

import pytest
import torch

from metateleport.config import ConfigError, config_from_dict
from metateleport.meta_optimizers import LearnedOptimizer
from metateleport.optimizers import GD, StepContext, TeleportSchedule, WithTeleport, run
from metateleport.symmetry import group_act, rescale_units
from metateleport.tasks import MLPTaskFamily, mlp_loss
from metateleport.teleport import balance_signal, balance_teleport
from metateleport.unroll import MetaTrainer


@pytest.mark.parametrize("widths", [[20, 20, 20], [8, 10, 12, 3]])
def test_rescaled_family_is_the_plain_family_moved_along_its_orbit(widths):
    plain = MLPTaskFamily(widths, 6, dtype=torch.float64).sample(5, 3, "val")
    resc = MLPTaskFamily(widths, 6, unit_span=10, layer_span=4,
                         dtype=torch.float64).sample(5, 3, "val")
    assert torch.equal(plain.X, resc.X) and torch.equal(plain.Y, resc.Y)
    l0, l1 = (mlp_loss(p.weights, p.X, p.Y) for p in (plain, resc))
    torch.testing.assert_close(l1, l0, rtol=1e-12, atol=0)
    # W_1 of the rescaled problem is diag(c d) W_1 with c d within [1/40, 40], not all 1
    ratio = resc.weights[0] / plain.weights[0]
    per_row = ratio[:, :, 0]
    torch.testing.assert_close(ratio, per_row[:, :, None].expand_as(ratio))
    assert per_row.min() >= 1 / 40 and per_row.max() <= 40
    assert per_row.log().abs().max() > math.log(2)
    # the rescaling is drawn from the seed: the same problems again, others for another seed
    again = MLPTaskFamily(widths, 6, unit_span=10, layer_span=4,
                          dtype=torch.float64).sample(5, 3, "val")
    assert torch.equal(again.weights[0], resc.weights[0])
    other = MLPTaskFamily(widths, 6, unit_span=10, layer_span=4,
                          dtype=torch.float64).sample(5, 4, "val")
    assert not torch.equal(other.weights[0], resc.weights[0])


def test_conditioned_family_has_the_asked_condition_number():
    p = MLPTaskFamily(cond=1e3, dtype=torch.float64).sample(4, 0)
    s = torch.linalg.svdvals(p.X)
    torch.testing.assert_close(s[:, 0] / s[:, -1], torch.full_like(s[:, 0], 1e3), rtol=1e-8,
                               atol=0)
    gaps = (s[:, :-1] / s[:, 1:]).log()
    torch.testing.assert_close(gaps, gaps[:, :1].expand_as(gaps))  # log-spaced
    plain = MLPTaskFamily(dtype=torch.float64).sample(4, 0)
    torch.testing.assert_close(s[:, 0], torch.linalg.svdvals(plain.X)[:, 0])
    assert torch.equal(p.weights[0], plain.weights[0]) and torch.equal(p.Y, plain.Y)


@pytest.mark.parametrize("kwargs, match", [
    ({"unit_span": 0.5}, "unit_span"), ({"layer_span": 0}, "layer_span"),
    ({"cond": 0.9}, "cond")])
def test_bad_orbit_family_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPTaskFamily(**kwargs)


@pytest.mark.parametrize("key, value", [("task.unit_span", 0.5), ("task.cond", 0.1),
                                        ("model.tele_action", "second_order"),
                                        ("model.tele_every", 0), ("model.balance_input", 1)])
def test_config_refuses_bad_orbit_keys(key, value):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict({section: {name: value}})


def test_rescale_units_equals_the_group_action_of_a_diagonal_T(paper_family64):
    p = paper_family64.sample(3, 1)
    s = torch.rand(3, 20, dtype=torch.float64) * 3 + 0.2
    a = rescale_units(p.weights, [s])
    b = group_act(p.weights, p.X, [torch.diag_embed(s.log())], x_pinv=None)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="expected"):
        rescale_units(p.weights, [s[:, :5]])


@pytest.mark.parametrize("widths", [[20, 20, 20], [6, 9, 7, 4]])
def test_balance_teleport_is_exact_and_balances(widths):
    fam = MLPTaskFamily(widths, 5, unit_span=10, dtype=torch.float64)
    p = fam.sample(4, 2)
    new = balance_teleport(p.weights)
    torch.testing.assert_close(mlp_loss(new, p.X, p.Y), mlp_loss(p.weights, p.X, p.Y),
                               rtol=1e-12, atol=0)
    before, after = balance_signal(p.weights), balance_signal(new)
    assert before[-1].abs().max() > 1
    # the last hidden layer is balanced exactly (earlier ones are moved again by later ones)
    torch.testing.assert_close(after[-1], torch.zeros_like(after[-1]), rtol=0, atol=1e-12)


def test_balance_undoes_any_unit_rescaling(paper_family64):
    """The balanced point is unique on a point's positive-diagonal orbit."""
    plain = paper_family64.sample(3, 5)
    resc = MLPTaskFamily(unit_span=10, layer_span=10, dtype=torch.float64).sample(3, 5)
    for u, v in zip(balance_teleport(plain.weights), balance_teleport(resc.weights)):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12)


def test_first_order_action_moves_the_loss_and_the_exact_one_does_not(paper_family64):
    p = paper_family64.sample(2, 0)
    T = [0.05 * torch.randn(2, 20, 20, dtype=torch.float64)]
    l0 = mlp_loss(p.weights, p.X, p.Y)
    exact = mlp_loss(group_act(p.weights, p.X, T), p.X, p.Y)
    first = mlp_loss(group_act(p.weights, p.X, T, action="first_order"), p.X, p.Y)
    assert ((exact - l0) / l0).abs().max() < 1e-10
    assert ((first - l0) / l0).abs().min() > 1e-4
    with pytest.raises(ValueError, match="action"):
        group_act(p.weights, p.X, T, action="bogus")


def test_schedule_kinds_and_with_teleport(paper_family64):
    p = paper_family64.sample(3, 0)
    sched = TeleportSchedule(at_steps=None, kind="balance", every=3, first=7)
    assert [t for t in range(12) if sched.due(t)] == [0, 3, 6]
    assert TeleportSchedule(at_steps=(30,)).due(30) and not TeleportSchedule((30,)).due(0)
    with pytest.raises(ValueError, match="kind"):
        TeleportSchedule(kind="magic")
    # GD+balance at step 0 == one GD step, a balancing teleport, then plain GD
    wrapped = WithTeleport(GD(1e-4), TeleportSchedule(at_steps=(0,), kind="balance"))
    assert wrapped.name == "GD+balance"
    got = run(wrapped, p, 5)
    one = run(GD(1e-4), p, 1)
    p2 = p[0:3]
    p2.weights = balance_teleport(one.weights)
    rest = run(GD(1e-4), p2, 4)
    torch.testing.assert_close(got.losses[1:], rest.losses, rtol=1e-10, atol=0)
    # random kind: the asked norm, loss unchanged
    rnd = TeleportSchedule(at_steps=(0,), kind="random", max_norm=0.3)
    moved, _ = rnd(p.weights, {}, StepContext(0, p))
    torch.testing.assert_close(mlp_loss(moved, p.X, p.Y), mlp_loss(p.weights, p.X, p.Y),
                               rtol=1e-9, atol=0)


def _steps(opt, p, n):
    """(tele_loss_change stats per step or None, losses) of n inner steps of opt."""
    from metateleport.optimizers import inner_step

    w, state, stats = [x.clone() for x in p.weights], opt.init_state(p), []
    for t in range(n):
        ctx = StepContext(t, p)
        _, w, state = inner_step(opt, w, state, ctx)
        stats.append(ctx.stats.get("tele_loss_change"))
    return stats


def test_learned_optimizer_schedule_balance_variant_and_loss_change():
    p = MLPTaskFamily(unit_span=10).sample(2, 0)
    stats = _steps(LearnedOptimizer("update_tele", tele_every=3, tele_steps=8), p, 10)
    assert [s is not None for s in stats] == [t % 3 == 0 and t < 8 for t in range(10)]
    assert all(s.abs().max() < 1e-5 for s in stats if s is not None)
    bal = LearnedOptimizer("update_balance", tele_steps=1)
    assert bal.group_net is None and bal.name == "LSTM(update)+balance"
    stats = _steps(bal, p, 3)
    assert stats[0] is not None and stats[0].abs().max() < 1e-5 and stats[1:] == [None, None]
    first = LearnedOptimizer("update_random_tele", tele_norm=0.3, tele_action="first_order")
    assert _steps(first, p, 1)[0].abs().min() > 1e-4


def test_balance_input_feeds_m2_the_balance_signal():
    opt = LearnedOptimizer("update_tele", balance_input=True)
    assert opt.group_net.lstm.lstm.input_size == 3 and opt.update_net.lstm.lstm.input_size == 2
    p = MLPTaskFamily(unit_span=10).sample(2, 0)
    seen = []
    hook = opt.group_net.lstm.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    _steps(opt, p, 1)
    hook.remove()
    x = seen[0][:, 2].reshape(2, 20, 20)
    r = balance_signal(p.weights)[0]
    assert torch.equal(x - torch.diag_embed(x.diagonal(dim1=1, dim2=2)), torch.zeros_like(x))
    # the signal is read after m1's update: close to, not equal to, the initial imbalance
    torch.testing.assert_close(x.diagonal(dim1=1, dim2=2), r, rtol=0.05, atol=0.05)
    cfg = config_from_dict({"model": {"variant": "update_tele", "balance_input": True},
                            "train": {"batch_size": 2, "n_steps": 4, "unroll": 2,
                                      "trajectories": 2, "val_every": 0, "val_problems": 2}})
    trainer = MetaTrainer(cfg)
    trainer.window()
    assert trainer.opt.group_net.lstm.lstm.weight_ih_l0.grad[:, 2].abs().sum() > 0
