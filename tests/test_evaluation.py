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

from metateleport.baselines import GD, GDSchedule
from metateleport.config import config_from_dict, load_config
from metateleport.evaluation import (
    DEFAULT_ADAM_LR,
    DEFAULT_GD_LR,
    DEFAULT_SCHEDULE,
    EvalError,
    baselines,
    evaluate,
    markdown_table,
    optimizer_names,
    score,
    summarize,
    tune_lr,
    write_report,
)
from metateleport.inner import Teleporting, run
from metateleport.stats import quantile
from metateleport.tasks import MLPTaskFamily, Problems, make_family
from metateleport.teleport import AscentTeleport, RandomTeleport, Schedule
from metateleport.training import train_run

REPO = Path(__file__).resolve().parents[1]


def test_tune_lr_prefers_a_working_step_size():
    val = MLPTaskFamily().sample(8, 0, "val")
    best, table = tune_lr(lambda lr: GD(lr), val, 20, [1e-6, 3e-4])
    assert best == 3e-4 and table[1e-6] > table[3e-4]


def test_score_runs_each_optimizer_from_the_seeded_generator_on_the_same_problems():
    p = MLPTaskFamily().sample(4, 0, "test")
    rnd = Teleporting(GD(3e-4), RandomTeleport(0.3), Schedule(at=(0,)))
    runs = score({"gd": GD(3e-4), "rnd": rnd}, p, 5, seed=3)
    assert list(runs) == ["gd", "rnd"]
    torch.manual_seed(3)
    alone = run(rnd, p, 5)
    assert torch.equal(runs["rnd"].losses, alone.losses) and runs["rnd"].held_out is None
    assert torch.equal(runs["gd"].final, run(GD(3e-4), p, 5).losses[-1])
    assert runs["gd"].seconds.shape == (6,) and runs["gd"].ms_per_step > 0
    # another seed, other random teleports; a warm-up does not change the timed run
    assert not torch.equal(score({"rnd": rnd}, p, 5, seed=4)["rnd"].losses, alone.losses)
    warm = score({"rnd": rnd}, p, 5, seed=3, warmup_steps=2)["rnd"]
    assert torch.equal(warm.losses, alone.losses)
    # evaluate summarizes score's curves
    result = evaluate({"rnd": rnd}, p, 5, seed=3, n_boot=10)
    assert torch.equal(result.losses["rnd"], alone.losses.double())


def test_evaluate_and_report_are_consistent(tmp_path):
    problems = MLPTaskFamily().sample(9, 1, "test")
    opts = {"gd": GD(3e-4), "slow": GD(1e-5, name="slow GD")}
    result = evaluate(opts, problems, 12, learned=["slow"], labels={"gd": "GD"}, n_boot=200,
                      metadata={"task": {"widths": [20, 20, 20], "init": "uniform"}, "seed": 1})
    paths = write_report(result, tmp_path, tmp_path / "tb")
    data = json.loads(paths["json"].read_text())
    assert (data["num_inits"], data["steps"], data["seed"]) == (9, 12, 1)
    assert data["widths"] == [20, 20, 20] and data["init"] == "uniform"
    gd = data["gd"]
    assert len(gd["loss_median"]) == len(gd["loss_mean"]) == 13 and len(gd["final_losses"]) == 9
    curve = result.losses["gd"]
    assert gd["loss_median"][12] == pytest.approx(float(np.median(curve[-1].numpy())))
    assert gd["loss_mean"][5] == pytest.approx(float(curve[5].mean()))
    assert gd["final_losses"] == pytest.approx(curve[-1].tolist())
    assert gd["ms_per_step"] > 0 and gd["label"] == "GD" and data["slow"]["label"] == "slow"
    final = gd["summary"]["loss"]["12"]
    lo, hi = final["median_ci"]
    assert lo <= final["median"] <= hi
    # slow GD loses everywhere: its win rate against GD is 0; GD gets none (not learned)
    assert data["slow"]["summary"]["win_rate"]["gd"] == {"rate": 0.0, "wins": 0}
    assert "win_rate" not in gd["summary"]
    assert result.steps == [1, 10, 12] and data["report_steps"] == [1, 10, 12]
    md = paths["markdown"].read_text()
    assert "| slow | slow | " in md and "| slow | 0.00 (0/9) | - |" in md
    assert md.count("step 12 |") == 2  # median and mean tables
    assert paths["curves"].stat().st_size > 10_000
    assert result.threshold == pytest.approx(10 * final["median"])  # GD has the lower median
    assert result.threshold_source.endswith("that of gd")
    tb = EventAccumulator(str(tmp_path / "tb" / "gd"))
    tb.Reload()
    by_step = tb.Scalars("eval/log10_median_loss")
    assert [e.step for e in by_step] == list(range(13))
    assert by_step[-1].value == pytest.approx(math.log10(final["median"]), rel=1e-6)
    by_ms = tb.Scalars("eval/log10_median_loss_vs_ms")
    assert by_ms[-1].value == pytest.approx(by_step[-1].value)
    assert by_ms[-1].step == int(1000 * result.seconds["gd"][-1])


def test_baselines_are_the_four_hand_designed_optimizers():
    opts, info = baselines(None, 10, tune=False)
    assert list(opts) == ["gd", "adam", "gd_tele", "gd_schedule"]
    assert opts["gd"].lr == DEFAULT_GD_LR and opts["adam"].lr == DEFAULT_ADAM_LR
    assert opts["gd_tele"].rule.lr == DEFAULT_GD_LR and isinstance(opts["gd"], GD)
    assert opts["gd_tele"].schedule == Schedule(at=(30,))
    assert isinstance(opts["gd_tele"].move, AscentTeleport)
    assert info["gd_tele"]["norm"] == 0.01
    sched = opts["gd_schedule"]
    assert (sched.switch, sched.lr_first, sched.lr) == DEFAULT_SCHEDULE
    opts, _ = baselines(None, 10, ["gd_schedule", "adam"], tune=False)
    assert list(opts) == ["gd_schedule", "adam"]
    with pytest.raises(ValueError, match="unknown baselines"):
        baselines(None, 10, ["sgd"], tune=False)
    val = MLPTaskFamily().sample(4, 0, "val")
    opts, info = baselines(val, 5, teleport_at=(2,), gd_grid=(1e-6, 3e-4), adam_grid=(1e-2,),
                           schedule_grid=[(1, 1e-6, 3e-4), (2, 1e-4, 3e-4)])
    # the grids widen until the choice is interior: GD past 3e-4, Adam on both sides of 1e-2
    assert opts["gd"].lr == opts["gd_tele"].rule.lr and opts["gd"].lr >= 3e-4
    assert {"1e-06", "0.0003"} < set(info["gd"]["median_final_loss_by_lr"])
    assert not info["gd"]["at_edge"] and not info["adam"]["at_edge"]
    assert info["adam"]["searched"][0] < 1e-2 < info["adam"]["searched"][1]
    assert info["gd_schedule"]["lr"] == (2, 1e-4, 3e-4) == (
        opts["gd_schedule"].switch, opts["gd_schedule"].lr_first, opts["gd_schedule"].lr)
    # a cached search is reused, not repeated
    opts, again = baselines(None, 5, ["gd", "gd_schedule"], tuned=info)
    assert opts["gd"].lr == 3e-4 and again["gd"]["cached"]


def test_two_phase_schedule_switches_step_size():
    p = MLPTaskFamily().sample(3, 0, "val")
    two = run(GDSchedule(1e-4, 2e-4, switch=2), p, 4).losses
    first = run(GD(1e-4), p, 2).losses
    torch.testing.assert_close(two[:3], first)  # two steps at lr_first
    after = run(GD(2e-4), Problems(p.X, p.Y, run(GD(1e-4), p, 2).weights, p.slope), 2).losses
    torch.testing.assert_close(two[2:], after)


def test_names_of_checkpoints():
    assert optimizer_names(["update_tele", "update"], ["a", "b"]) == [
        "lstm_update_tele", "lstm_update"]
    assert optimizer_names(["update", "update", "lr_tele"], ["s0", "s1", "c"]) == [
        "s0", "s1", "lstm_lr_tele"]
    with pytest.raises(EvalError, match="distinct file names"):
        optimizer_names(["update", "update"], ["params", "params"])
    with pytest.raises(EvalError, match="distinct file names"):
        optimizer_names(["update", "update"], ["gd", "x"])


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
    for name, variant, widths in (("update_tele", "update_tele", [20, 20, 20]),
                                  ("update", "update", [20, 20, 20]),
                                  ("update_b", "update", [20, 20, 20]),
                                  ("lr_tele", "lr_tele", [10, 10, 10])):
        cfg = config_from_dict({"model": {"variant": variant}, "train": base,
                                "task": {"widths": widths, "n_samples": widths[0]}})
        train_run(cfg, root / name, progress=False)
        out[name] = root / name / "params.pt"
    return out


def test_eval_cli_runs_and_writes_the_report(tmp_path, tiny_checkpoints):
    out = tmp_path / "report"
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update_tele"]),
                 str(tiny_checkpoints["update"]), "--num-inits", "6", "--steps", "12",
                 "--no-tune", "--seed", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "| lstm_update_tele | LSTM(update,tele) |" in r.stdout
    assert f"curves: {out / 'curves.png'}" in r.stdout
    for name in ("results.json", "results.md", "curves.png"):
        assert (out / name).is_file()
    data = json.loads((out / "results.json").read_text())
    names = ["gd", "adam", "gd_tele", "gd_schedule", "lstm_update_tele", "lstm_update"]
    assert data["optimizers"] == names and data["learned"] == names[-2:]
    assert (data["num_inits"], data["steps"], data["seed"]) == (6, 12, 3)
    assert data["widths"] == [20, 20, 20] and data["init"] == "uniform"
    for name in names:
        entry = data[name]
        assert len(entry["loss_median"]) == len(entry["loss_mean"]) == 13
        assert len(entry["final_losses"]) == 6 and entry["ms_per_step"] > 0
        assert entry["loss_median"][0] == pytest.approx(data["gd"]["loss_median"][0])  # same W_0
        assert len(list((out / "tb" / name).glob("events.out.tfevents.*"))) == 1
    wins = data["lstm_update"]["summary"]["win_rate"]
    assert set(wins) == set(names) - {"lstm_update"}
    md = (out / "results.md").read_text()
    assert "| learned \\ vs | gd | adam | gd_tele | gd_schedule |" in md
    before = (out / "results.json").read_bytes()
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update_tele"]), "--out", str(out))
    assert r.returncode == 2 and "exists and is not empty" in r.stderr
    assert (out / "results.json").read_bytes() == before
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update_tele"]), "--num-inits", "3",
                 "--steps", "4", "--no-tune", "--baselines", "gd", "--out", str(out),
                 "--overwrite")
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "results.json").read_text())
    assert data["steps"] == 4 and data["optimizers"] == ["gd", "lstm_update_tele"]
    for name in ("lstm_update_tele", "gd"):  # the old curves are gone, not merged
        assert len(list((out / "tb" / name).glob("events.out.tfevents.*"))) == 1
    assert not list((out / "tb" / "lstm_update").glob("events.out.tfevents.*"))


def test_tuning_never_touches_the_evaluation_problems(tmp_path, tiny_checkpoints, monkeypatch):
    import metateleport.evaluation as ev
    from metateleport.evaluation import tuning

    sampled, tuned_on = [], []
    real_sample, real_score = MLPTaskFamily.sample, tuning._score

    def sample(self, batch_size, seed, split="train"):
        sampled.append((getattr(split, "name", split).lower(), seed, batch_size))
        return real_sample(self, batch_size, seed, split)

    def trial(make_opt, problems, n_steps, entry):  # every step-size trial runs through here
        tuned_on.append((make_opt(entry).name, problems.X.clone()))
        return real_score(make_opt, problems, n_steps, entry)

    monkeypatch.setattr(MLPTaskFamily, "sample", sample)
    monkeypatch.setattr(tuning, "_score", trial)
    result, paths = ev.run_evaluation([tiny_checkpoints["update"]], num_inits=4, n_steps=3,
                                      seed=7, out_dir=tmp_path / "r")
    assert sorted(sampled) == [("test", 7, 4), ("val", 7, 4)]
    family = MLPTaskFamily()
    val_x, test_x = real_sample(family, 4, 7, "val").X, real_sample(family, 4, 7, "test").X
    # gd, adam and gd_schedule are searched (gd_tele uses gd's step size)
    assert {name for name, _ in tuned_on} == {"GD", "Adam", "GD two-phase"}
    assert all(torch.equal(x, val_x) and not torch.equal(x, test_x) for _, x in tuned_on)
    meta = json.loads(paths["json"].read_text())["metadata"]
    assert meta["problems"]["tuning"] == {"split": "val", "seed": 7, "count": 4}
    assert meta["problems"]["evaluation"] == {"split": "test", "seed": 7, "count": 4}
    # the tuned step sizes are cached in the output and reused by a rerun into it
    first = meta["baselines"]
    tuned_on.clear()
    _, paths = ev.run_evaluation([tiny_checkpoints["update"]], num_inits=4, n_steps=3,
                                 seed=7, out_dir=tmp_path / "r")
    again = json.loads(paths["json"].read_text())["metadata"]["baselines"]
    assert tuned_on == [] and all(again[k]["cached"] for k in ("gd", "adam", "gd_schedule"))
    assert [again[k]["lr"] for k in first] == [first[k]["lr"] for k in first]
    # another seed is another search
    ev.run_evaluation([tiny_checkpoints["update"]], num_inits=4, n_steps=3, seed=8,
                      baseline_names=["gd"], out_dir=tmp_path / "r")
    assert tuned_on and {name for name, _ in tuned_on} == {"GD"}


def test_eval_on_another_task_family_and_checkpoints_of_one_variant(tmp_path, tiny_checkpoints):
    out = tmp_path / "other"
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update"]),
                 str(tiny_checkpoints["update_b"]), "--widths", "10,12,10", "--n-samples", "8",
                 "--init", "normal", "--num-inits", "3", "--steps", "3", "--no-tune",
                 "--baselines", "", "--out", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "results.json").read_text())
    assert data["widths"] == [10, 12, 10] and data["n_samples"] == 8 and data["init"] == "normal"
    assert data["optimizers"] == ["update", "update_b"]  # named after their checkpoints
    assert len(data["update"]["final_losses"]) == 3
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update"]), "--n-samples", "30",
                 "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and "task.n_samples: 30 > task.widths[0]=20" in r.stderr
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update"]), "--baselines", "gd,sgd")
    assert r.returncode == 2 and "unknown baselines ['sgd']" in r.stderr
    r = eval_cli("--checkpoint", str(tiny_checkpoints["update"]), "--widths", "20,x")
    assert r.returncode == 2 and "comma-separated integers" in r.stderr
    assert not (tmp_path / "bad").exists()


def test_eval_cli_refuses_bad_checkpoints_before_writing(tmp_path, tiny_checkpoints):
    out = tmp_path / "report"
    good = str(tiny_checkpoints["update_tele"])
    missing = tmp_path / "nope.pt"
    r = eval_cli("--checkpoint", str(missing), "--out", str(out))
    assert r.returncode == 2 and f"no checkpoint at {missing}" in r.stderr
    r = eval_cli("--checkpoint", good, str(missing), "--out", str(out))
    assert r.returncode == 2 and "no checkpoint at" in r.stderr
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_checkpoints["update"].read_bytes()[:500])
    r = eval_cli("--checkpoint", good, str(truncated), "--out", str(out))
    assert r.returncode == 2 and "is truncated or corrupt" in r.stderr
    old = torch.load(tiny_checkpoints["update"], weights_only=False)
    old["format_version"] = 0
    torch.save(old, tmp_path / "old.pt")
    r = eval_cli("--checkpoint", str(tmp_path / "old.pt"), "--out", str(out))
    assert r.returncode == 2 and "has checkpoint format version 0" in r.stderr
    r = eval_cli("--checkpoint", good, str(tiny_checkpoints["lr_tele"]), "--out", str(out))
    assert r.returncode == 2 and "trained on task" in r.stderr
    full = next((tiny_checkpoints["update"].parent / "checkpoints").iterdir())
    r = eval_cli("--checkpoint", str(full), "--out", str(out))
    assert r.returncode == 2 and "is a full checkpoint, expected params" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("variant", ["update_tele", "update", "lr_tele", "update_random_tele"])
def test_shipped_checkpoint_loads_and_optimizes_the_default_task(variant):
    from metateleport.checkpoint import load_optimizer

    opt, meta = load_optimizer(REPO / "checkpoints" / f"{variant}.pt")
    assert meta["variant"] == variant and meta["task"]["widths"] == [20, 20, 20]
    shipped_config = load_config(REPO / "checkpoints" / f"{variant}.yaml")
    assert config_from_dict(meta["config"]) == shipped_config  # the config next to it is its own
    losses = run(opt, MLPTaskFamily().sample(4, 0, "test"), 10).losses
    assert torch.isfinite(losses).all() and (losses[-1] < 1e-2 * losses[0]).all()


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


def test_loss_at_equal_wall_time_reads_the_slower_curve_earlier():
    torch.manual_seed(0)
    n, m = 10, 16
    fast = torch.rand(n + 1, m).cumsum(0).flip(0)  # decreasing losses
    slow = fast / 4  # lower at every step, but each step takes 2.5x as long
    seconds = {"fast": torch.arange(n + 1.0) * 0.1, "slow": torch.arange(n + 1.0) * 0.25,
               "gd": torch.arange(n + 1.0) * 0.01}
    result = summarize({"fast": fast, "slow": slow, "gd": fast * 9}, seconds,
                       learned=["fast", "slow"], n_boot=50)
    at = {k: result.summary[k]["at_time"] for k in ("fast", "slow", "gd")}
    assert all(a["seconds"] == pytest.approx(1.0) for a in at.values())  # fast's whole run
    assert (at["fast"]["step"], at["slow"]["step"], at["gd"]["step"]) == (10, 4, 10)
    assert at["slow"]["median"] == pytest.approx(float(quantile(slow[4], 0.5)))
    assert at["slow"]["median"] > at["fast"]["median"] > 0  # ahead per step, behind per second
    assert "steps in 1 s" in markdown_table(result)


@pytest.mark.parametrize("name, unit_span, cond", [("imbalanced_update_tele", 10.0, None),
                                                   ("imbalanced_update_balance", 10.0, None),
                                                   ("imbalanced_update", 10.0, None),
                                                   ("paper_update_tele", 1.0, None),
                                                   ("paper_update_tele_look", 1.0, None),
                                                   ("cond_update_tele", 1.0, 1000.0)])
def test_shipped_family_checkpoints_match_their_configs_and_optimize(name, unit_span, cond):
    from metateleport.checkpoint import load_optimizer

    opt, meta = load_optimizer(REPO / "checkpoints" / f"{name}.pt")
    assert config_from_dict(meta["config"]) == load_config(REPO / "checkpoints" / f"{name}.yaml")
    assert meta["task"]["unit_span"] == unit_span and meta["task"]["cond"] == cond
    # the config the checkpoint was trained with is the shipped config of its name (seed aside)
    shipped = load_config(REPO / "configs" / f"{name}.yaml",
                          [f"train.seed={meta['config']['train']['seed']}", "train.threads=1"])
    assert config_from_dict(meta["config"]) == shipped
    losses = run(opt, make_family(meta["task"]).sample(4, 0, "test"), 30).losses
    assert torch.isfinite(losses).all() and (losses[-1] < 1e-3 * losses[0]).all()


def test_eval_on_a_registered_family_by_name(tmp_path):
    from metateleport.evaluation import EvalError, run_evaluation

    ckpt = REPO / "checkpoints" / "update.pt"
    result, _ = run_evaluation([ckpt], num_inits=3, n_steps=3, tune=False, out_dir=tmp_path,
                               family="imbalanced", baseline_names=["gd"])
    assert result.metadata["task"]["family"] == "imbalanced"
    assert result.metadata["task"]["unit_span"] == 10.0
    with pytest.raises(EvalError, match="not a registered family"):
        run_evaluation([ckpt], num_inits=3, n_steps=3, tune=False, out_dir=tmp_path,
                       family="mnist")
