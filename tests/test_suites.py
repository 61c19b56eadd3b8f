"""The test suites and the Adam-equivalent speedup (metateleport.studies.suites)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from metateleport.config import config_from_dict
from metateleport.studies import suites

REPO = Path(__file__).resolve().parents[1]


def test_adam_equivalent_counts_the_steps_adam_needs():
    adam = torch.tensor([[10.0, 10.0, 10.0], [5.0, 9.0, float("nan")], [1.0, 8.0, 1.0]])
    got = suites.adam_equivalent(adam, torch.tensor([5.0, 1.0, 2.0]), n_steps=4)
    assert got[0] == 0.25 and math.isinf(got[1]) and got[2] == 0.5
    assert math.isinf(suites.adam_equivalent(adam, [float("inf")] * 3, 4)[0])


def test_every_suite_is_a_valid_task():
    for task in suites.SUITES.values():
        assert config_from_dict({"task": task}).task.family == task.get("family", "synthetic")


def test_score_suite_reports_losses_divergence_and_speedup(monkeypatch):
    monkeypatch.setattr(suites, "ADAM_CAP", 20)
    out = suites.score_suite(REPO / "checkpoints" / "update.pt", "small", problems=3,
                             n_steps=5)
    assert set(out) >= {"learned", "gd", "adam", "step_sizes"}
    assert len(out["learned"]["final"]) == 3 and out["learned"]["diverged"] == 0
    assert len(out["learned"]["adam_equivalent"]) == 3
    assert "refused_fraction" not in out["learned"]  # the shipped update.pt has no guard


def test_score_suite_can_put_a_guard_in_or_take_it_out(monkeypatch):
    """guard=None scores the guarded generalist without its guard (nothing refused, and the
    same losses as a run of its optimizer with the guard removed); a factor adds one to a
    checkpoint trained without (its refusals are then reported)."""
    monkeypatch.setattr(suites, "ADAM_CAP", 20)
    general = REPO / "checkpoints" / "general_update_tele.pt"
    kept = suites.score_suite(general, "small", problems=3, n_steps=5)
    off = suites.score_suite(general, "small", problems=3, n_steps=5, guard=None)
    assert "refused_fraction" in kept["learned"] and "refused_fraction" not in off["learned"]
    added = suites.score_suite(REPO / "checkpoints" / "update.pt", "small", problems=3,
                               n_steps=5, guard=2.0)
    assert 0.0 <= added["learned"]["refused_fraction"] <= 1.0
    # a guard of factor inf never refuses: the losses are those without a guard
    never = suites.score_suite(general, "small", problems=3, n_steps=5, guard=float("inf"))
    assert never["learned"]["refused_fraction"] == 0.0
    assert never["learned"]["final"] == off["learned"]["final"]


def test_score_suite_without_teleports_scores_m1_alone(monkeypatch, tmp_path):
    """teleport=False switches the teleports off: the losses change, and no longer depend on
    m2 (a checkpoint whose m2 is scrambled scores the same), while with teleports they do."""
    from metateleport.checkpoint import load_checkpoint, save_atomic

    monkeypatch.setattr(suites, "ADAM_CAP", 20)
    general = REPO / "checkpoints" / "general_update_tele.pt"
    data = load_checkpoint(general, "params")
    gen = torch.Generator().manual_seed(0)
    data["state_dict"] = {k: torch.randn(v.shape, generator=gen) if k.startswith("group_net")
                          else v for k, v in data["state_dict"].items()}
    scrambled = save_atomic(data, tmp_path / "scrambled.pt")

    def final(params, teleport):
        return suites.score_suite(params, "unit_span10", problems=3, n_steps=5,
                                  teleport=teleport)["learned"]["final"]

    alone = final(general, False)
    assert alone == final(scrambled, False)
    assert final(general, True) != alone and final(scrambled, True) != alone
