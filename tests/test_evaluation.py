import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metateleport.config import config_from_dict
from metateleport.evaluation import (
    DEFAULT_ADAM_LR,
    DEFAULT_GD_LR,
    baselines,
    bootstrap_ci,
    evaluate,
    quantile,
    steps_to_threshold,
    tune_lr,
    win_rate,
    write_report,
)
from metateleport.optimizers import GD, run
from metateleport.tasks import MLPTaskFamily
from metateleport.training import train_run

REPO = Path(__file__).resolve().parents[1]


def test_bootstrap_ci_covers_the_median_and_is_deterministic():
    x = np.random.default_rng(0).normal(5.0, 1.0, size=400)
    est, lo, hi = bootstrap_ci(x, "median", n_boot=1000, seed=3)
    assert est == pytest.approx(np.median(x)) and lo < 5.0 < hi and hi - lo < 0.4
    assert bootstrap_ci(x, "median", n_boot=1000, seed=3) == (est, lo, hi)
    mean, mlo, mhi = bootstrap_ci(x, "mean", n_boot=1000)
    assert mean == pytest.approx(x.mean()) and mlo < mean < mhi


def test_non_finite_runs_count_as_infinite_loss():
    x = np.array([1.0, 2.0, np.nan, np.inf, 3.0])
    assert quantile(x, 0.5) == 3.0  # sorted: 1, 2, 3, inf, inf
    assert math.isinf(bootstrap_ci(x, "mean")[0])
    assert math.isinf(quantile(np.array([1.0, np.nan, np.nan]), 0.5))
    curves = torch.tensor([[9.0, 9.0], [4.0, float("nan")], [1.0, float("nan")]])
    assert steps_to_threshold(curves, 5.0).tolist() == [1.0, math.inf]


def test_win_rate_on_a_hand_made_example():
    main = torch.tensor([1.0, 2.0, 3.0, float("nan"), 5.0])
    other = torch.tensor([2.0, 2.0, 1.0, float("nan"), float("inf")])
    assert win_rate(main, other) == (0.4, 2)  # wins on 0 and 4; tie on 1 and 3
    with pytest.raises(ValueError, match="equal shape"):
        win_rate(main, other[:3])


def test_tune_lr_prefers_a_working_step_size():
    val = MLPTaskFamily().sample(8, 0, "val")
    best, table = tune_lr(lambda lr: GD(lr), val, 20, [1e-6, 3e-4])
    assert best == 3e-4 and table[1e-6] > table[3e-4]


def test_evaluate_and_report_are_consistent(tmp_path):
    problems = MLPTaskFamily().sample(9, 1, "test")
    opts = {"GD": GD(3e-4), "slow GD": GD(1e-5, name="slow GD")}
    result = evaluate(opts, problems, 12, main="GD", n_boot=200)
    paths = write_report(result, tmp_path, tmp_path / "tb")
    data = json.loads(paths["json"].read_text())
    final = data["summary"]["GD"]["loss"]["12"]
    assert final["median"] == pytest.approx(float(np.median(result.losses["GD"][-1].numpy())))
    assert data["summary"]["slow GD"]["win_rate_of_main"] == 1.0
    assert result.summary["GD"]["win_rate_of_main"] is None
    assert result.steps == [1, 10, 12]
    assert "| slow GD |" in paths["markdown"].read_text()
    assert paths["curves"].stat().st_size > 10_000
    assert result.threshold == pytest.approx(10 * final["median"])  # GD has the lower median
    assert result.threshold_source.endswith("that of GD")
    tb = EventAccumulator(str(tmp_path / "tb" / "GD"))
    tb.Reload()
    by_step = tb.Scalars("eval/log10_median_loss")
    assert [e.step for e in by_step] == list(range(13))
    assert by_step[-1].value == pytest.approx(math.log10(final["median"]), rel=1e-6)
    by_ms = tb.Scalars("eval/log10_median_loss_vs_ms")
    assert by_ms[-1].value == pytest.approx(by_step[-1].value)
    assert by_ms[-1].step == int(1000 * result.seconds["GD"][-1])


def test_baselines_are_the_three_hand_designed_optimizers():
    opts, info = baselines(None, 10, tune=False)
    assert list(opts) == ["GD", "Adam", "GD+teleport"]
    assert opts["GD"].lr == DEFAULT_GD_LR and opts["Adam"].lr == DEFAULT_ADAM_LR
    assert opts["GD+teleport"].lr == DEFAULT_GD_LR
    assert opts["GD+teleport"].teleports.at_steps == (30,) and opts["GD"].teleports is None
    assert info["GD+teleport"]["max_norm"] == 0.01
    val = MLPTaskFamily().sample(4, 0, "val")
    opts, info = baselines(val, 5, teleport_at=(2,), gd_grid=(1e-6, 3e-4), adam_grid=(1e-2,))
    assert opts["GD"].lr == opts["GD+teleport"].lr == 3e-4 and opts["Adam"].lr == 1e-2
    assert set(info["GD"]["median_final_loss_by_lr"]) == {1e-6, 3e-4}


def test_default_report_folder_is_named_after_the_checkpoint():
    spec = importlib.util.spec_from_file_location("eval_meta", REPO / "eval_meta.py")
    eval_meta = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eval_meta)
    assert eval_meta.default_out("checkpoints/update_tele.pt") == Path("runs/eval/update_tele")
    assert eval_meta.default_out("runs/quick/params.pt") == Path("runs/eval/quick")


def eval_cli(*args):
    return subprocess.run([sys.executable, str(REPO / "eval_meta.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    base = {"batch_size": 2, "n_steps": 4, "unroll": 2, "trajectories": 2, "val_problems": 2,
            "val_every": 0}
    out = {}
    for variant, widths in (("update_tele", [20, 20, 20]), ("update", [20, 20, 20]),
                            ("lr_tele", [10, 10, 10])):
        cfg = config_from_dict({"model": {"variant": variant}, "train": base,
                                "task": {"widths": widths, "n_samples": widths[0]}})
        train_run(cfg, root / variant, progress=False)
        out[variant] = root / variant / "params.pt"
    return out


def test_eval_cli_runs_and_writes_the_report(tmp_path, tiny_checkpoints):
    out = tmp_path / "report"
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update_tele"]), "--baseline",
                 str(tiny_checkpoints["update"]), "--problems", "6", "--steps", "12",
                 "--no-tune", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "| LSTM(update,tele) |" in r.stdout and "| LSTM(update) |" in r.stdout
    assert f"curves: {out / 'curves.png'}" in r.stdout
    for name in ("results.json", "results.md", "curves.png"):
        assert (out / name).is_file()
    before = (out / "results.json").read_bytes()
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update_tele"]), "--out", str(out))
    assert r.returncode == 2 and "exists and is not empty" in r.stderr
    assert (out / "results.json").read_bytes() == before
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update_tele"]), "--problems", "3",
                 "--steps", "4", "--no-tune", "--out", str(out), "--overwrite")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "results.json").read_text())["n_steps"] == 4
    for name in ("LSTM(update,tele)", "GD"):  # the old curves are gone, not merged
        assert len(list((out / "tb" / name).glob("events.out.tfevents.*"))) == 1
    assert not list((out / "tb" / "LSTM(update)").glob("events.out.tfevents.*"))


def test_eval_cli_refuses_bad_checkpoints_before_running(tmp_path, tiny_checkpoints):
    out = tmp_path / "report"
    missing = tmp_path / "nope.pt"
    r = eval_cli("--checkpoint", str(missing), "--out", str(out))
    assert r.returncode == 2 and f"no checkpoint at {missing}" in r.stderr
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update_tele"]), "--baseline",
                 str(missing), "--out", str(out))
    assert r.returncode == 2 and "no checkpoint at" in r.stderr
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update_tele"]), "--baseline",
                 str(tiny_checkpoints["lr_tele"]), "--out", str(out))
    assert r.returncode == 2 and "trained on task" in r.stderr
    full = next((tiny_checkpoints["update"].parent / "checkpoints").iterdir())
    r = eval_cli("--checkpoint", str(full), "--out", str(out))
    assert r.returncode == 2 and "is a full checkpoint, expected params" in r.stderr
    assert not out.exists()


def test_tune_lr_avoids_step_sizes_that_diverge():
    val = MLPTaskFamily().sample(16, 0, "val")
    # 5e-4 has the lower median after 30 steps but diverges on 5 of the 16 problems
    final = run(GD(5e-4), val, 30).losses[-1]
    assert 0 < int((~torch.isfinite(final)).sum()) < 8
    best, table = tune_lr(lambda lr: GD(lr), val, 30, [3e-4, 5e-4])
    assert table[5e-4] < table[3e-4] and best == 3e-4
    # if every step size diverges somewhere, the median decides
    best, _ = tune_lr(lambda lr: GD(lr), val, 30, [5e-4, 7e-4])
    assert best == 5e-4
