"""The real-data task family: scikit-learn's digits (tasks.DigitsTaskFamily)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from metateleport.baselines import Adam
from metateleport.config import ConfigError, config_from_dict
from metateleport.inner import run
from metateleport.mlp import mlp_loss
from metateleport.symmetry import input_pinv
from metateleport.tasks import DigitsTaskFamily, Split, held_out_metrics, make_family
from metateleport.teleport import random_teleport

pytest.importorskip("sklearn")  # the [digits] extra; the [dev] extra, which CI installs, has it

TASK = {"dataset": "digits", "widths": [64, 32, 10], "n_samples": 40, "init": "torch",
        "bias": True}


@pytest.fixture(scope="module")
def fam():
    return make_family(TASK)


def image_ids(fam, X):
    """Indices into the data set of the images (columns) of X (d_0, n)."""
    table = {row.tobytes(): i for i, row in enumerate(fam._images.astype(np.float32))}
    return {table[col.tobytes()] for col in X.T.numpy().astype(np.float32)}


def test_pools_are_disjoint_and_problems_draw_from_their_own(fam):
    train, test = set(fam._pools[Split.TRAIN]), set(fam._pools[Split.TEST])
    held = set(fam._held_out_idx)
    assert set(fam._pools[Split.VAL]) == train
    assert not (train & test) and not (train & held) and not (test & held)
    assert len(train) + len(test) + len(held) == 1797
    for split, pool in (("train", train), ("val", train), ("test", test)):
        p = fam.sample(4, 0, split)
        for b in range(4):
            ids = image_ids(fam, p.X[b])
            assert len(ids) == 40 and ids <= pool
        held_b = image_ids(fam, p.X_test[b])
        if split == "test":  # the evaluation's held-out images
            assert held_b == held
        else:  # n other images of the meta-training pool, never the evaluation's
            assert len(held_b) == 40 and held_b <= pool and not held_b & ids
    p = fam.sample(2, 0, "test")
    labels = p.Y.argmax(dim=1)
    assert torch.equal(p.Y.sum(dim=1), torch.ones(2, 40))  # one-hot
    assert labels.unique().numel() > 5


def test_shapes_seeds_and_prefix(fam):
    p = fam.sample(3, 7, "train")
    assert p.X.shape == (3, 64, 40) and p.Y.shape == (3, 10, 40)
    assert [w.shape for w in p.weights] == [(3, 32, 65), (3, 10, 33)]
    assert float(p.X.min()) >= 0 and float(p.X.max()) <= 1
    bound = 1 / 64 ** 0.5  # nn.Linear's default init
    assert float(p.weights[0].abs().max()) <= bound
    q = fam.sample(5, 7, "train")
    assert torch.equal(p.X, q.X[:3]) and torch.equal(p.weights[0], q.weights[0][:3])
    assert not torch.equal(p.X, fam.sample(3, 8, "train").X)


def test_teleport_is_exact_on_every_subset(fam):
    p = fam.sample(64, 0, "test")
    torch.manual_seed(0)
    moved = random_teleport(p.weights, p.X, 1.0, x_pinv=input_pinv(p.X, p.weights[0]))
    before = mlp_loss(p.weights, p.X, p.Y)
    assert ((mlp_loss(moved, p.X, p.Y) - before).abs() / before).max() < 1e-5
    # off the training subset the teleport moves the loss: it can change generalization
    assert not torch.allclose(held_out_metrics(moved, p)["loss"],
                              held_out_metrics(p.weights, p)["loss"])


def test_training_generalizes(fam):
    p = fam.sample(16, 0, "test")
    start = held_out_metrics(p.weights, p)
    traj = run(Adam(1e-2), p, 100)
    end = held_out_metrics(traj.weights, p)
    assert float(traj.losses[-1].median()) < 0.05 * float(traj.losses[0].median())
    assert float(start["accuracy"].median()) < 0.3 < 0.6 < float(end["accuracy"].median())
    assert float(end["loss"].median()) < float(start["loss"].median())


def test_held_out_metrics_need_held_out_samples():
    p = make_family({"widths": [5, 4, 3], "n_samples": 5}).sample(1, 0)
    with pytest.raises(ValueError, match="no held-out samples"):
        held_out_metrics(p.weights, p)


@pytest.mark.parametrize("key, value, match", [
    ("widths", [64, 32, 8], r"task.widths: the digits family needs \[64, ..., 10\]"),
    ("n_samples", 49, "task.n_samples: 49 > 48"),
    ("cond", 100.0, "task.cond: does not apply"),
    ("dataset", "mnist", "task.dataset: 'mnist' is not one of"),
])
def test_config_errors_name_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"task": {**TASK, key: value}})


def test_family_errors():
    with pytest.raises(ValueError, match="unknown task family"):
        make_family({**TASK, "dataset": "mnist"})
    with pytest.raises(ValueError, match="rank-deficient"):
        DigitsTaskFamily(n_samples=60)


def test_missing_scikit_learn_is_a_clear_error(monkeypatch):
    from metateleport.digits import digits_pools

    digits_pools.cache_clear()  # the images are loaded once per process
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"needs scikit-learn.*\[digits\]"):
        make_family(TASK)


def test_evaluation_reports_generalization(fam, tmp_path):
    from metateleport.evaluation import evaluate, markdown_table, write_report
    from metateleport.optimizers import GD

    p = fam.sample(8, 0, "test")
    result = evaluate({"gd": GD(0.01), "adam": Adam(1e-2)}, p, 20, n_boot=200)
    for name in ("gd", "adam"):
        held = result.summary[name]["held_out"]
        assert 0 <= held["accuracy"]["median_ci"][0] <= held["accuracy"]["median"] <= 1
        assert held["loss"]["mean"] > 0
    # the same numbers as held_out_metrics of the runs' final weights
    final = held_out_metrics(run(GD(0.01), p, 20).weights, p)
    assert result.summary["gd"]["held_out"]["accuracy"]["mean"] == pytest.approx(
        float(final["accuracy"].mean()))
    text = markdown_table(result)
    assert "held-out accuracy" in text
    paths = write_report(result, tmp_path, tmp_path / "tb")
    assert '"held_out"' in paths["json"].read_text()


def test_held_out_meta_loss(fam):
    from metateleport.config import load_config
    from metateleport.learned import LearnedOptimizer
    from metateleport.unroll import MetaTrainer, unroll_window

    p = fam.sample(2, 0, "train")
    opt = LearnedOptimizer("update")
    state = opt.init_state(p)
    held, weights, _, _ = unroll_window(opt, p.weights, state, p, None, 0, 3, on="held_out")
    train, weights2, _, _ = unroll_window(opt, p.weights, state, p, None, 0, 3)
    assert held.shape == train.shape == (3, 2)
    torch.testing.assert_close(held[-1], mlp_loss(weights, p.X_test, p.Y_test))
    torch.testing.assert_close(train[-1], mlp_loss(weights2, p.X, p.Y))
    assert held.requires_grad  # the meta-gradient flows through the held-out loss
    synthetic = make_family({"widths": [5, 4, 3], "n_samples": 5}).sample(1, 0)
    with pytest.raises(ValueError, match="held-out samples"):
        unroll_window(opt, synthetic.weights, opt.init_state(synthetic), synthetic, None, 0, 2,
                      on="held_out")
    with pytest.raises(ConfigError, match="train.meta_loss_on: held_out needs"):
        config_from_dict({"train": {"meta_loss_on": "held_out"}})
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "digits_update.yaml",
                      ["train.meta_loss_on=held_out", "train.trajectories=8", "train.n_steps=10",
                       "train.val_problems=2"])
    trainer = MetaTrainer(cfg)
    before = [q.detach().clone() for q in trainer.opt.parameters()]
    stats = trainer.window()
    assert stats["skipped"] == 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.opt.parameters()))


def test_example_runs_in_an_ordinary_loop(tmp_path):
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(repo / "examples" / "digits.py"), "--seeds", "2",
                          "--steps", "5", "--out", str(tmp_path)], cwd=repo, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ("SGD", "Adam", "LSTM(update)", "LSTM(update,tele)",
                 "LSTM(update,tele), held-out meta-loss"):
        assert f"| {name} |" in out.stdout
    assert (tmp_path / "digits.png").stat().st_size > 1000
    assert len(list((tmp_path / "tb").glob("*/events.out.tfevents.*"))) == 5
    bad = subprocess.run([sys.executable, str(repo / "examples" / "digits.py"), "--images", "70",
                          "--out", str(tmp_path / "x")], cwd=repo, capture_output=True, text=True)
    assert bad.returncode == 2 and "--images" in bad.stderr


@pytest.mark.parametrize("name, config, overrides", [
    ("digits_update", "digits_update", []),
    ("digits_update_tele", "digits_update_tele", []),
    ("digits_update_held_out", "digits_update", ["train.meta_loss_on=held_out"]),
    ("digits_update_tele_held_out", "digits_update_tele", ["train.meta_loss_on=held_out"])])
def test_shipped_digits_checkpoints_match_their_configs(name, config, overrides):
    from metateleport.checkpoint import load_optimizer
    from metateleport.config import load_config

    repo = Path(__file__).resolve().parents[1]
    opt, meta = load_optimizer(repo / "checkpoints" / f"{name}.pt")
    shipped = load_config(repo / "configs" / f"{config}.yaml",
                          [*overrides, f"train.seed={meta['config']['train']['seed']}",
                           "train.threads=1"])
    assert config_from_dict(meta["config"]) == shipped
    assert config_from_dict(meta["config"]) == load_config(repo / "checkpoints" / f"{name}.yaml")
    p = make_family(meta["task"]).sample(4, 0, "test")
    losses = run(opt, p, 30).losses
    assert torch.isfinite(losses).all() and (losses[-1] < 0.5 * losses[0]).all()
