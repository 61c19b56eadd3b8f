"""The generalist study's registry and bookkeeping (metateleport.studies.general)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from pathlib import Path

import pytest
import torch

from metateleport.config import load_config
from metateleport.studies import general, general_runs
from tests.test_studies import _script

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("arm", sorted(general.ARMS))
def test_every_arm_resolves_on_the_distribution_with_the_same_budget(arm):
    config, overrides, _, seeds = general.ARMS[arm]
    cfg = load_config(REPO / "configs" / f"{config}.yaml", overrides)
    base = load_config(REPO / "configs" / "general_update_tele.yaml")
    # "-long": twice the meta-training, the only difference in budget; "-held_out": the
    # meta-loss of the groups with held-out samples (digits) is their held-out loss
    want = dataclasses.replace(base.train, trajectories=2 * base.train.trajectories) \
        if "-long" in arm else base.train
    if arm.endswith("-held_out"):
        want = dataclasses.replace(want, meta_loss_on="held_out_where_available")
    # "-val_held_out": the validation score reads the held-out loss of those groups
    if arm.endswith("-val_held_out"):
        want = dataclasses.replace(want, validate_on="held_out_where_available")
    # "-scale<w>": the growth of the function's scale in the meta-loss, weight w
    if scale := re.search(r"-scale(\d+)", arm):
        want = dataclasses.replace(want, scale_weight=float(scale[1]))
    # "-meta_lr<r>": the peak meta-learning rate r, the schedule and budget unchanged
    if meta_lr := re.search(r"-meta_lr([0-9.]+)", arm):
        want = dataclasses.replace(want, meta_lr=float(meta_lr[1]))
    # "-budget<t>": t trajectories of meta-training instead of "-long"'s
    if budget := re.search(r"-budget(\d+)", arm):
        want = dataclasses.replace(want, trajectories=int(budget[1]))
    # "-unroll<k>": truncated unrolls of k inner steps instead of 10, the budget unchanged
    if unroll := re.search(r"-unroll(\d+)", arm):
        want = dataclasses.replace(want, unroll=int(unroll[1]))
    # "-digits05": half the groups on digits, the only arm whose distribution differs
    task = dataclasses.replace(base.task, options={**base.task.options, "digits": 0.5}) \
        if "-digits05" in arm else base.task
    assert cfg.task == task and cfg.train == want
    assert (cfg.model.guard is None) == ("-noguard" in arm)
    # "-hidden<h>": m1's and m2's LSTMs h units wide; every other arm the default 20
    hidden = re.search(r"-hidden(\d+)", arm)
    assert cfg.model.hidden_size == (int(hidden[1]) if hidden else 20)
    assert set(seeds) <= {0, 1, 2, 3, 4} and len(seeds) >= 3


def test_order_trains_every_run_once_headline_arms_first():
    assert sorted(general.ORDER) == sorted((a, s) for a, (*_, seeds) in general.ARMS.items()
                                           for s in seeds)
    assert {a for a, _ in general.ORDER[:10]} == {"update", "update_tele"}


def test_a_test_time_run_waits_for_its_source_trained_by_another_job(monkeypatch):
    # ORDER puts the derived run right after its source: with two jobs the second job would
    # take it while the first still trains the source (and refuse at the run folder's lock)
    finished, calls = set(), []

    def fake(arm, seed, *args):
        calls.append((arm, seed))
        if arm in general_runs.TEST_TIME:
            assert (general_runs.TEST_TIME[arm], seed) in finished, "derived before its source"
        else:
            time.sleep(0.2)
        finished.add((arm, seed))
        return {"validation_score": 1.0, "chosen_meta_step": 1}

    monkeypatch.setattr(general_runs, "train_one", fake)
    monkeypatch.setattr(general_runs, "ORDER", [("src", 0), ("der", 0), ("other", 0)])
    monkeypatch.setattr(general_runs, "TEST_TIME", {"der": "src"})
    general_runs.train_all(Path("runs"), Path("summaries"), REPO, 2, log=lambda line: None)
    assert sorted(calls) == [("der", 0), ("other", 0), ("src", 0)]
    # asked for the derived arm alone, its source is trained first, once
    calls.clear()
    finished.clear()
    general_runs.train_all(Path("runs"), Path("summaries"), REPO, 2, ["der"],
                           log=lambda line: None)
    assert calls == [("src", 0), ("der", 0)]


def test_a_committed_summary_is_reused_and_listed(tmp_path, monkeypatch):
    folder = tmp_path / "general" / "update"
    folder.mkdir(parents=True)
    (folder / "s0.json").write_text(json.dumps({
        "validation_score": 1.5, "chosen_meta_step": 700, "train_seconds_this_session": 60}))

    def refuse(*args, **kwargs):
        raise AssertionError("a committed run must not be trained again")

    monkeypatch.setattr(general_runs, "train", refuse)
    assert general.train_one("update", 0, tmp_path / "runs", tmp_path, REPO)[
        "chosen_meta_step"] == 700
    assert "| LSTM(update), guarded | 1/5 | s0: 1.500 | 1 min |" in general.status_table(tmp_path)


def _finished_run(tmp_path, monkeypatch, digits_learned):
    """A finished run of arm update (in ACCURACY) whose suite scores are recorded in the list
    returned and hold ``digits_learned`` as the learned run (real sets: their name)."""
    folder = tmp_path / "general" / "update"
    folder.mkdir(parents=True)
    (folder / "s0.pt").write_bytes(b"")
    calls = []

    def suite_score(params, suite, problems):
        calls.append(suite)
        return {"suite": suite, "learned": digits_learned,
                "gd": {"final": [0.1], "held_out_accuracy": [0.6]},
                "adam": {"final": [0.1], "held_out_accuracy": [0.65]}}

    monkeypatch.setattr(general_runs, "score_suite", suite_score)
    monkeypatch.setattr(general_runs, "score_real",
                        lambda params, name, problems: calls.append(name) or {"set": name})
    monkeypatch.setattr(general_runs, "score_validation",
                        lambda params, name: calls.append(f"val {name}") or {"set": name})
    return folder, calls


def test_score_all_scores_each_finished_run_once(tmp_path, monkeypatch):
    folder, calls = _finished_run(tmp_path, monkeypatch, {"final": [1.0]})
    general.score_all(tmp_path, problems=2, log=lambda line: None, arms=["update_tele"])
    assert calls == [], "only the arms asked for"
    general.score_all(tmp_path, problems=2, log=lambda line: None)
    # update is in ACCURACY, and its digits score has no held-out accuracy (a score from
    # before score_suite recorded it): the digits suite once more
    # update is an arm general_update.pt may ship: on real data's validation problems too
    assert "update" in general.ACCURACY and "update" in general.SHIPPED["general_update"][0]
    validation = [f"val {name}" for name in general.REAL_SETS]
    assert calls == list(general.SUITES) + list(general.REAL_SETS) + validation + ["digits"]
    assert json.loads((folder / "s0-depth3.json").read_text())["suite"] == "depth3"
    assert json.loads((folder / "s0-real-digits.json").read_text())["set"] == "digits"
    assert json.loads((folder / "s0-val-real-digits.json").read_text())["set"] == "digits"
    assert json.loads((folder / "s0-digits-accuracy.json").read_text())["suite"] == "digits"
    general.score_all(tmp_path, problems=2, log=lambda line: None)
    assert len(calls) == len(general.SUITES) + 5, "a scored suite is not scored again"


def test_score_all_reads_held_out_accuracy_from_the_digits_score_where_it_has_it(tmp_path,
                                                                                 monkeypatch):
    folder, calls = _finished_run(tmp_path, monkeypatch,
                                  {"final": [0.05], "held_out_accuracy": [0.7]})
    general.score_all(tmp_path, problems=1, log=lambda line: None)
    assert calls == list(general.SUITES) + list(general.REAL_SETS) + [
        f"val {name}" for name in general.REAL_SETS], "no second pass over the digits suite"
    assert not (folder / "s0-digits-accuracy.json").exists()
    row = general.digits_accuracy_table(tmp_path, ("update",)).splitlines()[2]
    assert row.startswith(f"| digits | {general.ARMS['update'][2]} | 1 | 0.700 | 0.05 | "
                          "0.600 (loss 0.1) | 0.650 (loss 0.1) | +0.050 [")


def test_suite_table_shows_the_speedup_and_its_cap(tmp_path):
    folder = tmp_path / "general" / "update"
    folder.mkdir(parents=True)
    run = {"final": [1.0, 2.0, 3.0], "diverged": 0}
    (folder / "s0-depth3.json").write_text(json.dumps({
        "n_steps": 100, "problems": 3, "gd": run, "adam": run,
        "learned": {**run, "refused_fraction": 0.25,
                    "adam_equivalent": [float("inf")] * 3}}))
    table = general.suite_table(tmp_path)
    assert "| depth3 | update | 0 | 2 | 2 | 2 | 0/3 (GD 0, Adam 0) | 0.25 | >10x |" in table


def _suite_summary(folder: Path, name: str, learned, adam, speed):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({
        "n_steps": 100, "problems": len(learned), "gd": {"final": adam, "diverged": 0},
        "adam": {"final": adam, "diverged": 0},
        "learned": {"final": learned, "diverged": 0, "adam_equivalent": speed}}))


def test_paired_table_pairs_seeds_and_problems_and_lists_the_specialists(tmp_path):
    root = tmp_path / "general"
    for s in (0, 1, 2):
        # update_tele ends at a tenth of update's loss on every problem, update at half Adam's
        _suite_summary(root / "update", f"s{s}-paper.json", [2.0, 4.0], [4.0, 8.0], [3.0, 5.0])
        _suite_summary(root / "update_tele", f"s{s}-paper.json", [0.2, 0.4], [4.0, 8.0],
                       [20.0, float("inf")])
    _suite_summary(root / "specialists", "paper_update_tele-paper.json", [0.1, 0.1],
                   [4.0, 8.0], [1.0, 1.0])
    table = general.paired_table(tmp_path).splitlines()
    tele = next(r for r in table if r.startswith("| paper | LSTM(update,tele)"))
    assert "| 3 | 0.3 | 0.05 [0.05, 0.05] |" in tele
    assert "| 0.1 [0.1, 0.1] | 0/6 |" in tele, "paired against LSTM(update) on the same seeds"
    assert tele.endswith("| >10x [20.0x, >10x] |")
    plain = next(r for r in table if r.startswith("| paper | LSTM(update),"))
    assert "| 0.5 [0.5, 0.5] |" in plain and "| - |" in plain
    assert any(r.startswith("| paper | specialist paper_update_tele.pt | - | 0.1 |")
               for r in table)
    assert not any("(held out)" in r for r in table)
    _suite_summary(root / "update", "s0-depth4.json", [1.0], [1.0], [1.0])
    assert any(r.startswith("| depth4 (held out) | LSTM(update),")
               for r in general.paired_table(tmp_path).splitlines())


def test_the_controls_table_pairs_each_control_with_the_diag_arm(tmp_path):
    root = tmp_path / "general"
    for s in (0, 1, 2):
        _suite_summary(root / "update_tele_diag", f"s{s}-paper.json", [1.0, 2.0], [4.0, 8.0],
                       [3.0, 5.0])
        _suite_summary(root / "update_random_tele_diag", f"s{s}-paper.json", [3.0, 6.0],
                       [4.0, 8.0], [1.0, 2.0])
    # the no-guard control has seeds 1 and 2 only: paired on those
    for s in (1, 2):
        _suite_summary(root / "update_tele_diag-noguard", f"s{s}-paper.json", [0.5, 1.0],
                       [4.0, 8.0], [3.0, 5.0])
    _suite_summary(root / "specialists", "update-paper.json", [0.1, 0.1], [4.0, 8.0], [1, 1])
    table = general.paired_table(tmp_path, general.CONTROLS, specialists=False).splitlines()
    assert table[0].split(" | ")[6] == "/ LSTM(update,tele) with a diag m2, guarded"
    rows = {r.split(" | ")[1]: r.split(" | ") for r in table[2:]}
    assert set(rows) == {general.ARMS[a][2] for a in general.CONTROLS}
    assert rows[general.ARMS["update_random_tele_diag"][2]][6] == "3 [3, 3]"
    assert rows[general.ARMS["update_tele_diag-noguard"][2]][2:4] == ["2", "0.75"]
    assert rows[general.ARMS["update_tele_diag-noguard"][2]][6] == "0.5 [0.5, 0.5]"
    assert rows[general.ARMS["update_tele_diag"][2]][6] == "-"


def test_score_specialists_scores_each_once(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(general_runs, "score_suite", lambda params, suite, problems: calls.append(
        (params.name, suite)) or {"suite": suite})
    general.score_specialists(tmp_path, REPO / "checkpoints", problems=2, log=lambda s: None)
    expected = [(f"{n}.pt", s) for s, names in general.SPECIALISTS.items() for n in names]
    assert calls == expected
    assert all((REPO / "checkpoints" / name).is_file() for name, _ in expected)
    general.score_specialists(tmp_path, REPO / "checkpoints", problems=2, log=lambda s: None)
    assert len(calls) == len(expected)


def test_real_table_pairs_accuracy_against_the_better_hand_optimizer(tmp_path):
    hand = {"sgd": {"final": [0.1, 0.1], "accuracy": [0.9, 0.8]},
            "adam": {"final": [0.01, 0.01], "accuracy": [0.7, 0.7]}}
    # update: seeds 0-1; update_balance (paired with update, the last arm): seeds 1-2
    for arm, runs in (("update", ((0, [0.9, 0.7]), (1, [0.8, 0.6]))),
                      ("update_balance", ((1, [0.9, 0.9]), (2, [0.1, 0.1])))):
        folder = tmp_path / "general" / arm
        folder.mkdir(parents=True)
        for s, acc in runs:
            (folder / f"s{s}-real-breast_cancer.json").write_text(json.dumps({
                **hand, "learned": {"final": [0.05, 0.05], "accuracy": acc}}))
    table = general.real_table(tmp_path, ("update_balance", "update")).splitlines()
    assert table[0].endswith(f"| accuracy - {general.ARMS['update'][2]}'s |")
    rows = {r.split(" | ")[1]: r for r in table if r.startswith("| breast_cancer |")}
    row = rows[general.ARMS["update"][2]]
    # differences against SGD (the better median accuracy): 0, -0.1, -0.1, -0.2
    assert "| 2 | 0.750 | 0.05 | 0.850 (loss 0.1) | 0.700 (loss 0.01) | -0.100 [" in row
    assert row.endswith("] vs sgd | - |")
    # against update on seed 1 only (the seed both have): 0.9 - 0.8, 0.9 - 0.6
    assert rows[general.ARMS["update_balance"][2]].endswith(" | +0.200 [+0.100, +0.300] |")


def test_digits_accuracy_table_pairs_with_the_better_hand_and_the_last_arm(tmp_path):
    hand = {"gd": {"final": [0.1, 0.1], "held_out_accuracy": [0.7, 0.7]},
            "adam": {"final": [0.01, 0.01], "held_out_accuracy": [0.8, 0.6]}}
    for arm, acc in (("update", [0.75, 0.65]), ("update_tele_diag-noguard-long", [0.7, 0.7])):
        folder = tmp_path / "general" / arm
        folder.mkdir(parents=True)
        (folder / "s0-digits-accuracy.json").write_text(json.dumps({
            **hand, "learned": {"final": [0.05, 0.05], "held_out_accuracy": acc}}))
    table = general.digits_accuracy_table(
        tmp_path, ("update_tele_diag-noguard-long", "update")).splitlines()
    assert table[0].startswith("| set | optimizer | seeds | held-out accuracy | training loss "
                               "| tuned GD | tuned Adam |")
    rows = {r.split(" | ")[1]: r for r in table[2:]}
    # GD and Adam have the same median (0.7): the first, GD, is the better hand
    assert rows[general.ARMS["update"][2]].endswith(
        "| +0.000 [-0.050, +0.050] vs gd | - |")
    assert rows[general.ARMS["update_tele_diag-noguard-long"][2]].endswith(
        "| +0.000 [+0.000, +0.000] vs gd | -0.000 [-0.050, +0.050] |")  # 0.7 - 0.7 (float)


@pytest.mark.parametrize("name", sorted(general.SHIPPED))
def test_the_shipped_generalist_is_the_seed_chosen_on_validation(name):
    from metateleport.checkpoint import load_checkpoint, load_optimizer
    from metateleport.config import config_from_dict

    arm, chosen = general.shipped_choice(REPO / "studies", name)
    shipped = load_checkpoint(REPO / "checkpoints" / f"{name}.pt", "params")
    study = load_checkpoint(REPO / "studies" / "general" / arm / f"s{chosen}.pt", "params")
    assert shipped["config"]["train"]["seed"] == chosen and shipped["shipped"]["arm"] == arm, (
        f"{arm} seed {chosen} is chosen on validation: python scripts/general_study.py ship")
    assert all(torch.equal(shipped["state_dict"][k], v) for k, v in study["state_dict"].items())
    _, meta = load_optimizer(REPO / "checkpoints" / f"{name}.pt")
    config, overrides, _, _ = general.ARMS[arm]
    want = load_config(REPO / "configs" / f"{config}.yaml",
                       [*overrides, f"train.seed={chosen}", "train.threads=1",
                        f"model.guard={general.SHIPPED[name][1]}"])
    assert config_from_dict(meta["config"]) == want
    assert meta["model"]["guard"] == general.SHIPPED[name][1], "shipped with the guard on"
    assert load_config(REPO / "checkpoints" / f"{name}.yaml") == want


def _real_validation(folder: Path, seed: int, gap: float, sets=("breast_cancer", "digits")):
    """Write the run's score_validation summaries: its accuracy ``gap`` below the better
    hand's on the last of ``sets``, level on the others."""
    for k, name in enumerate(sets):
        learned = 0.8 + (gap if k == len(sets) - 1 else 0.0)
        (folder / f"s{seed}-val-real-{name}.json").write_text(json.dumps(
            {"sgd": {"accuracy": [0.8, 0.8]}, "adam": {"accuracy": [0.7, 0.9]},
             "learned": {"accuracy": [learned, learned]}}))


def test_ship_chooses_the_arm_then_the_seed_on_validation(tmp_path):
    from metateleport.checkpoint import load_checkpoint
    from metateleport.studies.arms import StudyError

    with pytest.raises(StudyError, match="none of"):
        general.shipped_choice(tmp_path, "general_update_tele")
    # the guarded arm: median 2.0; the no-guard arm: median 1.5, its best seed 3
    real = REPO / "studies" / "general" / "update_tele_diag" / "s1.pt"
    for arm, scores in (("update_tele_diag", [2.0, 1.0, 2.5, 3.0, 2.0]),
                        ("update_tele_diag-noguard", [1.5, 1.6, 1.4, 0.5, 3.0])):
        folder = tmp_path / "general" / arm
        folder.mkdir(parents=True)
        for s, v in enumerate(scores):
            (folder / f"s{s}.json").write_text(json.dumps({"validation_score": v}))
            data = torch.load(real, weights_only=False)
            data["model"]["guard"] = data["config"]["model"]["guard"] = (
                None if arm.endswith("noguard") else 2.0)
            data["validation_score"] = v
            torch.save(data, folder / f"s{s}.pt")
    # not yet measured on real data's validation problems: no arm qualifies
    with pytest.raises(StudyError, match="validation problems within 0.03"):
        general.shipped_choice(tmp_path, "general_update_tele")
    folders = {arm: tmp_path / "general" / arm
               for arm in ("update_tele_diag", "update_tele_diag-noguard")}
    for folder in folders.values():
        for s in range(5):
            _real_validation(folder, s, -0.01)
    assert general.real_validation_gap(tmp_path, "update_tele_diag", 0) == pytest.approx(-0.01)
    assert general.shipped_choice(tmp_path, "general_update_tele") == (
        "update_tele_diag-noguard", 3)
    # a seed more than 0.03 below the best hand on one set is not shipped, its arm still is
    _real_validation(folders["update_tele_diag-noguard"], 3, -0.05)
    assert general.real_validation_gap(tmp_path, "update_tele_diag-noguard", 3) == \
        pytest.approx(-0.05)
    assert general.shipped_choice(tmp_path, "general_update_tele") == (
        "update_tele_diag-noguard", 2)
    # an arm whose median seed is more than 0.03 below is not a candidate
    for s in (0, 1):
        _real_validation(folders["update_tele_diag-noguard"], s, -0.04)
    assert general.shipped_choice(tmp_path, "general_update_tele") == ("update_tele_diag", 1)
    for s in (0, 1, 3):
        _real_validation(folders["update_tele_diag-noguard"], s, -0.01)
    # an arm with a seed not measured on one set does not compete
    (folders["update_tele_diag"] / "s2-val-real-digits.json").unlink()
    assert general.real_validation_gap(tmp_path, "update_tele_diag", 2) is None
    assert general.shipped_choice(tmp_path, "general_update_tele") == (
        "update_tele_diag-noguard", 3)
    from metateleport.studies.general_verdict import shipping_table

    rows = {r.split(" | ")[1]: r for r in shipping_table(tmp_path).splitlines()[2:]}
    assert rows[general.ARMS["update_tele_diag"][2]].endswith(
        "| 5/5 | 2.000 | +0.000 (5) | -0.010 (4) | - |  |")
    assert rows[general.ARMS["update_tele_diag-noguard"][2]].endswith(
        "| 5/5 | 1.500 | +0.000 (5) | -0.010 (5) | yes | seed 3 |")
    _real_validation(folders["update_tele_diag"], 2, -0.01)
    line = general.ship_generalist(tmp_path, tmp_path / "out", "general_update_tele")
    assert "update_tele_diag-noguard seed 3" in line
    shipped = load_checkpoint(tmp_path / "out" / "general_update_tele.pt", "params")
    assert shipped["model"]["guard"] == 2.0 and shipped["config"]["model"]["guard"] == 2.0
    assert shipped["shipped"]["trained_guard"] is None
    text = (tmp_path / "out" / "general_update_tele.yaml").read_text()
    assert text.startswith("# meta-trained without the loss guard")
    assert load_config(tmp_path / "out" / "general_update_tele.yaml").model.guard == 2.0
    # a half-trained arm does not compete
    (tmp_path / "general" / "update_tele_diag-noguard" / "s4.json").unlink()
    assert general.shipped_choice(tmp_path, "general_update_tele") == ("update_tele_diag", 1)


def test_validation_histories_count_failed_seeds_with_and_without_selection(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    # arm "update": seed 1 ends far above its best (fails without selection only); seed 2 is
    # bad throughout (fails either way); seed 3's folder is not on this machine
    curves = {0: [3.0, 2.0, 2.1], 1: [3.0, 2.0, 9.0], 2: [9.0, 8.0, 8.5], 3: [1.0]}
    for s, curve in curves.items():
        (tmp_path / "sum" / "general" / "update").mkdir(parents=True, exist_ok=True)
        (tmp_path / "sum" / "general" / "update" / f"s{s}.json").write_text("{}")
        if s == 3:
            continue
        with SummaryWriter(str(tmp_path / "runs" / "general" / "update" / f"s{s}" / "tb")) as w:
            for i, v in enumerate(curve):
                w.add_scalar("val/score", v, 100 * (i + 1))
    general.record_histories(tmp_path / "runs", tmp_path / "sum", log=lambda line: None)
    saved = json.loads((tmp_path / "sum" / "general" / "update" / "s1-validation.json")
                       .read_text())
    assert saved["val_score"] == {"100": 3.0, "200": 2.0, "300": 9.0}
    assert not (tmp_path / "sum" / "general" / "update" / "s3-validation.json").exists()
    row = next(r for r in general.selection_table(tmp_path / "sum").splitlines()
               if r.startswith("| LSTM(update), guarded |"))
    # the median chosen score is 2.0, the bar 2.0 + log 4
    assert row.endswith("| s0: 2.00, s1: 2.00, s2: 8.00 | s0: 2.10, s1: 9.00, s2: 8.50 "
                        "| 1/3 | 2/3 |")


def test_guard_swap_scores_once_with_the_swapped_guard_and_pairs_it(tmp_path, monkeypatch):
    calls = []

    def fake(params, suite, problems, n_steps, guard):
        calls.append((params.parent.name, suite, guard))
        return {"suite": suite}

    monkeypatch.setattr(general_runs, "score_suite", fake)
    for arm in general.GUARD_SWAP["arms"]:
        (tmp_path / "general" / arm).mkdir(parents=True)
        (tmp_path / "general" / arm / "s1.pt").write_bytes(b"")
    general.score_guard_swap(tmp_path, problems=2, log=lambda line: None)
    suites = general.GUARD_SWAP["suites"]
    assert calls == [(arm, suite, guard) for arm, guard in general.GUARD_SWAP["arms"].items()
                     for suite in suites]
    general.score_guard_swap(tmp_path, problems=2, log=lambda line: None)
    assert len(calls) == len(general.GUARD_SWAP["arms"]) * len(suites), (
        "a swapped score is not redone")
    # the table pairs the swapped losses with the arm's own on the same problems
    root = tmp_path / "general" / "update_tele_diag"
    _suite_summary(root, "s1-paper.json", [1.0, 2.0], [4.0, 8.0], [3.0, 5.0])
    _suite_summary(root / "guard_swap", "s1-paper.json", [0.5, 1.0], [4.0, 8.0], [3.0, 5.0])
    row = next(r for r in general.guard_swap_table(tmp_path).splitlines()
               if r.startswith("| paper |"))
    assert "| 2 -> none | 1 | 1.5 | 0.75 | 0.5 [0.5, 0.5] | 0 -> 0 of 2 |" in row


def test_tele_off_scores_m1_alone_once_and_pairs_it(tmp_path, monkeypatch):
    calls = []

    def fake(what):
        def score(params, suite, problems, teleport=True):
            calls.append((params.parent.name, what, suite, teleport))
            return {"suite": suite}
        return score

    monkeypatch.setattr(general_runs, "score_suite", fake("suite"))
    monkeypatch.setattr(general_runs, "score_real", fake("real"))
    for arm in general.TELE_OFF["arms"]:
        (tmp_path / "general" / arm).mkdir(parents=True)
        (tmp_path / "general" / arm / "s1.pt").write_bytes(b"")
    general.score_tele_off(tmp_path, problems=2, log=lambda line: None)
    want = [(arm, "real" if suite.startswith("real-") else "suite",
             suite.removeprefix("real-"), False)
            for arm in general.TELE_OFF["arms"] for suite in general.TELE_OFF["suites"]]
    assert calls == want
    general.score_tele_off(tmp_path, problems=2, log=lambda line: None)
    assert len(calls) == len(want), "a score with m1 alone is not redone"
    # the table pairs m1 alone with the arm's own scores on the same problems: losses as a
    # ratio, held-out accuracy as a difference, and m1 alone against the better hand optimizer
    root = tmp_path / "general" / general.TELE_OFF["arms"][0]
    for folder, acc in ((root, [0.6, 0.7]), (root / "tele_off", [0.7, 0.7])):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "s1-real-digits.json").write_text(json.dumps({
            "sgd": {"final": [0.1, 0.1], "accuracy": [0.8, 0.8]},
            "adam": {"final": [0.1, 0.1], "accuracy": [0.5, 0.5]},
            "learned": {"final": [1.0, 2.0] if folder == root else [2.0, 4.0], "diverged": 0,
                        "accuracy": acc}}))
    row = next(r for r in general.tele_off_table(tmp_path).splitlines()
               if r.startswith("| real-digits |"))
    assert "| 1 | 1.5 | 3 | 2 [2, 2] | 0 -> 0 of 2 | 0.650 -> 0.700 | +0.050" in row
    assert "-0.100" in row and row.endswith("vs sgd |")


def test_specialist_table_pairs_the_generalist_with_each_specialist(tmp_path):
    root = tmp_path / "general"
    # against the shipped specialist's [0.1, 0.2]: seed 0 ends 3x higher on both problems,
    # seed 1 1.5x higher (within the 2x)
    _suite_summary(root / "update_tele_diag", "s0-paper.json", [0.3, 0.6], [4.0, 8.0], [1, 1])
    _suite_summary(root / "update_tele_diag", "s1-paper.json", [0.15, 0.3], [4.0, 8.0], [1, 1])
    # the specialists' own Adam-equivalent speedups: the shipped one's median over its
    # problems; Adam never reaches one of the two problems of the study's seed 1 (its median
    # is inf: ">10x" at 100 steps)
    _suite_summary(root / "specialists", "paper_update_tele-paper.json", [0.1, 0.2],
                   [4.0, 8.0], [1.0, 3.0])
    # the family study's diag specialist has seeds 1 and 2: paired on seed 1 only
    study_arm = root / "specialists" / "paper-update_tele-skip-diag"
    for s, speed in ((1, [4.0, float("inf")]), (2, [0.5, 0.5])):
        _suite_summary(study_arm, f"s{s}-paper.json", [0.3, 0.6], [4.0, 8.0], speed)
    rows = {r.split(" | ")[1]: r.split(" | ") for r in
            general.specialist_table(tmp_path).splitlines()[2:]}
    shipped = rows["paper_update_tele.pt (shipped)"]
    assert shipped[2:7] == ["1", "0.15", "0.025 [0.025, 0.025]", "2.0x", "0.3"], \
        "its loss / Adam's, its Adam-equivalent"
    assert shipped[8] == "1/2 |"
    low, high = (float(v) for v in shipped[7].split("[")[1].rstrip("]").split(", "))
    assert 1.5 <= low <= high <= 3
    diag = next(v for k, v in rows.items() if k.endswith("(`paper/update_tele-skip-diag`)"))
    assert diag[2:5] == ["1", "0.45", "0.075 [0.075, 0.075]"] and diag[5] == ">10x"
    assert diag[6:8] == ["0.225", "0.5 [0.5, 0.5]"] and diag[8] == "1/1 |"


def test_score_study_specialists_scores_the_runs_on_this_machine_once(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(general_runs, "score_suite", lambda params, suite, problems: calls.append(
        (params.parent.parent.name, params.parent.name, suite)) or {"suite": suite})
    runs = tmp_path / "runs"
    for s in (0, 2):
        folder = runs / "paper" / "update-rms-guard" / f"s{s}"
        folder.mkdir(parents=True)
        (folder / "params.pt").write_bytes(b"")
    (runs / "paper" / "update_tele-skip-diag" / "s0").mkdir(parents=True)  # unfinished
    general.score_study_specialists(tmp_path, runs, problems=2, log=lambda s: None)
    assert calls == [("update-rms-guard", "s0", "paper"), ("update-rms-guard", "s2", "paper")]
    assert (tmp_path / "general" / "specialists" / "paper-update-rms-guard"
            / "s2-paper.json").is_file()
    general.score_study_specialists(tmp_path, runs, problems=2, log=lambda s: None)
    assert len(calls) == 2


def test_the_committed_tables_regenerate_from_the_committed_summaries():
    want = (REPO / "studies" / "general" / "tables.md").read_text()
    assert general.all_tables(REPO / "studies") == want, (
        "python scripts/general_study.py status rewrites studies/general/tables.md")


def test_shipped_table_pairs_the_shipped_arm_with_each_other_arm(tmp_path):
    root = tmp_path / "general"
    for s in (0, 1):
        _suite_summary(root / "update_tele_diag-noguard", f"s{s}-paper.json", [0.5, 1.0],
                       [4.0, 8.0], [3.0, float("inf")])
        _suite_summary(root / "update", f"s{s}-paper.json", [2.0, 4.0], [4.0, 8.0], [1, 1])
    _suite_summary(root / "update_tele_diag", "s1-paper.json", [1.0, 1.0], [4.0, 8.0], [1, 1])
    table = general.shipped_table(tmp_path, "update_tele_diag-noguard").splitlines()
    assert len(table) == 3, "one row per suite scored"
    cells = table[2].split(" | ")
    assert cells[:3] == ["| paper", "2", "0.75"]
    assert cells[3] == "0.125 [0.125, 0.125]" and cells[5] == "0.25 [0.25, 0.25]"
    low, high = (float(v) for v in cells[6].split("[")[1].rstrip("]").split(", "))
    assert 0.5 <= low <= high <= 1, "against the guarded arm on its one seed"
    assert cells[7:9] == ["0/4", "0.00"] and cells[9].startswith(">10x")


def test_the_tables_quoted_in_the_docs_are_the_committed_ones():
    tables = (REPO / "studies" / "general" / "tables.md").read_text()
    doc = (REPO / "docs" / "results.md").read_text()
    section = doc[doc.index("## The generalist"):]
    quoted = [b for b in section.split("\n\n") if b.startswith("| suite") or b.startswith("| set")]
    assert len(quoted) >= 3
    for block in quoted:
        assert block.strip("\n") in tables, (
            f"docs/results.md quotes a table that studies/general/tables.md no longer has: "
            f"copy it again ({block.splitlines()[0][:60]}...)")


def test_the_bound_diagnosis_reports_norms_within_the_bound(capsys):
    script = _script("teleport_bound_diagnosis")
    script.main(["--suites", "small", "--problems", "2"])
    head, line = capsys.readouterr().out.strip().splitlines()
    bound = load_config(REPO / "checkpoints" / "general_update_tele.yaml").model.max_tele_norm
    assert head.startswith(f"general_update_tele.pt: max_tele_norm {bound} over the network")
    per10 = [float(v) for v in line.split("per 10 steps ")[1].split(";")[0].split()]
    assert len(per10) == 10 and all(0 < v <= bound + 1e-6 for v in per10), "m2 moves, bounded"
    losses = [float(v) for v in line.rsplit("100 ", 1)[1].split(" / ")]
    assert losses[2] < losses[0], "the loss falls"


def test_the_tilt_saturation_counts_steps_past_the_bound(tmp_path):
    script = _script("tilt_saturation")
    arms = script.gradient_arms()
    assert "update_tele_diag-noguard-long-bound3-gradient" in arms and "update-long" not in arms
    arm = "update_tele_diag-noguard-long-bound3-gradient"
    params = REPO / "studies" / "general" / arm / "s0.pt"
    tilt, rows = script.measure(params, "small", problems=2, n_steps=6)
    assert tilt == 1.0, "the arm's tilt, from its checkpoint"
    assert rows.shape == (6, 5), "one row per step of m1"
    assert ((0 <= rows[:, :2]) & (rows[:, :2] <= 1)).all()
    assert (rows[:, 1] <= rows[:, 0]).all(), "past twice the tilt is past the tilt"
    assert (rows[:, 2] > 0).all(), "m1's log-steps differ between coordinates"
    assert ((0 < rows[:, 3]) & (rows[:, 3] < rows[:, 4])).all(), "between layers: a part"
    # the same m1 with its tilt per layer: at the first step (the same outputs) the spread
    # the bound sees is what is left within the layers
    from metateleport.checkpoint import load_checkpoint, save_atomic

    data = load_checkpoint(params, "params")
    data["model"]["update_tilt_over"] = "layer"
    save_atomic(data, tmp_path / "layer.pt")
    _, layer = script.measure(tmp_path / "layer.pt", "small", problems=2, n_steps=6)
    import numpy as np

    np.testing.assert_allclose(layer[0, 3:], rows[0, 3:])
    n = 2 * (10 * 10 + 10 * 10)  # two problems of the small suite, widths 10-10-10
    assert abs(layer[0, 2] ** 2 * (n - 1) - (rows[0, 4] - rows[0, 3])) < 1e-6 * rows[0, 4]
    from metateleport.studies.suites import suite_task
    from metateleport.tasks import make_family

    family = make_family(suite_task("distribution"))
    assert len(family.sample(16, 0, "val").groups) > 1, "the suite mixes architectures"
    tilt, mixed = script.measure(params, "distribution", problems=16, n_steps=3)
    assert mixed.shape == (3, 5), "one row per step, however many architectures"


def test_the_mixed_share_reads_which_term_carries_the_update(tmp_path):
    """scripts/mixed_share.py: Adam's share of the update is in [0, 1], and it is ~0 with
    the adam log-step output pushed to exp(-80) and ~1 with the gradient one pushed there."""
    from metateleport.checkpoint import load_checkpoint, save_atomic

    script = _script("mixed_share")
    arm = "update_tele_diag-noguard-long-bound3-mixed-tilt3"
    assert arm in script.mixed_arms() and "update-long" not in script.mixed_arms()
    params = REPO / "studies" / "general" / arm / "s0.pt"
    rows = script.measure(params, "small", problems=2, n_steps=6)
    assert rows.shape == (6, 2) and ((0 <= rows[:, 0]) & (rows[:, 0] <= 1)).all()
    data = load_checkpoint(params, "params")
    for off, want in ((1, 0.0), (0, 1.0)):
        data["state_dict"]["update_net.head.bias"][off] = -80.0
        data["state_dict"]["update_net.head.bias"][1 - off] = 0.0
        save_atomic(data, tmp_path / "pushed.pt")
        pushed = script.measure(tmp_path / "pushed.pt", "small", problems=2, n_steps=3)
        assert abs(pushed[:, 0] - want).max() < 1e-6
        assert (pushed[:, 1] < -40 if off == 1 else pushed[:, 1] > 40).all()
    with pytest.raises(ValueError, match="not mixed"):
        other = REPO / "studies" / "general" / "update_tele_diag-noguard-long-bound3-gradient"
        script.measure(other / "s0.pt", "small", problems=2, n_steps=3)


def test_the_done_when_rows_agree_with_the_per_suite_tables():
    """general_verdict counts what the per-suite tables show, computed apart: diverged
    problems, suites with a median Adam-equivalent of 10x or more, suites lower than the
    arm's LSTM(update) with the interval excluding 1, and the real-data differences."""
    from metateleport.studies.general_tables import real_table, shipped_table
    from metateleport.studies.general_verdict import CANDIDATES, done_when_table

    summaries = REPO / "studies"
    table = done_when_table(summaries)
    checked = 0
    for arm, update in CANDIDATES.items():
        rows = [r for r in table.splitlines() if r.startswith(f"| {general.ARMS[arm][2]} |")]
        per_suite = shipped_table(summaries, arm, (update,)).splitlines()[2:]
        if not per_suite:
            assert not rows, f"{arm} has no scored run but a done-when row"
            continue
        cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
        suites = [[c.strip() for c in r.strip("|").split(" | ")] for r in per_suite]
        diverged = sum(int(r[6].split("/")[0]) for r in suites)
        problems = sum(int(r[6].split("/")[1]) for r in suites)
        assert cells[2] == f"{diverged}/{problems}"
        fast = sum(r[8].startswith(">") or float(r[8].split("x")[0]) >= 10 for r in suites)
        assert cells[6] == f"{fast} of {len(suites)}"
        # "-": its LSTM(update) has no run on the suite yet, no comparison
        lower = sum(r[5] != "-" and float(r[5].split("[")[1].split(",")[1].strip(" ]")) < 1
                    for r in suites)
        assert cells[5].startswith(f"{lower} / ")
        real = real_table(summaries, (arm,)).splitlines()[2:]
        for name, cell in zip(("breast_cancer", "digits"), cells[8:]):
            want = [r for r in real if r.startswith(f"| {name} |")]
            assert cell == (want[0].split(" | ")[7] if want else "-")
        checked += 1
    assert checked >= 3, "the committed candidates are scored"


def test_the_coordinate_scale_diagnosis_normalizes_once_per_problem():
    """Its 'Adam, one v per problem' takes, at the first step, -lr g / RMS(g) over each
    problem's coordinates (norm lr sqrt(N)), where Adam takes -lr sign(g) per coordinate."""
    from metateleport.inner import StepContext
    from metateleport.mlp import mlp_loss_and_grad
    from metateleport.tasks import MLPTaskFamily

    script = _script("coordinate_scale_diagnosis")
    p = MLPTaskFamily(widths=(5, 4, 3), n_samples=4, dtype=torch.float64).sample(3, 0, "val")
    _, grads = mlp_loss_and_grad(p.weights, p.X, p.Y, p.slope)
    opt = script.ProblemAdam(lr=0.01)
    deltas, _ = opt.update(p.weights, grads, opt.init_state(p), StepContext(0, p))
    flat = torch.cat([d.flatten(1) for d in deltas], 1)
    g = torch.cat([x.flatten(1) for x in grads], 1)
    rms = g.pow(2).mean(1, keepdim=True).sqrt()
    torch.testing.assert_close(flat, -0.01 * g / rms)
    assert not torch.allclose(flat.abs(), torch.full_like(flat, 0.01)), "not Adam's sign step"


def test_update_alignment_reads_sgd_as_aligned_and_a_preconditioner_as_spread():
    """scripts/update_alignment.py: a plain gradient step has cos 1 and spread 0, whatever its
    size; a positive diagonal preconditioner D keeps cos > 0 and has spread std(log D); the
    coordinates with a zero gradient are left out of both; a step that did not move is None;
    tuned SGD on real digits measures as aligned through the whole loop."""
    import functools

    script = _script("update_alignment")
    g = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])
    cos, spread = script.step_geometry(-0.3 * g, g)
    assert cos == pytest.approx(1.0) and spread == pytest.approx(0.0, abs=1e-12)
    d = torch.tensor([1.0, 4.0, 0.25, 7.0, 2.0])
    step = -d * g
    step[3] = 5.0  # a zero-gradient coordinate that moved: not counted
    cos, spread = script.step_geometry(step, g)
    seen = g != 0
    want = float(-(step[seen] @ g[seen]) / (step[seen].norm() * g[seen].norm()))
    assert cos == pytest.approx(want) and 0 < cos < 1
    assert spread == pytest.approx(float(d[seen].double().log().std()))
    assert script.step_geometry(torch.zeros(5), g) is None
    assert script.step_geometry(-g, torch.zeros(5)) is None
    # the spread of a part of the coordinates: a preconditioner on the first three only
    part = -g * torch.tensor([1.0, 4.0, 0.25, 1.0, 1.0])
    assert script.log_step_spread(part[:3], g[:3]) == pytest.approx(
        float(torch.tensor([1.0, 4.0, 0.25]).log().std()))
    assert script.log_step_spread(part[3:], g[3:]) != script.log_step_spread(part[3:], g[3:])
    assert script.log_step_spread(-torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])) == 0
    sgd = script.measure(functools.partial(torch.optim.SGD, lr=0.5), 1000, teleport=False)
    assert sgd["cos"] == pytest.approx(1.0, abs=1e-6) and sgd["spread"] < 1e-3
    assert sgd["spread, first layer"] < 1e-3 and sgd["spread, later layers"] < 1e-3
    adam = script.measure(functools.partial(torch.optim.Adam, lr=0.01), 1000, teleport=False)
    assert adam["cos"] < 0.95 and adam["spread"] > 0.1
    assert adam["spread, first layer"] > 0.1 and adam["spread, later layers"] > 0.1
    assert 0 <= sgd["accuracy"] <= 1 and sgd["training loss"] > 0
    with pytest.raises(SystemExit):
        script.main(["--problems", "0"])


def test_first_layer_tilt_changes_the_bound_at_test_time_and_restores_it():
    """scripts/first_layer_tilt.py: a variant sets the rule's tilt attributes only inside its
    block, and cutting every layer's tilt from 3 to 1 makes the tilt-3 arm's m1 slower on the
    distribution's validation problems (a higher validation score) while its accuracy stays a
    share; the script refuses an arm that has no tilt."""
    script = _script("first_layer_tilt")
    from metateleport.learned import LearnedOptimizer

    rule = LearnedOptimizer("update", update_input="rms", update_form="gradient",
                            update_tilt=3.0).rule
    with script.changed(rule, {"tilt": 1.0, "tilt_first": 3.0, "tilt_over": "layer"}) as r:
        assert (r.tilt, r.tilt_first, r.tilt_over) == (1.0, 3.0, "layer")
    assert (rule.tilt, rule.tilt_first, rule.tilt_over) == (3.0, None, "problem")
    names = ("as trained", "every layer at tilt 1")
    got = script.measure_seed(script.ARM, 0, REPO / "studies", problems=1,
                              variants={k: script.VARIANTS[k] for k in names})
    assert got[names[1]]["validation"] > got[names[0]]["validation"] + 0.3
    assert all(0 <= got[k]["accuracy"] <= 1 for k in names)
    with pytest.raises(SystemExit):
        script.main(["--arm", "update-long"])


def test_the_paper_gap_probe_reads_the_loss_at_its_steps_and_pairs_per_problem():
    """scripts/paper_gap_probe.py: at_steps takes row s of the run's losses (row 0 the start)
    for every s in STEPS, cell reads the paired ratio of two runs per problem, and changed
    sets m1's rule as a row of CHANGES says."""
    probe = _script("paper_gap_probe")
    from metateleport.checkpoint import load_optimizer
    from metateleport.evaluation.running import score
    from metateleport.studies.suites import suite_task
    from metateleport.tasks import make_family

    problems = make_family(suite_task("paper")).sample(3, 0, "val")
    opt = load_optimizer(REPO / "checkpoints" / "update.pt")[0]
    full = score({"o": opt}, problems, max(probe.STEPS))["o"].losses
    got = probe.at_steps(opt, problems)
    assert got.shape == (len(probe.STEPS), 3)
    torch.testing.assert_close(got, full[list(probe.STEPS)])
    assert (got[-1] < got[0]).all()
    last = got[-1][None]
    assert probe.cell(2 * last, last) == "2.00 [2.00, 2.00]"
    assert probe.cell(last, 4 * last) == "0.25 [0.25, 0.25]"
    # a change multiplies m1's step and sets its tilt, on that optimizer alone
    shipped = REPO / "checkpoints" / "general_update_tele.pt"
    plain = load_optimizer(shipped)[0]
    opt = probe.changed(load_optimizer(shipped)[0], {"step": 2.0, "tilt": 8.0, "tilt_first": 3.0})
    assert opt.rule.step == 2 * plain.rule.step
    assert (opt.rule.tilt, opt.rule.tilt_first) == (8.0, 3.0) != (plain.rule.tilt,
                                                                 plain.rule.tilt_first)


def test_a_test_time_arm_takes_the_source_iterate_and_rescores_validation(tmp_path,
                                                                          monkeypatch):
    from metateleport.checkpoint import load_checkpoint, load_optimizer
    from metateleport.config import config_from_dict
    from metateleport.inner import run
    from metateleport.trainer import MetaTrainer, validation_score
    from metateleport.training import train_run

    own = ["model.tele_group=diag", "model.tele_norm=null", "train.batch_size=2",
           "train.n_steps=4", "train.unroll=2", "train.trajectories=4", "train.val_problems=2"]
    cfg = config_from_dict({"model": {"tele_group": "diag", "tele_norm": None},
                            "task": {"unit_span": 10.0},
                            "train": {"batch_size": 2, "n_steps": 4, "unroll": 2,
                                      "trajectories": 4, "val_problems": 2}})
    train_run(cfg, tmp_path / "run", progress=False)
    src = tmp_path / "general" / "src"
    src.mkdir(parents=True)
    shutil.copyfile(tmp_path / "run" / "params.pt", src / "s0.pt")
    (src / "s0.json").write_text(json.dumps({"validation_score": 9.0, "chosen_meta_step": 4}))
    arms = {"src": ("general_update_tele", own, "src", [0]),
            "src-b": ("general_update_tele", own + ["model.balance_first=true"], "b", [0]),
            "src-bad": ("general_update_tele", own + ["train.n_steps=8"], "bad", [0])}
    monkeypatch.setattr(general_runs, "ARMS", arms)
    monkeypatch.setattr(general_runs, "TEST_TIME", {"src-b": "src", "src-bad": "src"})
    got = general_runs.train_one("src-b", 0, tmp_path / "runs", tmp_path, REPO)
    assert got["derived_from"] == "src" and got["test_time"] == ["model.balance_first=true"]
    assert got["chosen_meta_step"] == 4
    a = load_checkpoint(src / "s0.pt", "params")
    b = load_checkpoint(tmp_path / "general" / "src-b" / "s0.pt", "params")
    assert b["model"] == {**a["model"], "balance_first": True}
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    # the validation score is the changed optimizer's on the run's own validation problems
    opt, _ = load_optimizer(tmp_path / "general" / "src-b" / "s0.pt")
    assert opt.balance_first
    val = MetaTrainer(config_from_dict(b["config"])).val_problems
    assert got["validation_score"] == validation_score(run(opt, val, 4).losses)
    assert json.loads((tmp_path / "general" / "src-b" / "s0.json").read_text()) == got
    with pytest.raises(ValueError, match="only model options"):
        general_runs.train_one("src-bad", 0, tmp_path / "runs", tmp_path, REPO)


def test_a_speedup_just_below_the_goal_never_reads_as_the_goal():
    from metateleport.studies.general_tables import speed_text

    # a median of two problems' speedups (9.91 and 10.0) is 9.955: rounded it read "10.0x"
    # while general_verdict counted it below the 10x
    assert speed_text(9.955, 100) == "9.9x"
    assert speed_text(10.0, 100) == "10.0x" and speed_text(5.9, 100) == "5.9x"
    assert speed_text(float("inf"), 100) == ">10x"


def test_the_width_cost_probe_times_the_arm_it_is_given_and_refuses_bad_sizes(monkeypatch,
                                                                                capsys):
    probe = _script("lstm_width_cost")
    with pytest.raises(SystemExit) as exit_info:
        probe.main(["--sizes", "0"])
    assert exit_info.value.code == 2 and "--sizes" in capsys.readouterr().err
    calls = []

    def fake(config, batch, windows, extra):
        calls.append((config, extra))
        size = int(extra[-1].split("=")[1])
        return {"tps": 1000.0 / size, "cpu_tps": 2000.0 / size}

    monkeypatch.setattr(probe, "bench_train", fake)
    assert probe.main(["--sizes", "20", "40"]) == 0
    config, overrides, *_ = general.ARMS[probe.SHIPPED]
    assert [c for c, _ in calls] == [config, config]
    # the arm's own overrides, then one thread and the width, which replaces any of the arm's
    assert calls[1][1] == [*overrides, "train.threads=1", "model.hidden_size=40"]
    assert "| 40 x 2 | 25 | 50 | 2.00x |" in capsys.readouterr().out


def test_the_frontier_leaves_out_gl_specialists_and_needs_both_criteria(tmp_path):
    """A diag arm is on the frontier's 'both' only when every specialist row outside the gl
    group is within 2x at the median and every real set is at most 0.03 below the better hand
    optimizer; a gl specialist far below it does not count, and a gl arm has no row."""
    from metateleport.studies.general_verdict import frontier_table

    root = tmp_path / "general"
    # update.pt (not gl) at [0.1, 0.2]; paper_update_tele.pt (gl) 100x lower
    _suite_summary(root / "specialists", "update-paper.json", [0.1, 0.2], [4.0, 8.0], [1, 1])
    _suite_summary(root / "specialists", "paper_update_tele-paper.json", [0.001, 0.002],
                   [4.0, 8.0], [1, 1])
    hand = {"sgd": {"final": [0.1, 0.1], "accuracy": [0.8, 0.8]},
            "adam": {"final": [0.1, 0.1], "accuracy": [0.7, 0.7]}}
    # the direct bound-1 arm: 1.5x update.pt, accuracy 0.01 below SGD's; the bound-3 arm: 3x
    # update.pt, level with SGD; the gl arm: level on both, but not in the diag group
    for arm, loss, acc in (("update_tele_diag-noguard-long", [0.15, 0.3], 0.79),
                           ("update_tele_diag-noguard-long-bound3", [0.3, 0.6], 0.8),
                           ("update_tele-noguard", [0.1, 0.2], 0.8)):
        for s in (0, 1):
            _suite_summary(root / arm, f"s{s}-paper.json", loss, [4.0, 8.0], [2, 2])
            for name in ("breast_cancer", "digits"):
                (root / arm / f"s{s}-real-{name}.json").write_text(json.dumps({
                    **hand, "learned": {"final": [0.05, 0.05], "accuracy": [acc, acc]}}))
    rows = {r.split(" | ")[0].lstrip("| "): r.split(" | ")
            for r in frontier_table(tmp_path).splitlines()[2:]}
    assert set(rows) == {general.ARMS[a][2] for a in ("update_tele_diag-noguard-long",
                                                     "update_tele_diag-noguard-long-bound3")}
    near = rows[general.ARMS["update_tele_diag-noguard-long"][2]]
    assert near[1:4] == ["2", "1 of 1", "1.50x update.pt (shipped) on paper"]
    assert near[4].startswith("-0.010 [") and near[-1] == "yes |"
    far = rows[general.ARMS["update_tele_diag-noguard-long-bound3"][2]]
    assert far[2:4] == ["0 of 1", "3.00x update.pt (shipped) on paper"] and far[-1] == "no |"
    # the same arm 0.04 below SGD on one real set: no longer both
    for s in (0, 1):
        (root / "update_tele_diag-noguard-long" / f"s{s}-real-digits.json").write_text(
            json.dumps({**hand, "learned": {"final": [0.05, 0.05], "accuracy": [0.76, 0.76]}}))
    near = next(r for r in frontier_table(tmp_path).splitlines()
                if r.startswith(f"| {general.ARMS['update_tele_diag-noguard-long'][2]} |"))
    assert near.endswith("| no |")
