"""bench --optim-only's code path (bench_timing.bench_optim): which checkpoints it times and
how, and its error on a missing one. No timing is asserted (speed is measured by the bench,
not by tests)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from metateleport import bench
from metateleport.bench_timing import GENERALISTS, bench_optim

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


def test_bench_optim_times_the_shipped_generalists_and_teleports_only_with_m2():
    res = bench_optim(steps=1, teleport_batch=8)
    assert res["parameters"] == 784 * 128 + 128 + 128 * 10 + 10
    timed = res["checkpoints"]
    assert list(timed) == [str(CHECKPOINTS / name) for name in GENERALISTS]
    update, tele = (timed[str(CHECKPOINTS / name)] for name in GENERALISTS)
    assert set(update) == {"step_wall_ms", "step_cpu_ms"}  # LSTM(update): no teleport
    assert set(tele) == {"step_wall_ms", "step_cpu_ms", "step_and_teleport_wall_ms",
                         "step_and_teleport_cpu_ms"}
    values = [res["adam_ms"], res["update_ms"], *update.values(), *tele.values()]
    assert all(math.isfinite(v) and v > 0 for v in values)


def test_bench_optim_takes_other_checkpoints():
    res = bench_optim(steps=1, teleport_batch=8, checkpoints=[CHECKPOINTS / "update.pt"])
    assert list(res["checkpoints"]) == [str(CHECKPOINTS / "update.pt")]


def test_a_missing_checkpoint_is_named(tmp_path, capsys):
    missing = tmp_path / "none.pt"
    with pytest.raises(SystemExit) as err:
        bench.main(["--optim-only", "--optim-checkpoints", str(missing)])
    assert err.value.code == 2
    assert f"no checkpoint file {missing}" in capsys.readouterr().err
