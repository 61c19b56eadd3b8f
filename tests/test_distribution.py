"""The task distribution (distribution.MLPDistribution) and mixed-architecture batches."""

from __future__ import annotations

import pytest
import torch

from metateleport.baselines import GD
from metateleport.config import ConfigError, config_from_dict
from metateleport.inner import run
from metateleport.mlp import mlp_loss
from metateleport.symmetry import group_act
from metateleport.tasks import MixedProblems, Problems, groups_of, held_out_metrics, make_family

OPTIONS = {"depth": [1, 3], "width": [8, 24], "group_size": 3, "digits": 0.3, "bias": 0.5}


@pytest.fixture(scope="module")
def dist():
    return make_family({"family": "distribution", "options": OPTIONS}, torch.float64)


def _same(a: Problems, b: Problems) -> bool:
    return torch.equal(a.X, b.X) and all(torch.equal(u, v) for u, v in zip(a.weights, b.weights))


def test_problem_i_depends_on_neither_batch_size_nor_start(dist):
    whole = groups_of(dist.sample(9, 5, "train"))
    assert [g.batch_size for g in whole] == [3, 3, 3]
    part = groups_of(dist.sample(4, 5, "train", start=4))
    assert [g.batch_size for g in part] == [2, 2]
    assert _same(part[0], whole[1][1:]) and _same(part[1], whole[2][:2])
    again = groups_of(dist.sample(9, 5, "train"))
    assert all(_same(a, b) for a, b in zip(whole, again))
    other = groups_of(dist.sample(9, 5, "val"))
    assert not any(_same(a, b) for a, b in zip(whole, other) if a.X.shape == b.X.shape)


def test_groups_cover_the_options_and_every_teleport_is_exact(dist):
    groups = groups_of(dist.sample(60, 0, "test"))
    depths = {len(g.weights) - 1 for g in groups}
    assert depths == {1, 2, 3}
    assert any(g.X_test is not None for g in groups), "digits groups hold held-out images"
    assert any(g.weights[0].shape[2] == g.X.shape[1] + 1 for g in groups), "some with biases"
    for g in groups:
        widths = [g.X.shape[1]] + [w.shape[1] for w in g.weights]
        if g.X_test is None:
            assert all(8 <= d <= 24 for d in widths)
        else:
            assert widths[0] == 64 and widths[-1] == 10
        Ts = [0.1 * torch.randn(g.batch_size, w.shape[1], w.shape[1], dtype=torch.float64)
              for w in g.weights[:-1]]
        moved = group_act(g.weights, g.X, Ts, g.slope)
        torch.testing.assert_close(mlp_loss(moved, g.X, g.Y), mlp_loss(g.weights, g.X, g.Y),
                                   rtol=1e-8, atol=0)


def test_run_on_mixed_problems_is_the_run_of_each_group(dist):
    p = dist.sample(6, 1, "test")
    assert isinstance(p, MixedProblems) and p.batch_size == 6
    traj = run(GD(1e-4), p, 5)
    assert traj.losses.shape == (6, 6)
    parts = [run(GD(1e-4), g, 5).losses for g in p.groups]
    torch.testing.assert_close(traj.losses, torch.cat(parts, dim=1), rtol=0, atol=0,
                               equal_nan=True)
    assert [g.batch_size for g in p[2:5].groups] == [1, 2]


def test_held_out_metrics_of_mixed_digits_groups():
    fam = make_family({"family": "distribution", "options": {"digits": 1.0, "group_size": 2,
                                                             "width": [8, 16]}})
    p = fam.sample(4, 0, "test")
    traj = run(GD(1e-3), p, 3)
    metrics = held_out_metrics(traj.weights, p)
    assert metrics["accuracy"].shape == (4,)


def test_config_errors_name_the_option():
    base = {"family": "distribution"}
    assert config_from_dict({"task": {**base, "options": OPTIONS}}).task.options == OPTIONS
    for options, match in [({"depth": [0, 2]}, "task.options.depth"),
                           ({"widht": [8, 9]}, "task.options.widht: unknown key"),
                           ({"n_fraction": [0.5, 2]}, "task.options.n_fraction: at most 1"),
                           ({"inits": {"gauss": 1}}, "task.options.inits"),
                           ({"bias": 2}, "task.options.bias")]:
        with pytest.raises(ConfigError, match=match):
            config_from_dict({"task": {**base, "options": options}})
    with pytest.raises(ConfigError, match="options: the synthetic family takes none"):
        config_from_dict({"task": {"options": {"depth": [1, 2]}}})


def test_held_out_where_available_meta_loss_takes_each_groups_own(dist):
    from metateleport.estimator import unroll_groups
    from metateleport.learned import LearnedOptimizer

    p = dist.sample(60, 0, "train")
    groups = groups_of(p)
    held = [g for g in groups if g.X_test is not None][:1]
    plain = [g for g in groups if g.X_test is None][:1]
    assert held and plain, "the fixture's first 60 problems mix digits and synthetic groups"
    groups = held + plain
    opt = LearnedOptimizer("update").double()

    def unroll(on):
        states = [opt.init_state(g) for g in groups]
        return unroll_groups(opt, [g.weights for g in groups], states, groups, [None, None],
                             0, 3, on=on)

    mixed, weights, _, _ = unroll("held_out_where_available")
    train, _, _, _ = unroll("train")
    b = held[0].batch_size
    assert mixed.shape == train.shape == (3, b + plain[0].batch_size)
    # the digits group's column is its held-out loss, the synthetic one's its training loss
    torch.testing.assert_close(mixed[-1, :b], mlp_loss(weights[0], held[0].X_test,
                                                       held[0].Y_test, held[0].slope))
    assert not torch.allclose(mixed[:, :b], train[:, :b])
    torch.testing.assert_close(mixed[:, b:], train[:, b:])
    assert mixed.requires_grad
    with pytest.raises(ValueError, match="held-out samples"):
        unroll("held_out")
    ok = {"task": {"family": "distribution", "options": OPTIONS},
          "train": {"meta_loss_on": "held_out_where_available"}}
    assert config_from_dict(ok).train.meta_loss_on == "held_out_where_available"
    for task in ({"family": "distribution", "options": {**OPTIONS, "digits": 0.0}},
                 {"widths": [5, 4, 3], "n_samples": 5}):
        with pytest.raises(ConfigError, match="held_out_where_available needs"):
            config_from_dict({"task": task, "train": {"meta_loss_on":
                                                      "held_out_where_available"}})


def test_validation_on_held_out_where_available_reads_each_problems_own(dist):
    from metateleport.trainer import MetaTrainer, validation_score

    def trainer(on):
        cfg = config_from_dict({"task": {"family": "distribution", "options": OPTIONS},
                                "train": {"n_steps": 3, "unroll": 3, "val_problems": 12,
                                          "validate_on": on, "dtype": "float64"}})
        torch.manual_seed(0)
        return MetaTrainer(cfg)

    held, train = trainer("held_out_where_available"), trainer("train")
    groups = groups_of(held.val_problems)
    has = torch.cat([torch.full((g.batch_size,), g.X_test is not None) for g in groups])
    assert has.any() and not has.all(), "the 12 validation problems mix digits and synthetic"
    mixed, plain = held.validation_losses(), train.validation_losses()
    assert mixed.shape == plain.shape == (4, 12)
    torch.testing.assert_close(mixed[:, ~has], plain[:, ~has], rtol=0, atol=0)
    traj = held.validate(held_out=True)
    # the digits problems' columns are their held-out losses at W_0 .. W_N, from the weights
    col = 0
    for g, w in zip(groups, traj.weights):
        if g.X_test is not None:
            torch.testing.assert_close(mixed[-1, col:col + g.batch_size],
                                       mlp_loss(w, g.X_test, g.Y_test, g.slope))
            torch.testing.assert_close(mixed[0, col:col + g.batch_size],
                                       mlp_loss(g.weights, g.X_test, g.Y_test, g.slope))
        col += g.batch_size
    assert torch.isnan(traj.held_out_losses[:, ~has]).all()
    assert not torch.allclose(mixed[:, has], plain[:, has])
    assert validation_score(mixed) != validation_score(plain)
    for task in ({"family": "distribution", "options": {**OPTIONS, "digits": 0.0}},
                 {"widths": [5, 4, 3], "n_samples": 5}):
        with pytest.raises(ConfigError, match="train.validate_on: held_out_where_available"):
            config_from_dict({"task": task, "train": {"validate_on":
                                                      "held_out_where_available"}})
    with pytest.raises(ConfigError, match="train.validate_on: held_out needs"):
        config_from_dict({"task": {"family": "distribution", "options": OPTIONS},
                          "train": {"validate_on": "held_out"}})


def test_validating_on_held_out_losses_leaves_meta_training_as_it_was(tmp_path):
    from metateleport.checkpoint import load_checkpoint
    from metateleport.training import train_run

    def trained(on):
        cfg = config_from_dict({"task": {"family": "distribution", "options": OPTIONS},
                                "train": {"batch_size": 3, "n_steps": 4, "unroll": 2,
                                          "trajectories": 6, "val_every": 1, "val_problems": 12,
                                          "validate_on": on}})
        trainer = train_run(cfg, tmp_path / on, progress=False)
        return trainer, load_checkpoint(tmp_path / on / "best_params.pt", "params")

    (plain, plain_best), (held, held_best) = trained("train"), trained("held_out_where_available")
    for a, b in zip(plain.opt.state_dict().values(), held.opt.state_dict().values()):
        assert torch.equal(a, b)
    assert held_best["validation_score"] == held.best["score"] != plain.best["score"]
    assert held_best["config"]["train"]["validate_on"] == "held_out_where_available"
    assert plain_best["validation_score"] == plain.best["score"]
