"""scripts/balance_first_probe.py: the balanced image of a batch of problems is the same
function on every input, its last hidden layer balanced and the rest less imbalanced, and the
probe writes its table."""

from __future__ import annotations

import torch

from metateleport.mlp import mlp_forward
from metateleport.studies.suites import suite_task
from metateleport.tasks import MixedProblems, make_family
from metateleport.teleport import balance_signal
from tests.test_studies import REPO, _script


def test_balanced_problems_keep_the_function_and_balance_the_last_layer():
    probe = _script("balance_first_probe")
    problems = make_family(suite_task("distribution")).sample(8, 0, "val").to(dtype=torch.float64)
    assert isinstance(problems, MixedProblems) and len(problems.groups) > 1
    out = probe.balanced(problems)
    for before, after in zip(problems.groups, out.groups):
        # other inputs than the batch: the move is exact for every input
        X = torch.randn_like(before.X) * 3
        torch.testing.assert_close(mlp_forward(after.weights, X, before.slope)[0],
                                   mlp_forward(before.weights, X, before.slope)[0])
        assert any(not torch.equal(a, b) for a, b in zip(after.weights, before.weights))
        # one sweep over the layers in order: the last hidden layer balanced exactly, an
        # earlier one left as the next layer's rescaling of its outgoing columns leaves it
        r_before, r_after = balance_signal(before.weights), balance_signal(after.weights)
        assert r_after[-1].abs().max() < 1e-6
        assert sum(r.abs().sum() for r in r_after) < 0.5 * sum(r.abs().sum() for r in r_before)


def test_the_probe_writes_its_table(tmp_path):
    probe = _script("balance_first_probe")
    out = tmp_path / "table.md"
    argv = ["--checkpoints", str(REPO / "checkpoints" / "general_update.pt"), "--suites",
            "unit_span10", "--problems", "2", "--out", str(out)]
    assert probe.main(argv) == 0
    text = out.read_text()
    assert " ".join(argv) in text
    rows = [r for r in text.splitlines() if r.startswith("| checkpoints/general_update.pt")]
    assert len(rows) == 1 and "| unit_span10 |" in rows[0]
