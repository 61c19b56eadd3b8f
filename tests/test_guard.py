"""inner.LossGuard: refused steps, the bound against the best loss so far, the safe fallback,
and that a guard which never fires changes nothing."""

from __future__ import annotations

import math

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


def _all_refused_window(p, penalty: bool):
    """A 3-step window of an m1 whose steps (update_scale 30) the guard refuses on every
    problem; returns (meta-loss terms, window ctx, m1's parameters)."""
    from metateleport.estimator import unroll_window

    torch.manual_seed(0)
    opt = LearnedOptimizer("update", guard=2.0, update_scale=30.0).double()
    opt.guard.proposal_penalty = penalty
    losses, _, _, ctx = unroll_window(opt, [w.clone() for w in p.weights], opt.init_state(p),
                                      p, None, 0, 3)
    return losses, ctx, list(opt.parameters())


def test_refused_proposals_give_m1_a_meta_gradient_only_with_the_penalty(paper_family64):
    p = paper_family64.sample(3, 0, "train")
    losses, ctx, params = _all_refused_window(p, penalty=False)
    assert ctx.stats["guard_refused"].tolist() == [1.0, 1.0, 1.0]
    assert "guard_penalty" not in ctx.stats
    grads = torch.autograd.grad(losses.log().sum(), params, allow_unused=True)
    assert all(g is None or not bool(g.any()) for g in grads), \
        "every step fell back to GD: the meta-loss does not see m1"

    losses, ctx, params = _all_refused_window(p, penalty=True)
    pen = ctx.stats["guard_penalty"]
    assert pen.shape == (3,) and bool((pen > 0).all()) and pen.requires_grad
    grads = torch.autograd.grad((losses.log().sum() + pen.sum()), params, allow_unused=True)
    assert all(g is None or bool(torch.isfinite(g).all()) for g in grads)
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)


def test_penalty_is_the_log_excess_over_the_bound_and_zero_where_not_refused(paper_family64):
    p = paper_family64.sample(2, 0, "test")
    weights = [w.clone() for w in p.weights]
    grads_ = [torch.zeros_like(w) for w in weights]
    loss_and_grad = lambda ws: (torch.stack([  # noqa: E731
        sum(w[b].pow(2).sum() for w in ws) for b in range(2)]), None)
    l0 = loss_and_grad(weights)[0]
    # problem 0 moves far (refused), problem 1 stays (accepted)
    scale = torch.tensor([10.0, 1.0], dtype=l0.dtype, requires_grad=True)
    moved = [w * scale.view(-1, *[1] * (w.dim() - 1)) for w in weights]
    guard = LossGuard(2.0, proposal_penalty=True)
    ctx = StepContext(0, p)
    guard(weights, grads_, l0, moved, guard.init_state(p), ctx, loss_and_grad)
    assert ctx.stats["guard_refused"].tolist() == [1.0, 0.0]
    pen = ctx.stats["guard_penalty"]
    # L(10 W) = 100 L(W): log(100 L / (2 L)) = log 50
    assert float(pen[0].detach()) == pytest.approx(math.log(50.0), rel=1e-9)
    assert float(pen[1].detach()) == 0.0
    (g,) = torch.autograd.grad(pen.sum(), scale)
    assert float(g[0]) == pytest.approx(2 / 10.0, rel=1e-9)  # d log(s^2 L) / ds = 2 / s
    assert float(g[1]) == 0.0
    # a non-finite proposal is refused and counted, without penalty or NaN gradient
    moved = [w * torch.stack([scale[0] * float("inf"), scale[1]]).view(
        -1, *[1] * (w.dim() - 1)) for w in weights]
    ctx = StepContext(0, p)
    guard(weights, grads_, l0, moved, guard.init_state(p), ctx, loss_and_grad)
    assert ctx.stats["guard_refused"].tolist() == [1.0, 0.0]
    assert ctx.stats["guard_penalty"].tolist() == [0.0, 0.0]


def test_refused_weight_needs_a_guard_and_reaches_the_meta_loss():
    from metateleport.config import ConfigError, load_config
    from metateleport.trainer import MetaTrainer

    with pytest.raises(ConfigError, match="refused_weight.*model.guard is null"):
        load_config(None, ["train.refused_weight=1.0", "model.guard=null"])
    cfg = load_config(None, ["train.refused_weight=1.0", "model.guard=2.0",
                             "model.variant=update", "model.update_scale=30.0",
                             "train.batch_size=2", "train.unroll=2", "train.n_steps=4",
                             "train.trajectories=2", "train.val_every=0"])
    trainer = MetaTrainer(cfg)
    assert trainer.opt.guard.proposal_penalty
    stats = trainer.window()
    assert stats["guard_refused"] > 0 and stats["guard_penalty"] > 0
    assert stats["skipped"] == 0 and stats["grad_norm"] > 0
