"""The task-family registry, the Teleport objects behind one call, and the old names (import
paths, config keys, checkpoint metadata) that keep working through aliases."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from metateleport import baselines
from metateleport.config import ConfigError, config_from_dict, upgrade_section
from metateleport.inner import StepContext, Teleporting, run
from metateleport.tasks import FAMILIES, MLPTaskFamily, make_family, register_family
from metateleport.teleport import (
    HAND_TELEPORTS,
    AscentTeleport,
    BalanceTeleport,
    RandomTeleport,
    Schedule,
    make_teleport,
)


def test_registry_builds_every_family_by_name_and_by_the_old_key():
    for name in ("synthetic", "paper", "imbalanced", "layer_rescaled", "ill_conditioned"):
        fam = make_family({"family": name})
        assert type(fam) is FAMILIES[name] and fam.config()["family"] == name
    old = make_family({"dataset": "synthetic", "unit_span": 10.0}).sample(2, 3, "test")
    new = make_family({"family": "imbalanced"}).sample(2, 3, "test")
    assert all(torch.equal(a, b) for a, b in zip(old.weights, new.weights))
    with pytest.raises(ValueError, match="given twice"):
        make_family({"family": "paper", "dataset": "digits"})


def test_a_family_named_for_a_property_must_have_it():
    with pytest.raises(ValueError, match="unit_span: the imbalanced family needs"):
        FAMILIES["imbalanced"](unit_span=1.0)
    with pytest.raises(ConfigError, match="task.unit_span: the imbalanced family needs"):
        config_from_dict({"task": {"family": "imbalanced"}})
    assert config_from_dict({"task": {"family": "imbalanced", "unit_span": 10}}).task.unit_span


def test_register_family_refuses_a_taken_name():
    class Again(MLPTaskFamily):
        name = "paper"

    with pytest.raises(ValueError, match="new, non-empty name"):
        register_family(Again)


def test_old_config_keys_load_as_the_new_ones():
    cfg = config_from_dict({"task": {"dataset": "synthetic"}, "model": {"tele_steps": 20}})
    assert cfg.task.family == "synthetic" and cfg.model.tele_until == 20
    with pytest.raises(ConfigError, match="model.tele_steps: given together with"):
        config_from_dict({"model": {"tele_steps": 20, "tele_until": 20}})
    with pytest.raises(ConfigError, match="task.dataset: 'mnist' is not one of"):
        config_from_dict({"task": {"dataset": "mnist"}})
    assert upgrade_section("model", {"tele_steps": 3, "variant": "update"}) == {
        "tele_until": 3, "variant": "update"}


def test_old_import_paths_build_the_same_optimizers(paper_family64):
    from metateleport import meta_optimizers, optim, optimizers
    from metateleport.learned import LearnedOptimizer
    from metateleport.torch_optim import LearnedTorchOptimizer

    assert meta_optimizers.LearnedOptimizer is LearnedOptimizer
    assert optim.LearnedOpt is LearnedTorchOptimizer
    p = paper_family64.sample(2, 0, "test")
    old = optimizers.GD(3e-4, optimizers.TeleportSchedule(at_steps=(0, 5), max_norm=0.01))
    new = Teleporting(baselines.GD(3e-4), AscentTeleport(norm=0.01), Schedule(at=(0, 5)),
                      name="GD")
    assert old.name == new.name == "GD"
    assert torch.equal(run(old, p, 10).losses, run(new, p, 10).losses)
    lstm = LearnedOptimizer("update", tele_steps=4)
    assert lstm.tele_until == lstm.tele_steps == 4
    wrapped = optimizers.WithTeleport(lstm, optimizers.TeleportSchedule(at_steps=(0,),
                                                                       kind="balance"))
    assert wrapped.name == "LSTM(update)+balance" and isinstance(wrapped.move, BalanceTeleport)


def test_learned_optimizer_is_a_composite_of_the_same_objects():
    from metateleport.learned import LearnedOptimizer, LearnedTeleport, LearnedUpdate

    opt = LearnedOptimizer("update_tele", tele_every=3, tele_steps=9)
    assert isinstance(opt, Teleporting)
    assert isinstance(opt.rule, LearnedUpdate) and isinstance(opt.move, LearnedTeleport)
    assert opt.schedule == Schedule(3, 9)
    assert isinstance(LearnedOptimizer("update_random_tele", tele_norm=0.2).move, RandomTeleport)
    assert LearnedOptimizer("update").move is None


@pytest.mark.parametrize("kind", sorted(HAND_TELEPORTS))
def test_every_hand_teleport_keeps_the_loss(kind, paper_family64):
    from metateleport.mlp import mlp_loss

    p = paper_family64.sample(3, 1, "test")
    move = make_teleport(kind) if kind == "balance" else make_teleport(kind, norm=0.05)
    torch.manual_seed(0)
    moved, state = move(p.weights, {"kept": 1}, StepContext(0, p))
    assert state == {"kept": 1}
    assert not all(torch.equal(a, b) for a, b in zip(moved, p.weights))
    torch.testing.assert_close(mlp_loss(moved, p.X, p.Y), mlp_loss(p.weights, p.X, p.Y),
                               rtol=1e-9, atol=0)


def test_schedule_spellings():
    assert [t for t in range(12) if Schedule(3, 8).due(t)] == [0, 3, 6]
    assert [t for t in range(12) if Schedule(at=(2, 5)).due(t)] == [2, 5]
    assert not any(Schedule(at=()).due(t) for t in range(5))
    with pytest.raises(ValueError, match="every >= 1"):
        Schedule(0)


def test_teleporting_records_the_loss_change_and_resets_the_rule_state(paper_family64):
    from metateleport.learned import LearnedOptimizer

    p = paper_family64.sample(2, 0, "test")
    opt = LearnedOptimizer("update_balance", m1_state_on_tele="reset").double()
    weights, state = [w.clone() for w in p.weights], opt.init_state(p)
    ctx = StepContext(0, p)
    grads = [torch.randn_like(w) for w in weights]
    _, state = opt.update(weights, grads, state, ctx)
    assert any(bool(s.abs().sum() > 0) for s in state["m1"])
    _, state = opt.teleport(weights, state, ctx)
    assert all(bool((s == 0).all()) for s in state["m1"])
    assert ctx.stats["tele_loss_change"].abs().max() < 1e-10


def test_dataclass_fields_of_the_baselines_are_plain():
    assert [f.name for f in dataclasses.fields(baselines.GD)] == ["lr", "name"]


def test_an_override_by_either_name_replaces_the_key():
    from metateleport.config import apply_overrides

    data = {"model": {"tele_until": None}, "task": {"dataset": "synthetic"}}
    apply_overrides(data, ["model.tele_steps=1", "task.family=paper"])
    assert data == {"model": {"tele_steps": 1}, "task": {"family": "paper"}}
    assert config_from_dict(data).model.tele_until == 1
