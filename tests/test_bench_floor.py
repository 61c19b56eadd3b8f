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
        # the forward's parts: one entry per kind, summed over the LSTM's 2 layers
        assert set(r["parts_ms"]) == {"matmul", "sigmoid", "tanh", "cell"}
        assert math.isclose(o["parts_ms"], sum(r["parts_ms"].values()))
        assert math.isclose(o["learned_over_parts"], o["learned_ms"] / o["parts_ms"])


def test_bench_floor_flag(monkeypatch, tmp_path, capsys):
    real = bench_floor
    monkeypatch.setattr("metateleport.bench_floor.bench_floor",
                        lambda rounds: real(sizes=(8,), matmul_size=8, rounds=rounds, steps=1,
                                            widths=(4, 3, 2)))
    out = tmp_path / "floor.json"
    assert bench.main(["--floor", "--quick", "--threads", "1", "--json", str(out)]) == 0
    assert "the matmul floor" in capsys.readouterr().out
    assert set(json.loads(out.read_text())["floor"]) >= {"wall", "cpu", "parameters"}


def test_memory_and_chunks_modes_pass_their_settings_to_fresh_workers(monkeypatch, tmp_path,
                                                                       capsys):
    calls = []

    def fake(name, batch, windows, threads, extra=None, chunk=None):
        calls.append((name, batch, tuple(extra or ()), chunk))
        tps = 100.0 * (2 if chunk else 1)
        return {"tps": tps, "cpu_tps": tps / 2,
                "peak_rss_mb": 500.0 if extra == ["train.recompute_lstm=true"] else 900.0}

    monkeypatch.setattr(bench, "_run_worker", fake)
    out = tmp_path / "m.json"
    assert bench.main(["--memory", "--quick", "--threads", "1", "--json", str(out)]) == 0
    assert {(b, e) for _, b, e, _ in calls} == {
        (b, (f"train.recompute_lstm={v}",)) for b in (8, 32) for v in ("false", "true")}
    data = json.loads(out.read_text())["memory"]["imbalanced_update_tele"]
    assert data["32/on"]["peak_rss_mb"] == 500.0 and data["32/off"]["peak_rss_mb"] == 900.0
    calls.clear()
    assert bench.main(["--chunks", "--quick", "--configs", "update", "--json", str(out)]) == 0
    from metateleport.networks import CoordinateLSTM

    assert {c for *_, c in calls} == {0, CoordinateLSTM.CHUNK}
    assert "update                      32" in capsys.readouterr().out
    assert json.loads(out.read_text())["chunks"]["update"]["32"]["median"] == {
        "one call": 100.0, f"chunks of {CoordinateLSTM.CHUNK}": 200.0}
    calls.clear()
    assert bench.main(["--fused", "--quick", "--configs", "lr_tele", "--json", str(out)]) == 0
    assert {e for _, _, e, _ in calls} == {("train.fused_lstm=false",), ("train.fused_lstm=true",)}
    assert json.loads(out.read_text())["fused"]["lr_tele"]["8"]["median_cpu"] == {
        "nn.LSTM": 50.0, "fused": 50.0}
    calls.clear()
    assert bench.main(["--frontier", "--quick", "--json", str(out)]) == 0
    from metateleport.studies.arms import FRONTIER_SIZES

    assert {(n, e) for n, _, e, _ in calls} == {
        ("update_tele", (f"model.hidden_size={h}", f"model.num_layers={k}"))
        for h, k in FRONTIER_SIZES}
    assert list(json.loads(out.read_text())["frontier"]["update_tele"]["32"]["median"])[0] == (
        "20 x 2")  # the present size first: the ratio printed is each run's last over it


def test_a_worker_command_carries_threads_overrides_and_chunk(monkeypatch):
    seen = {}

    class Done:
        stdout = '{"tps": 1.0}\n'

    def run(cmd, **kwargs):
        seen["cmd"] = cmd
        return Done()

    monkeypatch.setattr(bench.subprocess, "run", run)
    assert bench._run_worker("update", 32, 5, 1, ["train.recompute_lstm=true"], 0) == {"tps": 1.0}
    cmd = seen["cmd"]
    assert cmd[cmd.index("--worker") + 1:cmd.index("--worker") + 4] == ["update", "32", "5"]
    assert cmd[cmd.index("--threads") + 1] == "1"
    assert cmd[cmd.index("--worker-set") + 1] == "train.recompute_lstm=true"
    assert cmd[cmd.index("--lstm-chunk") + 1] == "0"


def test_lstm_chunk_flag_sets_the_chunk_of_every_lstm_built_after_it(monkeypatch):
    from metateleport.networks import CoordinateLSTM

    monkeypatch.setattr(CoordinateLSTM, "CHUNK", CoordinateLSTM.CHUNK)  # restored afterwards
    seen = []
    monkeypatch.setattr(bench, "_worker",
                        lambda *args: seen.append(CoordinateLSTM(2, 4).chunk))
    for flag, want in (("0", None), ("512", 512)):
        assert bench.main(["--lstm-chunk", flag, "--worker", "update", "8", "1"]) == 0
        assert seen[-1] == want


def _fake_reference(folder, body="    calls.append(n_run)\n"):
    """A folder shaped like the reference's learn-to-teleport, whose train_meta_opt records
    its calls."""
    folder.mkdir()
    for name in ("lstm.py", "teleportation.py"):
        (folder / name).write_text("")
    (folder / "gradient_descent_mlp.py").write_text(
        "calls = []\n\n\ndef train_meta_opt(dim, n_run=20, n_epoch=20, unroll=5, lr=1e-4, "
        "lr_meta=1e-3, learn_lr=True, learn_tele=True, learn_update=True, "
        "T_magnitude=0.01):\n"
        "    assert list(dim) == [20, 20, 20, 20] and n_epoch == 100 and unroll == 10\n"
        "    assert learn_tele and T_magnitude == 0.01\n"
        "    print('run', 0)\n" + body)
    return folder


def test_reference_worker_times_the_references_own_call(tmp_path, capsys):
    import sys

    from metateleport.bench_reference import reference_worker

    folder = _fake_reference(tmp_path / "learn-to-teleport")
    res = reference_worker(folder, 3)
    module = sys.modules.pop("gradient_descent_mlp")
    assert module.calls == [1, 3]  # one untimed trajectory, then the timed ones in one call
    assert res["trajectories"] == 3 and res["tps"] == 300 / res["seconds"] > 0
    assert "run" not in capsys.readouterr().out  # its prints are swallowed


def test_reference_errors_name_the_problem(tmp_path, capsys):
    import pytest

    from metateleport.bench_reference import check_reference

    with pytest.raises(ValueError, match="is not a directory"):
        check_reference(tmp_path / "nowhere")
    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "lstm.py").write_text("")
    with pytest.raises(ValueError, match="has no gradient_descent_mlp.py, teleportation.py"):
        check_reference(folder)
    with pytest.raises(SystemExit):
        bench.main(["--reference", str(folder)])
    assert "has no gradient_descent_mlp.py" in capsys.readouterr().err


def test_bench_reference_pairs_medians_per_clock(tmp_path, monkeypatch):
    from metateleport import bench_reference as br

    folder = _fake_reference(tmp_path / "ref")
    speeds = {"reference": iter([10, 30, 20]), "8": iter([100, 300, 200]),
              "32": iter([400, 100, 300])}

    seen = []

    def run(cmd):
        key = "reference" if "--reference-worker" in cmd else cmd[cmd.index("--worker") + 2]
        seen.append((key, [cmd[i + 1] for i, a in enumerate(cmd) if a == "--worker-set"]))
        tps = next(speeds[key])
        return {"tps": tps, "cpu_tps": 2 * tps}

    monkeypatch.setattr(br, "_run", run)
    res = br.bench_reference(folder, 1, batches=(8, 32), rounds=3,
                             overrides=["model.hidden_size=8", "train.fused_lstm=true"])
    # the overrides go to our workers only
    assert {k: s for k, s in seen} == {"reference": [], "8": ["model.hidden_size=8",
                                                            "train.fused_lstm=true"],
                                       "32": ["model.hidden_size=8", "train.fused_lstm=true"]}
    assert res["overrides"] == ["model.hidden_size=8", "train.fused_lstm=true"]
    assert res["median"]["wall"] == {"reference": 20, "ours_B8": 200, "ours_B32": 300}
    assert res["ratio"]["wall"] == {"ours_B8": 10.0, "ours_B32": 15.0}
    assert res["ratio"]["cpu"] == res["ratio"]["wall"]
