"""The real-data scorer of the torch.optim face (metateleport.studies.realdata)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from metateleport.checkpoint import load_optimizer  # noqa: E402
from metateleport.studies import realdata  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(realdata.REAL_SETS))
def test_a_problem_is_determined_by_its_seed(name):
    a, b, c = (realdata.make_problem(name, s) for s in (3, 3, 4))
    assert np.array_equal(a.train_idx, b.train_idx) and not np.array_equal(a.train_idx,
                                                                            c.train_idx)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.model[0].weight, c.model[0].weight)
    assert a.model[0].weight.dtype == torch.float32 and a.model[0].bias is not None


def test_a_problem_leaves_the_global_generator_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    realdata.make_problem("breast_cancer", 5)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", list(realdata.REAL_SETS))
def test_training_and_held_out_samples_split_the_set(name):
    spec = realdata.REAL_SETS[name]
    features, labels = realdata._load(name)
    p = realdata.make_problem(name, 0)
    assert len(p.train_idx) == spec.n_train == len(set(p.train_idx))
    assert len(p.x) + len(p.x_test) == len(labels)
    assert torch.equal(p.labels, torch.as_tensor(labels[p.train_idx]))
    # stratified: every class, each within one sample of its share
    share = np.bincount(labels) / len(labels) * spec.n_train
    assert np.all(np.abs(np.bincount(labels[p.train_idx]) - share) < 1)
    assert torch.equal(p.y.argmax(1), p.labels) and torch.equal(p.y_test.argmax(1),
                                                               p.labels_test)


@pytest.mark.parametrize("name", list(realdata.REAL_SETS))
def test_standardization_uses_the_training_samples_only(name):
    features, labels = realdata._load(name)
    p = realdata.make_problem(name, 1)
    train = features[p.train_idx]
    mean, std = train.mean(0), train.std(0)
    std[std == 0] = 1.0
    rest = np.setdiff1d(np.arange(len(labels)), p.train_idx)
    # reference in float64: the held-out samples are scaled by the training samples' statistics
    np.testing.assert_allclose(p.x.double().numpy(), (train - mean) / std, atol=1e-5)
    np.testing.assert_allclose(p.x_test.double().numpy(), (features[rest] - mean) / std,
                               atol=1e-4, rtol=1e-6)
    varying = train.std(0) > 0
    assert np.allclose(p.x.numpy()[:, varying].std(0), 1, atol=1e-5)


def test_the_loss_is_the_mean_over_samples_of_half_the_squared_error():
    out, y = torch.tensor([[1.0, 0.0], [0.0, 3.0]]), torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    assert float(realdata.loss_fn(out, y)) == pytest.approx((1 + 4) / 2 / 2)


def test_tuning_picks_the_lowest_median_validation_loss(monkeypatch):
    monkeypatch.setattr(realdata, "VAL_SEEDS", (1000, 1001, 1002))
    grid = (1e-3, 0.3)
    got = realdata.tune("breast_cancer", "sgd", 5, grid)
    # reference: the medians computed here, run by run
    medians = {}
    for lr in grid:
        finals = [realdata.run(realdata.make_problem("breast_cancer", s),
                               lambda p, lr=lr: torch.optim.SGD(p, lr=lr), 5)["final"]
                  for s in (1000, 1001, 1002)]
        medians[lr] = float(np.median(finals))
    assert got["medians"] == pytest.approx(medians)
    assert got["lr"] == min(grid, key=medians.get) and got["at_edge"]


def test_a_diverging_step_size_is_counted_not_raised(monkeypatch):
    out = realdata.run(realdata.make_problem("breast_cancer", 0),
                       lambda p: torch.optim.SGD(p, lr=1e6), 20)
    assert out["diverged"] and math.isinf(out["final"]) and 0 <= out["accuracy"] <= 1
    monkeypatch.setattr(realdata, "VAL_SEEDS", (1000, 1001))
    monkeypatch.setattr(realdata, "GRIDS", {"sgd": (1e-2, 1e6), "adam": (1e-2,)})
    hand = realdata.hand_results("breast_cancer", problems=2, n_steps=10)
    assert hand["sgd"]["tuning"]["lr"] == 1e-2 and hand["sgd"]["tuning"]["medians"][1e6] == \
        math.inf


def test_a_shipped_checkpoint_scores_with_finite_accuracies(monkeypatch):
    monkeypatch.setattr(realdata, "VAL_SEEDS", (1000,))
    monkeypatch.setattr(realdata, "GRIDS", {"sgd": (1e-1,), "adam": (1e-2,)})
    hand = realdata.score_real(None, "breast_cancer", problems=2, n_steps=5)
    assert "learned" not in hand and hand["lr"] == {"sgd": 0.1, "adam": 0.01}
    for ckpt in ("update.pt", "paper_update_tele.pt"):
        out = realdata.score_real(REPO / "checkpoints" / ckpt, "breast_cancer", problems=2,
                                  n_steps=5, hand={k: hand[k] for k in ("sgd", "adam")})
        learned = out["learned"]
        assert learned["teleport"] == (ckpt != "update.pt")
        assert len(learned["accuracy"]) == 2 and learned["diverged"] == 0
        assert all(0 <= a <= 1 for a in learned["accuracy"])
        assert all(math.isfinite(v) for v in learned["final"] + learned["held_out_loss"])
    assert "| sgd | 0.1 |" in realdata.real_table([out])


def test_validation_scores_read_validation_problems_only(monkeypatch):
    """score_validation runs the checkpoint and the hand optimizers tuned there on VAL_SEEDS
    (problems no test score uses), and validation_gap is the learned mean accuracy minus the
    better hand's."""
    monkeypatch.setattr(realdata, "VAL_SEEDS", (1000, 1001))
    monkeypatch.setattr(realdata, "GRIDS", {"sgd": (1e-1, 1e6), "adam": (1e-2,)})
    ckpt = REPO / "checkpoints" / "general_update_tele.pt"
    out = realdata.score_validation(ckpt, "breast_cancer", n_steps=5)
    assert out["seeds"] == [1000, 1001] and out["learned"]["teleport"]
    assert out["sgd"]["lr"] == 0.1 and out["adam"]["lr"] == 0.01  # 1e6 diverges: not chosen
    for kind in ("sgd", "adam", "learned"):
        assert len(out[kind]["accuracy"]) == 2 and all(0 <= a <= 1 for a in out[kind]["accuracy"])
    want = realdata.run(realdata.make_problem("breast_cancer", 1001),
                        realdata.as_scored(load_optimizer(ckpt)[0]), 5, True)["accuracy"]
    assert out["learned"]["accuracy"][1] == want
    out["sgd"]["accuracy"], out["adam"]["accuracy"] = [0.5, 0.7], [0.8, 0.9]
    out["learned"]["accuracy"] = [0.8, 0.8]
    assert realdata.validation_gap(out) == pytest.approx(0.8 - 0.85)
    with pytest.raises(ValueError, match="unknown real set"):
        realdata.score_validation(ckpt, "iris")


def test_the_guard_counts_its_refusals():
    # a guard of factor 1 refuses every step that raises the loss: the count reaches the result
    from metateleport.torch_optim import LearnedTorchOptimizer

    out = realdata.run(realdata.make_problem("breast_cancer", 0),
                       lambda p: LearnedTorchOptimizer(p, REPO / "checkpoints" / "update.pt",
                                                       guard=1.0), 5)
    assert isinstance(out["refused"], int) and 0 <= out["refused"] <= 5


def test_a_trace_leaves_the_trajectory_alone():
    from metateleport.torch_optim import LearnedTorchOptimizer

    ckpt = REPO / "checkpoints" / "general_update_tele.pt"
    runs = [realdata.run(realdata.make_problem("digits", 2),
                         lambda p: LearnedTorchOptimizer(p, ckpt, fused=False), 12, True, trace)
            for trace in (False, True)]
    plain, traced = runs
    assert {k: traced[k] for k in plain} == plain
    assert len(traced["trace"]["loss"]) == len(traced["trace"]["accuracy"]) == 13
    assert traced["trace"]["moved"][0] == 0 and traced["trace"]["moved"][-1] > 0
    assert traced["trace"]["loss"][-1] == traced["final"]
    assert traced["trace"]["accuracy"][-1] == traced["accuracy"]
    assert traced["trace"]["loss"][-1] < 0.5 * traced["trace"]["loss"][0]


def test_on_step_sees_each_step_before_its_teleport():
    """run's on_step: once per step, with the parameters before that step; SGD's move is then
    exactly -lr times the .grad it sees; a teleporting optimizer's hook sees the step alone
    (the next call's parameters are the teleported ones), and the trajectory is unchanged."""
    from metateleport.torch_optim import LearnedTorchOptimizer

    problem = realdata.make_problem("digits", 2)
    params = list(problem.model.parameters())
    seen = []

    def sgd_hook(before, after, grad):
        assert torch.equal(after, torch.cat([p.detach().reshape(-1) for p in params]).double())
        assert torch.equal(grad, torch.cat([p.grad.reshape(-1) for p in params]).double())
        seen.append(float((after - before + 0.5 * grad).abs().max()))

    realdata.run(problem, lambda p: torch.optim.SGD(p, lr=0.5), 7, on_step=sgd_hook)
    assert len(seen) == 7 and max(seen) < 1e-6
    ckpt = REPO / "checkpoints" / "general_update_tele.pt"
    befores, afters = [], []

    def tele_hook(before, after, grad):
        befores.append(before)
        afters.append(after)

    make = lambda p: LearnedTorchOptimizer(p, ckpt, fused=False)  # noqa: E731
    plain = realdata.run(realdata.make_problem("digits", 3), make, 6, True)
    problem = realdata.make_problem("digits", 3)
    hooked = realdata.run(problem, make, 6, True, on_step=tele_hook)
    assert hooked == plain and len(befores) == 6
    assert any(not torch.equal(a.double(), b) for a, b in zip(afters, befores[1:])), (
        "the teleport after a step moves the parameters the next step starts from")


def test_first_reaching():
    from metateleport.studies.equal_loss import first_reaching

    assert first_reaching([3.0, 2.0, 2.0, 1.0], 2.0) == 1
    assert first_reaching([3.0, 2.0, 1.0], 0.5) is None
    assert first_reaching([3.0, 2.0, 1.0], 5.0) == 0


def test_equal_loss_pairs_each_problem_at_its_crossing(tmp_path, monkeypatch):
    from metateleport.studies import equal_loss

    steps = equal_loss.N_STEPS
    # problem 0: the learned run's loss falls as 1 / (1 + t), problem 1 stays at 1
    learned = [[1 / (1 + t) for t in range(steps + 1)], [1.0] * (steps + 1)]
    acc = [[t / 1000 for t in range(steps + 1)]] * 2

    def fake(name, seed, make_opt, n_steps, teleport):
        return {"final": learned[seed][-1], "accuracy": acc[seed][-1], "diverged": False,
                "trace": {"loss": learned[seed], "accuracy": acc[seed],
                          "moved": [0.5] * (steps + 1)}}

    monkeypatch.setattr(equal_loss, "_traced", fake)
    long = 300
    # the hand optimizer: loss 1 - t / 1000 on both problems (0.9 at step 100; problem 0's
    # learned loss 1/101 is reached at step 991: never within 300 steps, problem 1's 1.0 at 0)
    hand_loss = np.array([[1 - t / 1000 for t in range(long + 1)]] * 2)
    hand_acc = np.array([[0.5 + t / 10000 for t in range(long + 1)]] * 2)
    hand = {k: {"lr": 0.1, "loss": hand_loss, "accuracy": hand_acc, "moved": [1.0, 1.0],
                "moved100": [0.2, 0.2]} for k in ("sgd", "adam")}
    out = equal_loss.score_run(REPO / "checkpoints" / "update.pt", "digits", hand)
    sgd = out["sgd"]
    assert sgd["at_learned_loss"]["step"] == [None, 0] and sgd["reached"] == 1
    assert sgd["at_learned_loss"]["accuracy"] == [0.5 + long / 10000, 0.5]
    # the learned run's loss is first <= 0.9 at t = 1 (1/2) on problem 0, never on problem 1
    assert sgd["stopped_at_hand_loss"]["step"] == [1, None] and sgd["stopped"] == 1
    assert sgd["stopped_at_hand_loss"]["accuracy"] == [acc[0][1], acc[1][steps]]
    assert sgd["hand100"]["accuracy"] == [0.51, 0.51]
    folder = tmp_path / equal_loss.FOLDER
    folder.mkdir(parents=True)
    (folder / "update-s0-digits.json").write_text(json.dumps(out))
    (folder / "hand-digits.json").write_text(json.dumps(
        {"problems": 2, **equal_loss._hand_path(hand)}))
    text = equal_loss.table(tmp_path, {"update": "LSTM(update)"})
    assert "| sgd | 0.1 | 100 | 0.9 | 0.510 |" in text
    row = next(r for r in text.splitlines() if r.startswith("| LSTM(update) |")).split(" | ")
    # at step 100: 0.1 - 0.51 on both problems; at the learned loss: 0.1 - 0.53 and 0.1 - 0.5
    assert row[9] == "-0.410 [-0.410, -0.410]" and row[11] == "-0.415 [-0.430, -0.400]"
    assert row[10] == "0 (1/2)" and row[12] == "1 (1/2)"
    # a second arm, 0.2 more accurate on seed 0, is paired with the last one (update)
    better = [a + 0.2 for a in out["learned"]["accuracy"]]
    other = {**out, "seed": 0, "learned": {**out["learned"], "accuracy": better}}
    (folder / "update_balance-s0-digits.json").write_text(json.dumps(other))
    (folder / "update-s0-digits.json").write_text(json.dumps({**out, "seed": 0}))
    text = equal_loss.table(tmp_path, {"update_balance": "balance", "update": "LSTM(update)"})
    assert text.rstrip().endswith("| balance | 1 | +0.200 [+0.200, +0.200] |")


def test_the_committed_equal_loss_table_regenerates_from_its_summaries():
    from metateleport.studies import equal_loss, general

    committed = (REPO / "studies" / equal_loss.FOLDER / "table.md").read_text()
    labels = {arm: general.ARMS[arm][2] for arm in equal_loss.ARMS}
    assert committed.endswith(equal_loss.table(REPO / "studies", labels)), (
        "python scripts/real_equal_loss.py table rewrites studies/general/equal_loss/table.md")
