"""Faults and bad input: safe loading, diverged runs, one run per folder, resumable
folders, interrupts, one-line errors before work, step sizes searched for any family."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from metateleport.checkpoint import CheckpointError, latest_full, load_checkpoint, save_atomic
from metateleport.config import ConfigError, config_from_dict, load_config
from metateleport.evaluation import baselines
from metateleport.inner import run
from metateleport.tasks import MLPTaskFamily
from metateleport.training import DivergedError, RunError, train_run

REPO = Path(__file__).resolve().parents[1]


def tiny(**train):
    base = {"batch_size": 2, "n_steps": 4, "unroll": 2, "trajectories": 6, "val_problems": 2,
            "val_every": 0, "ckpt_every": 1}
    return config_from_dict({"task": {"widths": [4, 4, 4], "n_samples": 4},
                             "model": {"variant": "update_tele", "hidden_size": 4},
                             "train": {**base, **train}})


def write_config(path: Path, **train) -> Path:
    cfg = tiny(**train)
    path.write_text(yaml.safe_dump({"task": {"widths": cfg.task.widths, "n_samples": 4},
                                    "model": {"variant": "update_tele", "hidden_size": 4},
                                    "train": {k: v for k, v in vars(cfg.train).items()}}))
    return path


def cli(script, *args, cwd=REPO, **kw):
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, **kw)


def start(script, *args, sighup=signal.SIG_DFL):
    """The command in a child process whose SIGHUP disposition is ``sighup`` (default: as in a
    terminal, whatever the test runner's own is; SIG_IGN: as under nohup)."""
    return subprocess.Popen([sys.executable, str(REPO / script), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, sighup))


def wait_for(predicate, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def params_of(path: Path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def same_params(a: Path, b: Path) -> bool:
    x, y = params_of(a), params_of(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def assert_resume_gives_the_uninterrupted_parameters(cfg: Path, out: Path, whole: Path):
    """``train_meta.py --resume`` on the stopped run ``out`` ends with the parameters of an
    uninterrupted run of ``cfg`` (trained into ``whole``)."""
    r = cli("train_meta.py", "--config", str(cfg), "--out", str(out), "--resume",
            "--no-progress")
    assert r.returncode == 0, r.stderr
    train_run(load_config(cfg), whole, progress=False)
    assert same_params(out / "params.pt", whole / "params.pt")


class _Payload:
    """Unpickling this calls Path.touch on the marker: what a malicious checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    train_run(tiny(), out, progress=False)
    return out


# 1. code execution from a checkpoint


def test_checkpoint_with_a_pickled_payload_is_refused_and_never_run(tmp_path, finished):
    marker = tmp_path / "pwned"
    data = torch.load(finished / "params.pt", weights_only=True)
    torch.save({**data, "extra": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        load_checkpoint(tmp_path / "evil.pt", "params")
    r = cli("eval_meta.py", "--checkpoint", str(tmp_path / "evil.pt"), "--out",
            str(tmp_path / "eval"), "--num-inits", "2", "--steps", "2", "--no-tune")
    assert r.returncode == 2 and "objects other than tensors" in r.stderr
    # --resume: the same payload inside the newest full checkpoint
    run_dir = tmp_path / "run"
    train_run(tiny(), run_dir, progress=False, max_meta_steps=2)
    ckpt = latest_full(run_dir)
    full = torch.load(ckpt, weights_only=True)
    torch.save({**full, "extra": _Payload(marker)}, ckpt)
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        train_run(tiny(), run_dir, resume=True, progress=False)
    assert not marker.exists() and not (tmp_path / "eval").exists()


# 2. a diverged run is never reported as success


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf", "nan"])
def test_non_finite_config_values_are_refused_before_work(tmp_path, value):
    r = cli("train_meta.py", "--config", "configs/quick.yaml", "--set",
            f"train.meta_lr={value}", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "train.meta_lr" in r.stderr and "not a finite number" in r.stderr
    assert not (tmp_path / "r").exists()


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  meta_lr: 3e-3\nmodel:\n  update_scale: 1e-1\n")
    cfg = load_config(path)
    assert cfg.train.meta_lr == 0.003 and cfg.model.update_scale == 0.1
    path.write_text("train:\n  meta_lr: fast\n")
    with pytest.raises(ConfigError, match="train.meta_lr: expected float, got str 'fast'"):
        load_config(path)


def test_diverging_run_stops_non_zero_and_writes_nothing_non_finite(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(DivergedError, match=r"the run diverged: \d+ of \d+ windows"):
        train_run(tiny(meta_lr=1e8, trajectories=40, ckpt_every=3), out, progress=False)
    assert not (out / "params.pt").exists()
    for ckpt in (out / "checkpoints").glob("full_*.pt"):
        load_checkpoint(ckpt, "full")  # finite, else it raises
    cfg = write_config(tmp_path / "c.yaml", meta_lr=1e8, trajectories=40, ckpt_every=3)
    r = cli("train_meta.py", "--config", str(cfg), "--out", str(tmp_path / "cli"),
            "--no-progress")
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("error: the run diverged")


def test_non_finite_checkpoints_are_refused_by_name(tmp_path, finished):
    data = torch.load(finished / "params.pt", weights_only=True)
    name = next(iter(data["state_dict"]))
    data["state_dict"][name] = torch.full_like(data["state_dict"][name], float("nan"))
    save_atomic(data, tmp_path / "nan.pt")
    r = cli("eval_meta.py", "--checkpoint", str(tmp_path / "nan.pt"), "--out",
            str(tmp_path / "eval"), "--num-inits", "2", "--steps", "2", "--no-tune")
    assert r.returncode == 2 and "non-finite meta-parameters" in r.stderr and name in r.stderr
    run_dir = tmp_path / "run"
    train_run(tiny(), run_dir, progress=False, max_meta_steps=2)
    ckpt = latest_full(run_dir)
    full = torch.load(ckpt, weights_only=True)
    full["trainer"]["opt"][name] = full["trainer"]["opt"][name] * float("inf")
    save_atomic(full, ckpt)
    with pytest.raises(CheckpointError, match=f"{ckpt.name} holds non-finite.*{name}"):
        train_run(tiny(), run_dir, resume=True, progress=False)


# 3.-5. one run per folder, resumable folders, interrupts


@pytest.fixture
def long_config(tmp_path) -> Path:
    return write_config(tmp_path / "long.yaml", trajectories=100000, ckpt_every=20)


def test_second_process_on_a_run_folder_is_refused_naming_the_holder(tmp_path, long_config):
    out = tmp_path / "r"
    holder = start("train_meta.py", "--config", str(long_config), "--out", str(out),
                   "--no-progress")
    try:
        wait_for(lambda: latest_full(out) is not None)
        before = sorted(p.name for p in (out / "tb").iterdir())
        for extra in ([], ["--resume"]):
            r = cli("train_meta.py", "--config", str(long_config), "--out", str(out), *extra)
            assert r.returncode == 2, r.stderr
            assert f"in use by process {holder.pid}" in r.stderr or "already exists" in r.stderr
        assert f"in use by process {holder.pid}" in r.stderr  # the --resume attempt
        assert sorted(p.name for p in (out / "tb").iterdir()) == before  # one event file
    finally:
        holder.kill()
        holder.wait()
    # the killed holder's lock is stale: taken over
    r = cli("train_meta.py", "--config", str(long_config), "--out", str(out), "--resume",
            "--max-meta-steps", str(int(latest_full(out).stem.split("_")[1]) + 2),
            "--no-progress")
    assert r.returncode == 0, r.stderr
    assert (out / ".lock").read_text().strip() != str(holder.pid)


def test_folder_killed_before_its_first_checkpoint_resumes_from_the_start(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", trajectories=20000, ckpt_every=100000)
    out = tmp_path / "r"
    victim = start("train_meta.py", "--config", str(cfg), "--out", str(out), "--no-progress")
    wait_for(lambda: (out / "tb").is_dir() and any((out / "tb").iterdir()))
    time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert latest_full(out) is None
    r = cli("train_meta.py", "--config", str(cfg), "--out", str(out), "--no-progress")
    assert r.returncode == 2 and "pass --resume to start it again" in r.stderr
    small = write_config(tmp_path / "small.yaml", trajectories=20000, ckpt_every=100000)
    r = cli("train_meta.py", "--config", str(small), "--out", str(out), "--resume",
            "--set", "train.trajectories=6", "--no-progress")
    assert r.returncode == 0, r.stderr
    whole = tmp_path / "whole"
    train_run(load_config(small, ["train.trajectories=6"]), whole, progress=False)
    assert same_params(out / "params.pt", whole / "params.pt")
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1
    r = cli("train_meta.py", "--config", str(cfg), "--out", str(tmp_path / "z"),
            "--max-meta-steps", "0")
    assert r.returncode == 2 and "--max-meta-steps must be >= 1" in r.stderr
    assert not (tmp_path / "z").exists()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                       (signal.SIGHUP, 129)])
def test_interrupt_checkpoints_at_the_window_boundary_and_resumes_exactly(tmp_path, sig, code):
    cfg = write_config(tmp_path / "c.yaml", trajectories=1200, ckpt_every=50)
    out = tmp_path / "r"
    proc = start("train_meta.py", "--config", str(cfg), "--out", str(out), "--no-progress")
    wait_for(lambda: latest_full(out) is not None)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"{sig.name}: stopped at meta-step" in lines[0]
    step = int(lines[0].split("meta-step ")[1].split()[0])
    assert latest_full(out).name == f"full_{step:08d}.pt"  # saved where it stopped
    assert "--resume" in lines[0] and "continue with: python train_meta.py" in lines[0]
    assert_resume_gives_the_uninterrupted_parameters(cfg, out, tmp_path / "whole")


def test_sighup_under_nohup_does_not_stop_the_run(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", trajectories=100000, ckpt_every=20)
    out = tmp_path / "r"
    proc = start("train_meta.py", "--config", str(cfg), "--out", str(out), "--no-progress",
                 sighup=signal.SIG_IGN)
    try:
        wait_for(lambda: latest_full(out) is not None)
        proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert proc.poll() is None  # still training
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "SIGTERM: stopped at meta-step" in err


def test_sigkill_mid_run_resumes_to_the_uninterrupted_parameters(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", trajectories=400, ckpt_every=7)
    out = tmp_path / "r"
    proc = start("train_meta.py", "--config", str(cfg), "--out", str(out), "--no-progress")
    wait_for(lambda: latest_full(out) is not None and latest_full(out).stem >= "full_00000014")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = int(latest_full(out).stem.split("_")[1])
    assert not (out / "params.pt").exists() and killed_at < 400  # stopped mid-run
    assert_resume_gives_the_uninterrupted_parameters(cfg, out, tmp_path / "whole")


# 6. one-line errors before work, nothing lost


def test_out_that_is_a_file_or_unwritable(tmp_path, finished):
    f = tmp_path / "file"
    f.write_text("keep me")
    r = cli("train_meta.py", "--config", "configs/quick.yaml", "--out", str(f))
    assert r.returncode == 2 and "is a file, not a run folder" in r.stderr
    r = cli("eval_meta.py", "--checkpoint", str(finished / "params.pt"), "--out", str(f))
    assert r.returncode == 2 and "is a file, not a report folder" in r.stderr
    assert f.read_text() == "keep me"
    start_time = time.time()
    r = cli("eval_meta.py", "--checkpoint", str(finished / "params.pt"), "--out",
            str(f / "sub"), "--num-inits", "64")
    assert r.returncode == 2 and "cannot write the report" in r.stderr
    assert time.time() - start_time < 30  # refused before the evaluation, not after it


def test_run_folder_that_becomes_unwritable_mid_run(tmp_path, monkeypatch):
    import metateleport.training as training

    calls = []

    def failing_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise PermissionError(13, "Permission denied")
        return real(*args, **kwargs)

    real = training.save_full
    monkeypatch.setattr(training, "save_full", failing_save)
    with pytest.raises(RunError, match="cannot write to run folder .*Permission denied"):
        train_run(tiny(), tmp_path / "r", progress=False)
    assert latest_full(tmp_path / "r").name == "full_00000001.pt"


def test_bad_inputs_give_one_line_errors(tmp_path, finished):
    binary = tmp_path / "config.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    r = cli("train_meta.py", "--config", str(binary), "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "not a text file" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    r = cli("eval_meta.py", "--checkpoint", str(finished / "params.pt"), "--threshold", "nan",
            "--out", str(tmp_path / "e"))
    assert r.returncode == 2 and "--threshold must be a finite number" in r.stderr
    assert not (tmp_path / "e").exists() and not (tmp_path / "r").exists()


def test_more_bad_inputs_found_by_probing(tmp_path, finished):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [\n")
    r = cli("train_meta.py", "--config", str(bad), "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "not valid YAML" in r.stderr and "line 2" in r.stderr
    r = cli("train_meta.py", "--config", str(tmp_path), "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "is a folder" in r.stderr
    r = cli("train_meta.py", "--config", "configs/quick.yaml", "--set", "train.batch_size=1000",
            "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "train.batch_size: 1000 > train.trajectories" in r.stderr
    # an empty --out (an unset shell variable) must not mean "here"
    r = cli("train_meta.py", "--config", str(REPO / "configs" / "quick.yaml"), "--out", "",
            cwd=tmp_path)
    assert r.returncode == 2 and "--out is empty" in r.stderr
    r = cli("eval_meta.py", "--checkpoint", str(finished / "params.pt"), "--out", "",
            cwd=tmp_path)
    assert r.returncode == 2 and "--out: empty" in r.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "runs").exists()


def test_refused_run_leaves_the_folder_byte_for_byte(tmp_path, finished):
    def snapshot():
        return {p.relative_to(finished): p.read_bytes() for p in finished.rglob("*")
                if p.is_file()}

    before = snapshot()
    for extra in ([], ["--set", "train.trajectories=12"]):
        r = cli("train_meta.py", "--config", str(write_config(tmp_path / "c.yaml")), "--out",
                str(finished), *extra)
        assert r.returncode == 2 and "already exists" in r.stderr
    r = cli("train_meta.py", "--config", str(write_config(tmp_path / "c.yaml", unroll=4)),
            "--out", str(finished), "--resume")
    assert r.returncode == 2 and "differs from the run's" in r.stderr
    assert snapshot() == before


def test_corrupt_tuning_cache_is_searched_again(tmp_path, finished):
    out = tmp_path / "e"
    out.mkdir()
    (out / "tuned_lrs.json").write_text("{not json")
    r = cli("eval_meta.py", "--checkpoint", str(finished / "params.pt"), "--out", str(out),
            "--overwrite", "--num-inits", "2", "--steps", "2", "--baselines", "gd")
    assert r.returncode == 0, r.stderr
    import json

    assert "key" in json.loads((out / "tuned_lrs.json").read_text())


# 7. baselines tuned for any family


def test_step_size_search_widens_for_a_family_that_needs_tiny_steps():
    family = MLPTaskFamily(init_scale=10.0)  # curvature ~100x the paper's: GD needs lr < 1e-5
    val, test = family.sample(8, 0, "val"), family.sample(8, 0, "test")
    opts, info = baselines(val, 30, ["gd"])
    assert info["gd"]["lr"] < 1e-5 and info["gd"]["searched"][0] < 1e-5
    assert not info["gd"]["at_edge"] and info["gd"]["stable"]
    losses = run(opts["gd"], test, 30).losses
    assert torch.isfinite(losses).all() and (losses[-1] < losses[0]).all()


def test_lock_file_is_ignored_by_a_fresh_run_into_an_empty_folder(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / ".lock").write_text(f"{os.getpid() + 100000}\n")  # left by a dead process
    train_run(tiny(), out, progress=False)
    assert (out / "params.pt").is_file()


def test_a_run_resumes_with_recomputation_switched_to_the_uninterrupted_parameters(tmp_path):
    """train.recompute_lstm changes memory, not results: a run stopped without it and resumed
    with it ends where the uninterrupted run does."""
    whole, part = tmp_path / "whole", tmp_path / "part"
    train_run(tiny(), whole, progress=False)
    train_run(tiny(), part, progress=False, max_meta_steps=2)
    train_run(tiny(recompute_lstm=True), part, resume=True, progress=False)
    a = torch.load(whole / "params.pt", weights_only=True)["state_dict"]
    b = torch.load(part / "params.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError, match="train.meta_lr: run has 0.001, given 0.5"):
        train_run(tiny(meta_lr=0.5), part, resume=True, progress=False)
