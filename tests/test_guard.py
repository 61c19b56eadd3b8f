"""inner.LossGuard: refused steps, the bound against the best loss so far, the safe fallback,
and that a guard which never fires changes nothing."""

from __future__ import annotations

import pytest
import torch

from metateleport.baselines import GD
from metateleport.inner import LossGuard, StepContext, Teleporting, inner_step, run
from metateleport.learned import LearnedOptimizer


def test_guard_keeps_a_diverging_optimizer_under_the_bound(paper_family64):
    p = paper_family64.sample(4, 0, "test")
    wild = run(GD(1e-2), p, 30).losses
    assert not bool(torch.isfinite(wild[-1]).all()) or bool((wild[-1] > wild[0]).all())
    guarded = run(Teleporting(GD(1e-2), guard=LossGuard(2.0)), p, 30).losses
    best = torch.cummin(guarded, dim=0).values
    assert bool(torch.isfinite(guarded).all())
    assert bool((guarded[1:] <= 2.0 * best[:-1] * (1 + 1e-12)).all())
    assert bool((guarded[-1] < guarded[0]).all()), "the fallback steps still make progress"


def test_guard_that_never_fires_changes_nothing(paper_family64):
    p = paper_family64.sample(3, 1, "test")
    plain = run(GD(3e-4), p, 20).losses
    guarded = run(Teleporting(GD(3e-4), guard=LossGuard(1e30)), p, 20).losses
    assert torch.equal(plain, guarded)


def test_refusals_are_counted_and_non_finite_proposals_refused(paper_family64):
    p = paper_family64.sample(2, 0, "test")

    class Nan(GD):
        def update(self, weights, grads, state, ctx):
            return [torch.full_like(g, float("nan")) for g in grads], state

    opt = Teleporting(Nan(), guard=LossGuard())
    state = opt.init_state(p)
    ctx = StepContext(0, p)
    loss, moved, state = inner_step(opt, [w.clone() for w in p.weights], state, ctx)
    assert ctx.stats["guard_refused"].tolist() == [1.0, 1.0]
    assert all(bool(torch.isfinite(w).all()) for w in moved)
    assert torch.equal(state["guard_best"], loss)


def test_guarded_learned_optimizer_has_a_finite_meta_gradient(paper_family64):
    torch.manual_seed(0)
    p = paper_family64.sample(4, 0, "train")
    opt = LearnedOptimizer("update_tele", guard=2.0, update_scale=0.3).double()
    weights, state = [w.clone() for w in p.weights], opt.init_state(p)
    total, refused = 0.0, 0.0
    for t in range(6):
        ctx = StepContext(t, p)
        loss, weights, state = inner_step(opt, weights, state, ctx)
        total = total + loss.log().sum()
        refused += float(ctx.stats["guard_refused"].sum())
    grads = torch.autograd.grad(total, list(opt.parameters()), allow_unused=True)
    assert 0 < refused < 24, "a 3x update scale trips the guard on some steps, not all"
    assert all(g is None or bool(torch.isfinite(g).all()) for g in grads)
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)


def test_guard_arguments_are_checked():
    with pytest.raises(ValueError, match="factor >= 1"):
        LossGuard(0.5)


def test_evaluation_reports_the_guard_beside_divergence_and_stalls(paper_family64, tmp_path):
    from metateleport.evaluation import evaluate, markdown_table

    p = paper_family64.sample(4, 0, "test")
    opts = {"wild": GD(1e-2), "guarded": Teleporting(GD(1e-2), guard=LossGuard(2.0))}
    result = evaluate(opts, p, 15, n_boot=50)
    guard = result.summary["guarded"]["guard"]
    traj = run(opts["guarded"], p, 15)
    assert guard["problems_refused"] == int((traj.refused > 0).sum()) > 0
    assert guard["refused_fraction"] == pytest.approx(float(traj.refused.sum()) / (15 * 4))
    assert "guard" not in result.summary["wild"]
    assert result.summary["wild"]["not_improved"] == int(
        (~(result.losses["wild"][-1] < result.losses["wild"][0])).sum())
    assert "| guarded |" in markdown_table(result).split("Loss guard")[1]
