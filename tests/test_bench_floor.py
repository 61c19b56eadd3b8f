"""bench --floor's code path (bench_floor.py) on tiny sizes: it runs and its fields are sane.
No timing is asserted (speed is measured by the bench, not by tests)."""

from __future__ import annotations

import json
import math

import torch

from metateleport import bench
from metateleport.bench_floor import CLOCKS, bench_floor, lstm_flops


def test_lstm_flops_counts_the_gate_matmuls():
    # layer 1: 4H x (2 + H) multiply-adds, layer 2: 4H x 2H, per coordinate, 2 FLOPs each
    assert lstm_flops(1, 2, 20, 2) == 2 * 80 * 22 + 2 * 80 * 40 == 9920
    assert lstm_flops(101_770, 2, 20, 2) == 101_770 * 9920


def test_bench_floor_fields_on_tiny_sizes():
    res = bench_floor(sizes=(16, 64), matmul_size=16, rounds=1, steps=1, widths=(6, 4, 3))
    assert res["parameters"] == 6 * 4 + 4 + 4 * 3 + 3
    assert res["threads"] == torch.get_num_threads()
    assert math.isclose(res["step_lstm_forward_mflop"], lstm_flops(43, 2, 20, 2) / 1e6)
    for clock in CLOCKS:
        r = res[clock]
        assert set(r["lstm"]) == {"16", "64"}
        values = [r["matmul_gflops"], r["matmul_gflops_1thread"],
                  *(v for row in r["lstm"].values() for v in row.values()), *r["optim"].values()]
        assert all(math.isfinite(v) and v > 0 for v in values)
        o = r["optim"]
        assert math.isclose(o["learned_over_adam"], o["learned_ms"] / o["adam_ms"])
        assert math.isclose(o["learned_over_floor"], o["learned_ms"] / o["floor_ms"])


def test_bench_floor_flag(monkeypatch, tmp_path, capsys):
    real = bench_floor
    monkeypatch.setattr("metateleport.bench_floor.bench_floor",
                        lambda rounds: real(sizes=(8,), matmul_size=8, rounds=rounds, steps=1,
                                            widths=(4, 3, 2)))
    out = tmp_path / "floor.json"
    assert bench.main(["--floor", "--quick", "--threads", "1", "--json", str(out)]) == 0
    assert "the matmul floor" in capsys.readouterr().out
    assert set(json.loads(out.read_text())["floor"]) >= {"wall", "cpu", "parameters"}
