import subprocess
import sys
from pathlib import Path

import pytest
import torch

from metateleport.checkpoint import (
    CheckpointError,
    latest_full,
    load_checkpoint,
    load_optimizer,
    save_atomic,
)
from metateleport.config import ConfigError, config_from_dict
from metateleport.inner import run
from metateleport.training import RunError, train_run

REPO = Path(__file__).resolve().parents[1]


def tiny(variant="update_tele", **train):
    base = {"batch_size": 2, "n_steps": 4, "unroll": 2, "trajectories": 6, "val_problems": 4,
            "val_every": 2, "ckpt_every": 1, "keep_checkpoints": 2}
    return config_from_dict({"model": {"variant": variant}, "train": {**base, **train}})


def snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("variant", ["update_tele", "lr_tele", "update_random_tele"])
def test_resume_is_bit_identical(tmp_path, variant):
    whole = train_run(tiny(variant), tmp_path / "whole", progress=False)
    assert whole.done and whole.meta_step == 6
    part = train_run(tiny(variant), tmp_path / "split", progress=False, max_meta_steps=3)
    assert not part.done and not (tmp_path / "split" / "params.pt").exists()
    assert part.carry is not None and part.carry["t"] == 2  # stopped mid-trajectory
    resumed = train_run(tiny(variant), tmp_path / "split", resume=True, progress=False)
    assert resumed.done
    a = torch.load(tmp_path / "whole" / "params.pt")["state_dict"]
    b = torch.load(tmp_path / "split" / "params.pt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_folder_layout_and_pruning(tmp_path):
    train_run(tiny(), tmp_path / "r", progress=False)
    run_dir = tmp_path / "r"
    assert (run_dir / "config.yaml").is_file() and any((run_dir / "tb").iterdir())
    from metateleport.config import load_config

    assert load_config(run_dir / "config.yaml") == tiny()  # the run can be rerun from it
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert kept == ["full_00000005.pt", "full_00000006.pt"]
    full = load_checkpoint(latest_full(run_dir), "full", variant="update_tele")
    assert full["meta_step"] == 6 and full["config"]["train"]["batch_size"] == 2


def test_params_export_roundtrip(tmp_path):
    trainer = train_run(tiny("lr_tele"), tmp_path / "r", progress=False)
    opt, meta = load_optimizer(tmp_path / "r" / "params.pt")
    assert meta["variant"] == "lr_tele" and meta["meta_step"] == 6
    assert meta["task"]["widths"] == [20, 20, 20]
    assert config_from_dict(meta["config"]) == tiny("lr_tele")
    p = trainer.val_problems
    torch.testing.assert_close(run(opt, p, 4).losses, run(trainer.opt, p, 4).losses)


def test_smaller_lstms_train_and_round_trip(tmp_path):
    """model.hidden_size and model.num_layers size m1's and m2's LSTMs (the frontier study's
    arms): the saved parameters load into the same shapes and step the same."""
    cfg = config_from_dict({"model": {"variant": "update_tele", "hidden_size": 4,
                                      "num_layers": 1},
                            "train": {"batch_size": 2, "n_steps": 4, "unroll": 2,
                                      "trajectories": 4, "val_problems": 2, "val_every": 2}})
    trainer = train_run(cfg, tmp_path / "r", progress=False)
    opt, meta = load_optimizer(tmp_path / "r" / "params.pt")
    for net in (opt.update_net, opt.group_net):
        assert (net.lstm.lstm.num_layers, net.lstm.lstm.hidden_size) == (1, 4)
    assert meta["model"]["num_layers"] == 1
    p = trainer.val_problems
    torch.testing.assert_close(run(opt, p, 4).losses, run(trainer.opt, p, 4).losses)
    with pytest.raises(ConfigError, match="model.num_layers"):
        config_from_dict({"model": {"num_layers": 0}})


def test_refuses_to_overwrite_existing_run(tmp_path):
    train_run(tiny(), tmp_path / "r", progress=False)
    before = snapshot(tmp_path / "r")
    with pytest.raises(RunError, match="already exists and is not empty"):
        train_run(tiny(), tmp_path / "r", progress=False)
    assert snapshot(tmp_path / "r") == before


def test_resume_errors_leave_everything_in_place(tmp_path):
    with pytest.raises(RunError, match="there is no run folder"):
        train_run(tiny(), tmp_path / "empty", resume=True, progress=False)
    train_run(tiny(), tmp_path / "r", progress=False, max_meta_steps=3)
    with pytest.raises(CheckpointError, match="holds variant 'update_tele'.*asks for 'update'"):
        train_run(tiny("update"), tmp_path / "r", resume=True, progress=False)
    with pytest.raises(ConfigError, match="train.batch_size: run has 2, given 4"):
        train_run(tiny(batch_size=4), tmp_path / "r", resume=True, progress=False)
    newest = latest_full(tmp_path / "r")
    newest.write_bytes(newest.read_bytes()[:1000])  # a truncated file
    before = snapshot(tmp_path / "r")
    with pytest.raises(CheckpointError, match=f"{newest.name} is truncated or corrupt"):
        train_run(tiny(), tmp_path / "r", resume=True, progress=False)
    assert snapshot(tmp_path / "r") == before


def test_checkpoint_kind_and_version_errors(tmp_path):
    train_run(tiny(), tmp_path / "r", progress=False)
    with pytest.raises(CheckpointError, match="is a full checkpoint, expected params"):
        load_optimizer(latest_full(tmp_path / "r"))
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_optimizer(tmp_path / "missing.pt")
    data = torch.load(tmp_path / "r" / "params.pt")
    save_atomic({**data, "format_version": 99}, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_optimizer(tmp_path / "v99.pt")
    save_atomic({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a metateleport checkpoint"):
        load_optimizer(tmp_path / "foreign.pt")
    bad = dict(data, state_dict={k: v[:1] for k, v in data["state_dict"].items()})
    save_atomic(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not fit the stored model"):
        load_optimizer(tmp_path / "bad.pt")


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_atomic({"a": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"a": 2}, path)
    monkeypatch.undo()
    assert torch.load(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "train_meta.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_config_errors_stop_before_any_work(tmp_path):
    out = tmp_path / "run"
    r = cli("--config", "configs/quick.yaml", "--set", "train.batch_sise=4", "--out", str(out))
    assert r.returncode == 2 and "train.batch_sise: unknown key" in r.stderr
    r = cli("--config", "configs/quick.yaml", "--set", "train.unroll=0", "--out", str(out))
    assert r.returncode == 2 and "train.unroll: 0 is out of range" in r.stderr
    r = cli("--config", str(tmp_path / "nope.yaml"), "--out", str(out))
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert not out.exists()


def test_cli_trains_refuses_overwrite_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["--config", "configs/quick.yaml", "--set", "train.trajectories=16", "--set",
            "train.n_steps=20", "--set", "train.val_problems=4", "--out", str(out), "--no-progress"]
    r = cli(*args, "--max-meta-steps", "2")
    assert r.returncode == 0 and "continue with --resume" in r.stdout
    r = cli(*args)
    assert r.returncode == 2 and "already exists" in r.stderr
    r = cli(*args, "--resume")
    assert r.returncode == 0 and (out / "params.pt").is_file(), r.stderr
    assert "tensorboard --logdir" in r.stdout


def test_best_validation_iterate_is_kept_and_survives_a_resume(tmp_path):
    from metateleport.trainer import validation_score

    cfg = tiny(trajectories=12, val_every=1)
    whole = train_run(cfg, tmp_path / "whole", progress=False)
    best = load_checkpoint(tmp_path / "whole" / "best_params.pt", "params")
    assert best["meta_step"] == whole.best["meta_step"] and 1 <= best["meta_step"] <= 12
    assert best["validation_score"] == whole.best["score"]
    opt, _ = load_optimizer(tmp_path / "whole" / "best_params.pt")
    # the kept iterate scores what was recorded for it, and no later one scored better
    assert validation_score(run(opt, whole.val_problems, 4).losses) == pytest.approx(
        best["validation_score"], rel=1e-6)
    part = train_run(cfg, tmp_path / "split", progress=False, max_meta_steps=5)
    resumed = train_run(cfg, tmp_path / "split", resume=True, progress=False)
    assert resumed.best["meta_step"] == whole.best["meta_step"]
    assert part.best is not None
    assert (tmp_path / "split" / "best_params.pt").read_bytes() == (
        tmp_path / "whole" / "best_params.pt").read_bytes()
    assert validation_score(torch.tensor([[1.0], [float("inf")]])) == float("inf")
