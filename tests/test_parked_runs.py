"""Parked runs (studies/parked.py): an unfinished run parked on one machine resumes on another
to the parameters of the uninterrupted run, with its whole validation history; the study's
orchestrator parks only unfinished runs and drops a parked run once it has finished."""

import json
from pathlib import Path

import torch

from metateleport.checkpoint import latest_full, load_checkpoint, save_atomic
from metateleport.studies import general_runs
from metateleport.studies.parked import PARKED, park, unpark, validation_history
from metateleport.training import train_run
from tests.test_training import tiny

REPO = Path(__file__).resolve().parents[1]


def test_a_run_parked_on_one_machine_resumes_on_another_to_the_uninterrupted_run(tmp_path):
    whole = train_run(tiny(), tmp_path / "whole", progress=False)
    assert whole.done and whole.meta_step == 6
    train_run(tiny(), tmp_path / "a" / "run", progress=False, max_meta_steps=3)
    dest = tmp_path / "summaries" / PARKED / "s0"
    assert park(tmp_path / "a" / "run", dest) == 3
    # only the newest full checkpoint, the config and the history so far are parked
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "checkpoints/full_00000003.pt", "config.yaml", "validation.json"]
    assert list(json.loads((dest / "validation.json").read_text())) == ["2"]
    # "another machine": a fresh runs root, the run folder missing
    other = tmp_path / "b" / "run"
    assert unpark(dest, other) == 3
    resumed = train_run(tiny(), other, resume=True, progress=False)
    assert resumed.done
    a = torch.load(tmp_path / "whole" / "params.pt")["state_dict"]
    b = torch.load(other / "params.pt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the history spans both machines and is the uninterrupted run's
    assert validation_history(other) == validation_history(tmp_path / "whole")
    assert sorted(validation_history(other)) == [2, 4, 6]


def test_park_and_unpark_never_go_back_to_an_older_checkpoint(tmp_path):
    run = tmp_path / "run"
    train_run(tiny(), run, progress=False, max_meta_steps=3)
    dest = tmp_path / PARKED / "s0"
    assert park(run, dest) == 3
    # the run folder behind the parked one (e.g. this machine kept an older copy): unparked
    older = tmp_path / "older"
    (older / "checkpoints").mkdir(parents=True)
    data = load_checkpoint(latest_full(run), "full")
    save_atomic(data, older / "checkpoints" / "full_00000001.pt")
    assert unpark(dest, older) == 3 and latest_full(older).name == "full_00000003.pt"
    # the run folder as new as the parked one: untouched; parking it again: nothing to do
    assert unpark(dest, run) is None
    assert park(run, dest) is None
    # no full checkpoint in the folder: nothing parked, the parked run kept
    (tmp_path / "empty").mkdir()
    assert park(tmp_path / "empty", dest) is None and latest_full(dest) is not None
    assert unpark(tmp_path / "nothing", tmp_path / "fresh") is None
    assert not (tmp_path / "fresh").exists()


def test_the_study_parks_unfinished_runs_only_and_drops_them_once_finished(tmp_path,
                                                                          monkeypatch):
    runs, summaries = tmp_path / "runs", tmp_path / "studies"
    for seed in (0, 1):
        train_run(tiny(), runs / "general" / "update" / f"s{seed}", progress=False,
                  max_meta_steps=2)
    (summaries / "general" / "update").mkdir(parents=True)
    (summaries / "general" / "update" / "s1.json").write_text("{}")  # seed 1 is finished
    monkeypatch.setattr(general_runs, "ORDER", [("update", 0), ("update", 1)])
    logged = []
    general_runs.park_all(runs, summaries, log=logged.append)
    parked = summaries / "general" / "update" / PARKED
    assert logged == ["update s0: parked at meta-step 2"]
    assert [p.name for p in parked.iterdir()] == ["s0"]

    # seed 0 trained to the end on another machine: unparked first, then dropped
    def train(config, seed, folder, overrides, repo):
        assert latest_full(folder).name == "full_00000002.pt", "resumes from the parked run"
        train_run(tiny(), folder, resume=True, progress=False)

    monkeypatch.setattr(general_runs, "train", train)
    data = general_runs.train_one("update", 0, tmp_path / "other", summaries, REPO)
    assert data["chosen_meta_step"] > 2
    assert (summaries / "general" / "update" / "s0.pt").is_file() and not parked.exists()
