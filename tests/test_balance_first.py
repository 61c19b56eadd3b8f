"""model.balance_first (teleport.balance_fully as inner.Teleporting's start map) and
scripts/balance_first_probe.py: a balanced start is the same function on every input with every
unit balanced; meta-training, evaluation, checkpoints and the torch.optim face all start from it;
the probe writes its table."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from metateleport.checkpoint import load_optimizer
from metateleport.config import ConfigError, config_from_dict
from metateleport.inner import run
from metateleport.learned import LearnedOptimizer
from metateleport.mlp import mlp_forward
from metateleport.stats import spearman
from metateleport.studies.suites import suite_task
from metateleport.tasks import MixedProblems, MLPTaskFamily, make_family
from metateleport.teleport import balance_fully, balance_signal, balance_teleport
from metateleport.torch_optim import LearnedTorchOptimizer
from metateleport.trainer import MetaTrainer
from metateleport.training import train_run
from tests.test_studies import REPO, _script
from tests.test_torch_optim import load_problem, mlp, sq_loss, torch_loop


def _deep(bias: bool, B: int = 3):
    """Problems with 3 hidden layers whose units are rescaled over a span of 10 (float64)."""
    return MLPTaskFamily(widths=(6, 9, 8, 7, 5), n_samples=5, bias=bias, unit_span=10.0,
                         dtype=torch.float64).sample(B, 1, "test")


@pytest.mark.parametrize("bias", [False, True])
def test_balance_fully_balances_every_unit_and_keeps_the_function(bias):
    p = _deep(bias)
    out = balance_fully(p.weights, tol=1e-10)
    assert all(r.abs().max() <= 1e-10 for r in balance_signal(out))
    # one sweep leaves the earlier hidden layers imbalanced: the fixed point needs more
    assert balance_signal(balance_teleport(p.weights))[0].abs().max() > 1e-3
    X = torch.randn(p.X.shape[0], p.X.shape[1], 40, dtype=torch.float64) * 3  # other inputs
    torch.testing.assert_close(mlp_forward(out, X, p.slope)[0],
                               mlp_forward(p.weights, X, p.slope)[0], rtol=1e-10, atol=1e-10)
    # the balanced point is the least-norm point of the rescaling orbit
    norm = sum(w.pow(2).sum() for w in out)
    assert norm < sum(w.pow(2).sum() for w in balance_teleport(p.weights))
    assert norm < sum(w.pow(2).sum() for w in p.weights)
    with pytest.raises(ValueError, match="tol > 0"):
        balance_fully(p.weights, tol=0)


def test_a_balance_first_run_is_a_run_from_the_balanced_problems():
    torch.manual_seed(0)
    plain = LearnedOptimizer("update_tele", tele_group="diag", tele_norm=None).double()
    first = LearnedOptimizer("update_tele", tele_group="diag", tele_norm=None,
                             balance_first=True).double()
    first.load_state_dict(plain.state_dict())
    p = _deep(True)
    balanced = dataclasses.replace(p, weights=balance_fully(p.weights))
    ref = run(plain, balanced, 5)
    got = run(first, p, 5)
    torch.testing.assert_close(got.losses, ref.losses, rtol=0, atol=0)
    assert not torch.equal(run(plain, p, 5).losses[1:], got.losses[1:])
    # the loss at W_0 is the problem's own: the start is exact
    torch.testing.assert_close(got.losses[0], run(plain, p, 0).losses[0], rtol=1e-12, atol=0)


def _cfg(**model):
    return config_from_dict({
        "model": {"variant": "update_tele", "tele_group": "diag", "tele_norm": None,
                  **model},
        "task": {"unit_span": 10.0},
        "train": {"batch_size": 2, "n_steps": 4, "unroll": 2, "trajectories": 6,
                  "val_problems": 2, "val_every": 2, "ckpt_every": 1}})


def test_meta_training_starts_its_trajectories_balanced_and_resumes_exactly(tmp_path):
    t = MetaTrainer(_cfg(balance_first=True))
    t.window()
    first = t.carry["problems"].weights
    t2 = MetaTrainer(_cfg(balance_first=True))
    t2._new_batch()
    assert all(r.abs().max() <= 1e-5 for r in balance_signal(t2.carry["weights"]))
    assert any(r.abs().max() > 0.1 for r in balance_signal(first))
    whole = train_run(_cfg(balance_first=True), tmp_path / "whole", progress=False)
    train_run(_cfg(balance_first=True), tmp_path / "split", progress=False, max_meta_steps=3)
    train_run(_cfg(balance_first=True), tmp_path / "split", resume=True, progress=False)
    a = torch.load(tmp_path / "whole" / "params.pt")["state_dict"]
    b = torch.load(tmp_path / "split" / "params.pt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the saved optimizer starts balanced too, and steps as the trainer's
    opt, meta = load_optimizer(tmp_path / "whole" / "params.pt")
    assert opt.balance_first and meta["model"]["balance_first"] is True
    p = whole.val_problems
    torch.testing.assert_close(run(opt, p, 4).losses, run(whole.opt, p, 4).losses)


def test_config_refuses_a_non_boolean_balance_first():
    with pytest.raises(ConfigError, match=r"model\.balance_first"):
        _cfg(balance_first="yes")


def test_the_torch_face_starts_balanced_and_matches_the_batched_path():
    torch.manual_seed(0)
    learned = LearnedOptimizer("update_tele", tele_group="diag", tele_norm=None,
                               max_tele_norm=0.5, update_moments=True, update_input="rms",
                               update_form="mixed", update_tilt=3.0,
                               balance_first=True).double()
    p = _deep(True, B=1)
    ref = run(learned, p, 6).losses[:, 0]
    widths = [6, 9, 8, 7, 5]
    model = mlp(widths, True)
    load_problem(model, p.weights)
    X, Y = p.X[0].T, p.Y[0].T
    opt = LearnedTorchOptimizer(model.parameters(), learned=learned)
    before = model(X * 2)
    assert opt.start(model)
    torch.testing.assert_close(model(X * 2), before, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(torch_loop(model, opt, X, Y, 6), ref, rtol=1e-8, atol=0)
    with pytest.raises(RuntimeError, match="before the first step"):
        opt.start(model)
    # without start(), the first step warns that the start is one it never saw
    load_problem(model, p.weights)
    opt = LearnedTorchOptimizer(model.parameters(), learned=learned)
    sq_loss(model, X, Y).backward()
    with pytest.warns(UserWarning, match=r"opt\.start\(model\)"):
        opt.step()
    # a checkpoint not meta-trained from balanced starts leaves the model where it is
    plain = mlp(widths, True)
    load_problem(plain, p.weights)
    other = LearnedTorchOptimizer(plain.parameters(), learned=LearnedOptimizer("update"))
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    assert not other.start(plain)
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in state.items())


def test_balanced_problems_keep_the_function_and_balance_the_last_layer():
    probe = _script("balance_first_probe")
    problems = make_family(suite_task("distribution")).sample(8, 0, "val").to(dtype=torch.float64)
    assert isinstance(problems, MixedProblems) and len(problems.groups) > 1
    out = probe.balanced(problems)
    for before, after in zip(problems.groups, out.groups):
        # other inputs than the batch: the move is exact for every input
        X = torch.randn_like(before.X) * 3
        torch.testing.assert_close(mlp_forward(after.weights, X, before.slope)[0],
                                   mlp_forward(before.weights, X, before.slope)[0])
        assert any(not torch.equal(a, b) for a, b in zip(after.weights, before.weights))
        # one sweep over the layers in order: the last hidden layer balanced exactly, an
        # earlier one left as the next layer's rescaling of its outgoing columns leaves it
        r_before, r_after = balance_signal(before.weights), balance_signal(after.weights)
        assert r_after[-1].abs().max() < 1e-6
        assert sum(r.abs().sum() for r in r_after) < 0.5 * sum(r.abs().sum() for r in r_before)


def test_the_probe_writes_its_table(tmp_path):
    probe = _script("balance_first_probe")
    out = tmp_path / "table.md"
    argv = ["--checkpoints", str(REPO / "checkpoints" / "general_update.pt"), "--suites",
            "unit_span10", "--problems", "2", "--out", str(out)]
    assert probe.main(argv) == 0
    text = out.read_text()
    assert " ".join(argv) in text
    rows = [r for r in text.splitlines() if r.startswith("| checkpoints/general_update.pt")]
    assert len(rows) == 1 and "| unit_span10 |" in rows[0]


def test_balanced_hand_scores_tuned_adam_from_balanced_starts_and_pairs_the_arm(tmp_path):
    from metateleport.baselines import Adam
    from metateleport.teleport import balanced_problems

    script = _script("balanced_hand")
    study, out = tmp_path / "study", tmp_path / "bh"
    task = suite_task("small")
    ref = {"task": task, "gd": {"final": [1.0, 2.0]}, "adam": {"final": [3.0, float("nan")]}}
    (study / "ref").mkdir(parents=True)
    (study / "ref" / "s0-small.json").write_text(json.dumps(ref))
    (study / "arm").mkdir()
    for seed in (0, 1):
        (study / "arm" / f"s{seed}-small.json").write_text(
            json.dumps({"learned": {"final": [0.5, 0.25]}}))
    argv = ["--suites", "small", "--real", "--problems", "2", "--out", str(out), "--study",
            str(study), "--arms", "arm", "--reference", "ref"]
    assert script.main(argv) == 0
    result = json.loads((out / "small.json").read_text())
    # Adam at its tuned step size, run from the balanced test problems
    test = balanced_problems(make_family(task).sample(2, 0, "test"))
    want = run(Adam(lr=result["step_sizes"]["adam"]), test, 100).losses[-1]
    torch.testing.assert_close(torch.tensor(result["adam"]["final"]), want.float())
    row = [r for r in (out.with_suffix(".md")).read_text().splitlines()
           if r.startswith("| small |")]
    assert len(row) == 1 and "(1 diverged)" in row[0] and "| 2 | 0.375 |" in row[0]
    # a rerun skips the suite already scored, and refuses a reference of other problems
    script.score_balanced = None  # would raise if called
    ref["task"] = {**task, "widths": [10, 10, 11]}
    (study / "ref" / "s0-small.json").write_text(json.dumps(ref))
    with pytest.raises(ValueError, match="other problems"):
        script.main(argv)


def test_balanced_hand_on_real_data_balances_each_model_before_its_first_step(
        tmp_path, monkeypatch):
    from metateleport.modules import inspect_module, module_weights, write_weights
    from metateleport.studies import realdata

    script = _script("balanced_hand")
    monkeypatch.setattr(realdata, "GRIDS", {"sgd": (0.1, 1.0), "adam": (0.001, 0.01)})
    monkeypatch.setattr(realdata, "VAL_SEEDS", (1000, 1001))
    study, out = tmp_path / "study", tmp_path / "bh"
    (out).mkdir()
    (out / "small.json").write_text("{}")  # scored already: skipped
    argv = ["--suites", "small", "--real", "breast_cancer", "--problems", "2", "--out",
            str(out), "--study", str(study)]
    assert script.main(argv) == 0
    found = json.loads((out / "real-breast_cancer.json").read_text())
    # SGD at its tuned step size from the balanced model equals a run balanced by hand
    problem = realdata.make_problem("breast_cancer", 1)
    spec = inspect_module(problem.model, allow_bias=True)
    write_weights(spec, balance_fully(module_weights(spec)))
    plain = realdata.run(problem, lambda ps: torch.optim.SGD(ps, lr=found["sgd"]["lr"]), 100)
    assert found["sgd"]["accuracy"][1] == plain["accuracy"]
    assert found["sgd"]["final"][1] == plain["final"]
    again = realdata.run(realdata.make_problem("breast_cancer", 1),
                         lambda ps: torch.optim.SGD(ps, lr=found["sgd"]["lr"]), 100)
    assert again["final"] != plain["final"]  # the balancing changed SGD's run


def test_the_orbit_norm_probe_measures_what_no_rescaling_changes():
    probe = _script("orbit_norm_probe")
    from metateleport.studies import realdata
    problem = realdata.make_problem("digits", realdata.VAL_SEEDS[0])
    before = probe.least_orbit_norm(problem.model)
    first, second = problem.model[0], problem.model[2]
    scale = torch.exp(torch.randn(first.out_features, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():  # a per-unit rescaling of the hidden layer, biases with their units
        first.weight.mul_(scale[:, None])
        first.bias.mul_(scale)
        second.weight.div_(scale[None, :])
    norm = float(torch.sqrt(sum((p.detach().double() ** 2).sum()
                                for p in problem.model.parameters())))
    assert probe.least_orbit_norm(problem.model) == pytest.approx(before, rel=1e-6)
    assert before < norm, "the rescaled point lies off the orbit's least-norm point"
    still = probe.probe(lambda params: torch.optim.SGD(params, lr=0.0), 3, False)
    assert len(still["growth"]) == len(realdata.VAL_SEEDS)
    assert still["growth"] == pytest.approx([1.0] * len(realdata.VAL_SEEDS), rel=1e-9)
    moved = probe.probe(lambda params: torch.optim.SGD(params, lr=1.0), 3, False)
    assert all(g != pytest.approx(1.0, rel=1e-6) for g in moved["growth"]), "steps change it"
    assert spearman([1.0, 2.0, 3.0], [0.9, 0.5, 0.1]) == pytest.approx(-1.0)
