"""The generalization and Figure 6 studies (studies/generalization.py, figure6.py, minibatch.py)
at tiny sizes: skipping, tables from summaries alone, random controls of the same size, pairing
by seed, and the optimizer-state rule per group."""

from __future__ import annotations

import shutil

import pytest
import torch

from metateleport.modules import inspect_module
from metateleport.studies import figure6, generalization, minibatch
from metateleport.studies.minibatch import Setup
from metateleport.teleporter import Teleporter, unit_factors

pytest.importorskip("sklearn")

GEN = generalization.GeneralizationStudy(
    setups={"digits": Setup("digits", (8,), 64, 16, 17)}, epochs=3, teleport_epoch=1,
    seeds=(0, 1), val_seeds=(1000,), lr_grid=(0.1, 0.3), sharpness_directions=2,
    teleport={"gl": (3, 0.02), "diag": (3, 0.3)})
FIG = figure6.Figure6Study(
    setup=Setup("digits", (8, 8), 64, 16, 9), steps=12, log_every=4, teleport_at=(0, 4),
    tele_steps=2, tele_grid=(0.05,), seeds=(0, 1), val_seeds=(1000,),
    lr_grids={k: (1e-2,) for k in figure6.OPTIMIZERS}, optimizers=("adam",))


def _forbid(monkeypatch, module):
    def boom(*args, **kwargs):
        raise AssertionError("a finished run was run again")
    monkeypatch.setattr(module, "_train_once", boom)


def test_finished_summary_is_skipped(tmp_path, monkeypatch):
    first = generalization.run_condition(GEN, "digits", "diag-flatter-random", 0, tmp_path)
    assert (tmp_path / "generalization" / "digits" / "diag-flatter" / "s0.json").is_file()
    log = (tmp_path / "generalization" / "study.log").read_text()
    _forbid(monkeypatch, generalization)
    again = generalization.run_condition(GEN, "digits", "diag-flatter-random", 0, tmp_path)
    assert again == first
    assert (tmp_path / "generalization" / "study.log").read_text() == log


def test_tables_regenerate_from_summaries_alone(tmp_path, monkeypatch):
    generalization.run(GEN, tmp_path)
    figure6.run(FIG, tmp_path)
    tables = generalization.table(GEN, tmp_path), figure6.table(FIG, tmp_path)
    copy = tmp_path.parent / (tmp_path.name + "_copy")
    shutil.copytree(tmp_path, copy)
    _forbid(monkeypatch, generalization)
    _forbid(monkeypatch, figure6)
    monkeypatch.setattr(minibatch, "make", None)
    assert (generalization.table(GEN, copy), figure6.table(FIG, copy)) == tables
    for condition in generalization.conditions()[1:]:
        assert f"| {condition} | 2" in tables[0]
    for condition in figure6.CONDITIONS[1:]:
        assert f"| {condition} | 2" in tables[1]


def test_random_control_has_the_objective_teleports_norms(tmp_path):
    for cond in ("gl-curvature_up", "diag-sharper"):
        tele = generalization.run_condition(GEN, "digits", cond, 1, tmp_path)["teleports"][0]
        rand = generalization.run_condition(GEN, "digits", cond + "-random", 1,
                                            tmp_path)["teleports"][0]
        assert rand["steps"] == 0 and tele["steps"] > 0
        assert rand["layer_norms"] == pytest.approx(tele["layer_norms"], rel=1e-12)
        assert rand["group_norm"] == pytest.approx(tele["group_norm"], rel=1e-12)
    for cond in ("gl", "diag"):
        tele = figure6.run_condition(FIG, "adam", cond, 0, tmp_path)["teleports"]
        rand = figure6.run_condition(FIG, "adam", cond + "-random", 0, tmp_path)["teleports"]
        assert [t["step"] for t in rand] == list(FIG.teleport_at)
        for a, b in zip(rand, tele):
            assert a["layer_norms"] == pytest.approx(b["layer_norms"], rel=1e-12)


def test_random_control_moves_in_a_random_direction():
    p = minibatch.make(GEN.setups["digits"], 0)
    x, y = p.x[:17], p.labels[:17]
    tele = Teleporter("grad_norm", group="diag", steps=3, step_size=0.1)
    a = minibatch.random_control(tele, p.model, x, y, [0.5], 1)
    b = minibatch.random_control(tele, minibatch.make(GEN.setups["digits"], 0).model, x, y,
                                 [0.5], 2)
    assert a["group_norm"] == pytest.approx(0.5) == pytest.approx(b["group_norm"])
    assert a["objective_after"] != b["objective_after"]
    assert a["output_change"] < 1e-5


def test_same_seed_gives_the_same_init_and_batches():
    setup = GEN.setups["digits"]
    a, b = minibatch.make(setup, 3), minibatch.make(setup, 3)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert all(torch.equal(i, j) for i, j in zip(minibatch.batch_order(64, 16, 9, 3),
                                                 minibatch.batch_order(64, 16, 9, 3)))
    none = generalization._train_once(GEN, "digits", "none", 0, 0.1, None)
    again = generalization._train_once(GEN, "digits", "none", 0, 0.1, None)
    for key in ("train_loss", "held_out_loss", "final"):
        assert again[key] == none[key]
    tele = generalization._train_once(GEN, "digits", "gl-sharper", 0, 0.1, None)
    k = GEN.teleport_epoch  # logs are per epoch: identical up to the teleport
    assert tele["train_loss"][:k + 1] == none["train_loss"][:k + 1]
    assert tele["train_loss"][k + 1] != none["train_loss"][k + 1]
    # Figure 6: the same for a run teleported from step 0 (its log at 0 is before the move)
    base = figure6._train_once(FIG, "adam", "none", 0, 1e-2, None, None)
    moved = figure6._train_once(FIG, "adam", "diag", 0, 1e-2, 0.05, None)
    assert base["train_loss"][0] == moved["train_loss"][0]


def test_state_is_transformed_under_diag_and_reset_under_gl(tmp_path):
    states = {c: {t["optimizer_state"] for t in
                  figure6.run_condition(FIG, "adam", c, 1, tmp_path)["teleports"]}
              for c in ("gl", "gl-random", "diag", "diag-random", "diag-reset")}
    assert states == {"gl": {"reset"}, "gl-random": {"reset"}, "diag": {"transform"},
                      "diag-random": {"transform"}, "diag-reset": {"reset"}}
    # and the transform is the exact one: Adam's moments divided by a and a^2
    p = minibatch.make(FIG.setup, 0)
    opt = figure6.make_optimizer("adam", p.model.parameters(), 1e-2)
    for _ in range(2):
        opt.zero_grad()
        ((p.model(p.x) - p.y) ** 2).sum().backward()
        opt.step()
    before = {q: {k: v.clone() for k, v in opt.state[q].items()} for q in p.model.parameters()}
    report = FIG.teleporter("diag", 0.05)(p.model, p.x[:9], p.labels[:9], opt)
    spec = inspect_module(p.model, allow_bias=True)
    factors = [a for parts in unit_factors(spec, list(report.params)) for a in parts]
    for q, a in zip(p.model.parameters(), factors):
        a = a.to(q.dtype)
        assert torch.allclose(opt.state[q]["exp_avg"], before[q]["exp_avg"] / a, rtol=1e-5)
        assert torch.allclose(opt.state[q]["exp_avg_sq"], before[q]["exp_avg_sq"] / a ** 2,
                              rtol=1e-5)


@pytest.mark.parametrize("group", ["gl", "diag"])
def test_move_by_a_reports_params_repeats_the_teleport(group):
    a, b = (minibatch.make(FIG.setup, 2) for _ in range(2))
    tele = Teleporter("grad_norm", group=group, steps=3, step_size=0.05)
    x, y = a.x[:9], a.labels[:9]
    report = tele(a.model, x, y)
    again = tele.move(b.model, x, list(report.params), y)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert again.steps == 0 and again.group_norm == pytest.approx(report.group_norm)
    assert again.objective_before == pytest.approx(report.objective_before)
    assert again.objective_after == pytest.approx(report.objective_after, rel=1e-9)
    with pytest.raises(ValueError, match="hidden layer 1"):
        tele.move(b.model, x, [torch.zeros(3), torch.zeros(8)], y)
