"""Mixed batches in lockstep: the groups of a MixedProblems (one architecture each) advance step
by step together, each LSTM called once per inner step on the coordinates of all groups
(networks.call_groups, inner.inner_step_groups, estimator.unroll_groups). The reference is the
one-group path run group by group (what the trainer and inner.run did before), in float64."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch.utils._pytree import tree_leaves

from metateleport.config import config_from_dict, load_config
from metateleport.estimator import unroll_groups, unroll_window, window_meta_loss
from metateleport.inner import run
from metateleport.networks import CoordinateNet, call_groups
from metateleport.tasks import MixedProblems
from metateleport.trainer import MetaTrainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TIGHT = dict(rtol=1e-10, atol=1e-12)
K = 3


def _cfg(name: str, **model) -> object:
    """configs/NAME.yaml's model (guard 2.0 in both general configs) on small mixed batches of
    three groups, in float64, with the guard's proposal penalty on."""
    shipped = dataclasses.asdict(load_config(CONFIGS / f"{name}.yaml").model)
    return config_from_dict({
        "task": {"family": "distribution",
                 "options": {"depth": [1, 3], "width": [4, 10], "group_size": 2}},
        "model": {**shipped, **model},
        "train": {"batch_size": 6, "n_steps": 3 * K, "unroll": K, "trajectories": 12,
                  "val_problems": 6, "dtype": "float64", "refused_weight": 0.5}})


MODELS = {
    "general_update_tele": lambda: _cfg("general_update_tele"),
    "general_update": lambda: _cfg("general_update"),
    "lookahead": lambda: _cfg("general_update_tele", lookahead_input=True),
}


def _close(a, b):
    for x, y in zip(tree_leaves(a), tree_leaves(b), strict=True):
        if isinstance(x, torch.Tensor):
            torch.testing.assert_close(x, y, **TIGHT)


def test_call_groups_equals_a_call_per_group():
    torch.manual_seed(0)
    net = CoordinateNet(hidden_size=5, n_extra=1, skip=True).double()
    with torch.no_grad():
        net.skip.weight.fill_(0.3)
    sizes = [7, 1, 12]
    xs = [torch.randn(n, dtype=torch.float64) for n in sizes]
    extras = [torch.randn(n, 1, dtype=torch.float64) for n in sizes]
    states = [[torch.randn(2, n, 5, dtype=torch.float64) for _ in range(2)] for n in sizes]
    together = call_groups(net, xs, states, extras)
    alone = [net(x, s, e) for x, s, e in zip(xs, states, extras)]
    assert [out.shape[0] for out, _, _ in together] == sizes
    _close(together, alone)


@pytest.mark.parametrize("model", list(MODELS))
def test_a_window_in_lockstep_is_the_window_of_each_group(model):
    trainer = MetaTrainer(MODELS[model]())
    trainer.window()  # start mid-trajectory, with LSTM states and guard bests carried
    parts = trainer._parts()
    assert len(parts) == 3 and len({p["problems"].weights[0].shape for p in parts}) == 3
    opt, params = trainer.opt, list(trainer.opt.parameters())
    lags = [trainer.family.loss_and_grad(p["problems"]) for p in parts]

    def meta_loss(losses, stats):
        return window_meta_loss(losses, "log") + 0.5 * stats["guard_penalty"].mean()

    # the per-group path: what MetaTrainer.window did before
    old = [unroll_window(opt, p["weights"], p["state"], p["problems"], p["x_pinv"], p["t"], K, f)
           for p, f in zip(parts, lags)]
    old_losses = torch.cat([o[0] for o in old], dim=1)
    old_stats = {k: torch.cat([o[3].stats[k] for o in old]) for k in old[0][3].stats}
    old_grads = torch.autograd.grad(meta_loss(old_losses, old_stats), params)

    calls = {"m1": 0, "m2": 0}
    hooks = [net.lstm.register_forward_hook(lambda *_, key=key: calls.__setitem__(
                 key, calls[key] + 1))
             for key, net in (("m1", opt.update_net), ("m2", opt.group_net)) if net is not None]
    losses, weights, states, ctx = unroll_groups(
        opt, [p["weights"] for p in parts], [p["state"] for p in parts],
        [p["problems"] for p in parts], [p["x_pinv"] for p in parts], parts[0]["t"], K, lags)
    for hook in hooks:
        hook.remove()
    # one call per inner step for the whole batch (m1 twice with the lookahead, which runs it)
    assert calls == {"m1": K * (2 if model == "lookahead" else 1),
                     "m2": K if opt.group_net is not None else 0}
    assert isinstance(ctx.problems, MixedProblems) and set(ctx.stats) == set(old_stats)
    assert bool(old_stats["guard_refused"].any()), "the guard should fire in this test"
    torch.testing.assert_close(losses, old_losses, **TIGHT)
    _close(weights, [o[1] for o in old])
    _close(states, [o[2] for o in old])
    _close(ctx.stats, old_stats)
    grads = torch.autograd.grad(meta_loss(losses, ctx.stats), params)
    _close(grads, old_grads)

    stats = trainer.window()
    torch.testing.assert_close(stats["meta_loss"],
                               float(meta_loss(old_losses, old_stats).detach()), **TIGHT)
    torch.testing.assert_close(stats["grad_norm"],
                               float(torch.cat([g.flatten() for g in old_grads]).norm()), **TIGHT)
    for key in ("guard_refused", "guard_penalty", "update_norm"):  # the trainer's float means
        torch.testing.assert_close(stats[key], float(old_stats[key].detach().float().mean()),
                                   rtol=1e-6, atol=0)
    _close([p["weights"] for p in trainer._parts()], [o[1] for o in old])


@pytest.mark.parametrize("model", ["general_update_tele", "general_update"])
def test_a_run_in_lockstep_is_the_run_of_each_group(model):
    trainer = MetaTrainer(MODELS[model]())
    trainer.window()
    problems = trainer.val_problems
    assert isinstance(problems, MixedProblems) and len(problems.groups) == 3
    traj = trainer.validate()
    with torch.no_grad():
        per_group = [run(trainer.opt, g, trainer.cfg.train.n_steps) for g in problems.groups]
    torch.testing.assert_close(traj.losses, torch.cat([t.losses for t in per_group], dim=1),
                               **TIGHT)
    torch.testing.assert_close(traj.refused, torch.cat([t.refused for t in per_group]),
                               rtol=0, atol=0)
    _close(traj.weights, [t.weights for t in per_group])
    assert traj.seconds.shape == (trainer.cfg.train.n_steps + 1,)
