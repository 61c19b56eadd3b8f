"""Data-parallel meta-training (metateleport/distributed.py) through real launches: torchrun with
2 processes, gloo, 1 thread each, on a tiny float64 config, against the plain single process."""

import glob
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from metateleport.distributed import FAULT_ENV
from metateleport.tasks import MLPTaskFamily, Split
from metateleport.unroll import apply_meta_step

REPO = Path(__file__).resolve().parents[1]

# 12 trajectories of 4 inner steps, 2 windows each: 6 meta-steps at 2 ranks x 2 or 1 x 4.
TINY = {
    "task": {"widths": [6, 6, 6], "n_samples": 6},
    "train": {"batch_size": 2, "n_steps": 4, "unroll": 2, "trajectories": 12, "val_problems": 3,
              "val_every": 2, "ckpt_every": 2, "dtype": "float64"},
}


def child_env(**extra: str) -> dict:
    """This checkout first on the path (the venv's editable install may point elsewhere), one
    thread per rank, and no torchrun or fault variables inherited from the caller."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", FAULT_ENV)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return {**env, **extra}


def launch(cmd: list[str], cwd: Path, timeout: float = 180, **env: str):
    start = time.monotonic()
    r = subprocess.run(cmd, cwd=cwd, env=child_env(**env), capture_output=True, text=True,
                       timeout=timeout)
    r.seconds = time.monotonic() - start
    return r


def torchrun(cwd: Path, *args: str, timeout: float = 180, **env: str):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", str(REPO / "train_meta.py"), "--no-progress", *args]
    return launch(cmd, cwd, timeout, **env)


def single(cwd: Path, *args: str):
    return launch([sys.executable, str(REPO / "train_meta.py"), "--no-progress", *args], cwd)


def params(run: Path) -> dict:
    return torch.load(run / "params.pt")["state_dict"]


def files(run: Path) -> dict:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def scalars(run: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = glob.glob(str(run / "tb" / "events.out.tfevents.*"))
    acc = EventAccumulator(events)
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Uninterrupted runs of the tiny config: "two" (torchrun, 2 ranks x B=2) and "one" (one
    process, B=4), launched from an empty working folder "cwd"."""
    base = tmp_path_factory.mktemp("dist")
    (base / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    (base / "cwd").mkdir()
    r = torchrun(base / "cwd", "--config", str(base / "tiny.yaml"), "--out", str(base / "two"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("done: 6 meta-steps") == 1  # rank 0 alone reports
    r = single(base / "cwd", "--config", str(base / "tiny.yaml"), "--set", "train.batch_size=4",
               "--out", str(base / "one"))
    assert r.returncode == 0, r.stderr
    return base


def test_two_ranks_equal_one_process_with_twice_the_batch(base):
    two, one = params(base / "two"), params(base / "one")
    assert two.keys() == one.keys()
    for k in two:
        torch.testing.assert_close(two[k], one[k], rtol=1e-9, atol=1e-12)
    init = torch.load(base / "two" / "checkpoints" / "full_00000002.pt")["trainer"]["opt"]
    assert any((two[k] - init[k]).abs().max() > 1e-4 for k in two)  # several real meta-steps
    # what is logged is the whole batch's: the global mean meta-loss, the global median loss
    for tag in ("train/meta_loss", "train/inner_loss", "val/median_loss_step4"):
        a, b = scalars(base / "two", tag), scalars(base / "one", tag)
        assert len(a) == len(b) > 0 and all(math.isclose(x, y, rel_tol=1e-6) for x, y in zip(a, b))


def test_rank0_alone_writes_the_run_folder(base):
    two, one = files(base / "two"), files(base / "one")
    assert len([f for f in two if f.startswith("tb/")]) == 1  # one events file: rank 0's
    layout = {re.sub(r"tfevents\..*", "tfevents", f) for f in two}
    assert layout == {re.sub(r"tfevents\..*", "tfevents", f) for f in one}
    assert yaml.safe_load(two["config.yaml"])["train"]["batch_size"] == 2
    assert not any((base / "cwd").iterdir())


def test_distributed_resume_is_exact(base, tmp_path):
    cfg, out = str(base / "tiny.yaml"), str(tmp_path / "split")
    r = torchrun(tmp_path, "--config", cfg, "--out", out, "--max-meta-steps", "3")
    assert r.returncode == 0 and "continue with --resume" in r.stdout, r.stderr
    state = torch.load(tmp_path / "split" / "checkpoints" / "full_00000003.pt")["trainer"]
    assert state["world_size"] == 2 and len(state["carry"]) == 2
    carries = [c["problems"]["X"] for c in state["carry"]]  # stopped mid-trajectory, own problems
    assert state["carry"][0]["t"] == 2 and not torch.equal(*carries)

    r = single(tmp_path, "--config", cfg, "--out", out, "--resume")
    assert r.returncode == 2 and "written by a run of 2 process(es), this run has 1" in r.stderr

    r = torchrun(tmp_path, "--config", cfg, "--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    whole, resumed = params(base / "two"), params(tmp_path / "split")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_refusals_are_agreed_by_every_rank_and_change_nothing(base, tmp_path):
    before = files(base / "two")
    r = torchrun(tmp_path, "--config", str(base / "tiny.yaml"), "--out", str(base / "two"))
    assert r.returncode != 0
    for rank in (0, 1):
        assert f"error: rank {rank} of 2: run folder {base / 'two'} already exists" in r.stderr
    assert files(base / "two") == before


@pytest.mark.parametrize("mode", ["exit", "raise"])
def test_a_failing_rank_stops_the_run(base, tmp_path, mode):
    """Rank 1 dies (or raises) after meta-step 3: the run ends non-zero long before the 300 s
    collective timeout, and torchrun's summary names rank 1 as the root cause."""
    out = tmp_path / "run"
    r = torchrun(tmp_path, "--config", str(base / "tiny.yaml"), "--out", str(out), timeout=120,
                 **{FAULT_ENV: f"1:3:{mode}"})
    assert r.returncode != 0 and r.seconds < 60
    assert re.search(r"Root Cause.*?rank\s*:\s*1 \(local_rank: 1\)\s*exitcode\s*:\s*1", r.stderr,
                     re.DOTALL), r.stderr
    if mode == "raise":
        assert "rank 1 raises after meta-step 3" in r.stderr
    assert not (out / "params.pt").exists()


def test_a_silent_rank_times_out_with_a_clear_error(base, tmp_path):
    r = torchrun(tmp_path, "--config", str(base / "tiny.yaml"), "--out", str(tmp_path / "run"),
                 "--dist-timeout", "10", timeout=120, **{FAULT_ENV: "1:3:hang"})
    assert r.returncode != 0 and r.seconds < 60
    assert "error: rank 0 of 2: all_reduce failed" in r.stderr
    assert "did not answer within --dist-timeout 10 s" in r.stderr


def test_rank_offsets_split_one_batch_without_overlap():
    fam = MLPTaskFamily([6, 6, 6], n_samples=6)
    whole = fam.sample(6, seed=7, split=Split.TRAIN)
    ranks = [fam.sample(2, seed=7, split=Split.TRAIN, start=2 * r) for r in range(3)]
    assert torch.equal(torch.cat([p.X for p in ranks]), whole.X)
    for k in range(2):
        assert torch.equal(torch.cat([p.weights[k] for p in ranks]), whole.weights[k])
    rows = {tuple(x.flatten().tolist()) for p in ranks for x in p.X}
    assert len(rows) == 6  # disjoint
    assert torch.equal(fam.sample(2, seed=7, start=0).X, fam.sample(2, seed=7).X)
    with pytest.raises(ValueError, match="start"):
        fam.sample(2, seed=7, start=-1)


def _step(average, loss_scale: float = 1.0):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1, dtype=torch.float64)
    meta_opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    loss = net(torch.ones(1, 3, dtype=torch.float64)).sum() * loss_scale
    applied, norm = apply_meta_step(meta_opt, net.parameters(), loss, 100.0, average)
    return applied, norm, before, list(net.parameters())


def test_meta_step_uses_the_mean_gradient_and_skips_on_every_rank_together():
    # this rank's gradient is (1, 1, 1, 1) (weights and bias); the other rank's is (3, 3, 3, 3)
    applied, norm, before, after = _step(lambda flat: (flat + torch.cat([3 * flat[:-1],
                                                                         flat[-1:]])) / 2)
    assert applied and norm == pytest.approx(4.0)  # the mean gradient (2, 2, 2, 2)
    assert all(torch.allclose(b - a, torch.full_like(a, 0.2)) for a, b in zip(after, before))
    # the other rank's loss was not finite: its flag skips the step here too
    applied, norm, before, after = _step(lambda flat: (flat + torch.tensor([0, 0, 0, 0, 1.0],
                                                                           dtype=flat.dtype)) / 2)
    assert not applied and math.isnan(norm)
    assert all(torch.equal(a, b) and a.grad is None for a, b in zip(after, before))
    # this rank's loss is not finite: it still joins the collective, with zeros and its flag
    sent = []
    applied, _, _, _ = _step(lambda flat: sent.append(flat.clone()) or flat, math.inf)
    assert not applied and sent[0].tolist() == [0, 0, 0, 0, 1]
