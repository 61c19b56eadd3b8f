"""The public reference's meta-training speed beside ours (``python -m metateleport.bench
--reference DIR``, issue 19's done-when).

DIR is a copy of the ``learn-to-teleport`` folder of Rose-STL-Lab/Teleportation-Optimization
(``gradient_descent_mlp.py``, ``lstm.py``, ``teleportation.py``). Its LSTM(update,tele) is
``train_meta_opt(dim, n_run, n_epoch=100, unroll=10, lr=1e-4, lr_meta=1e-3, learn_tele=True,
T_magnitude=0.01)`` with ``dim = [20, 20, 20, 20]``, the call of its ``run_mlp_regression.py``:
one trajectory of 100 inner steps at a time on the paper's task (20 samples, widths 20-20-20),
a meta-update every 10 steps. Its task-steps/s are ``n_run x 100 / seconds``, timed after one
untimed trajectory. Ours is ``bench_train`` of ``configs/update_tele.yaml`` (the same task,
K = 10) at each batch size. Every measurement runs in a fresh process with the same thread
count, in alternating rounds, and the median round is reported: only a ratio measured side by
side on one machine means anything (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["check_reference", "reference_worker", "bench_reference"]

#: the reference's network and schedule, as its run_mlp_regression.py calls train_meta_opt
REFERENCE_DIM = (20, 20, 20, 20)
REFERENCE_STEPS = 100
REFERENCE_CALL = {"unroll": 10, "lr": 1e-4, "lr_meta": 1e-3, "learn_tele": True,
                  "T_magnitude": 0.01}
#: our config with the same task and unroll
OURS = "update_tele"
#: the clocks reported, and the worker fields they come from: task-steps per second of wall
#: time, and per second of the process's CPU time (which a loaded machine's preemption does
#: not inflate; on 1 thread it is the undisturbed figure)
CLOCKS = {"wall": "tps", "cpu": "cpu_tps"}


def check_reference(path: Path) -> Path:
    """``path`` resolved, or a ValueError naming what is missing."""
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"--reference: {path} is not a directory (expected a copy of the "
                         "reference's learn-to-teleport folder)")
    missing = [f for f in ("gradient_descent_mlp.py", "lstm.py", "teleportation.py")
               if not (path / f).is_file()]
    if missing:
        raise ValueError(f"--reference: {path} has no {', '.join(missing)} (expected a copy of "
                         "the learn-to-teleport folder of Rose-STL-Lab/Teleportation-"
                         "Optimization)")
    return path


def reference_worker(path: Path, trajectories: int) -> dict:
    """Time the reference's LSTM(update,tele) meta-training in this process: one untimed
    trajectory, then ``trajectories`` timed ones (one call, so that its meta-optimizers keep
    learning across them as in its own script). Its prints are swallowed."""
    path = check_reference(path)
    sys.path.insert(0, str(path))
    try:
        import gradient_descent_mlp as reference
    finally:
        sys.path.remove(str(path))
    if not hasattr(reference, "train_meta_opt"):
        raise ValueError(f"--reference: {path / 'gradient_descent_mlp.py'} has no "
                         "train_meta_opt")
    dim = list(REFERENCE_DIM)
    with contextlib.redirect_stdout(io.StringIO()):
        reference.train_meta_opt(dim, n_run=1, n_epoch=REFERENCE_STEPS, **REFERENCE_CALL)
        start, start_cpu = time.perf_counter(), time.process_time()
        reference.train_meta_opt(dim, n_run=trajectories, n_epoch=REFERENCE_STEPS,
                                 **REFERENCE_CALL)
        seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    steps = trajectories * REFERENCE_STEPS
    return {"tps": steps / seconds, "cpu_tps": steps / cpu, "seconds": seconds,
            "trajectories": trajectories}


def _run(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_reference(path: Path, threads: int = 0, batches: tuple[int, ...] = (1, 8, 32),
                    rounds: int = 3, trajectories: int = 5, windows: int = 5,
                    overrides: list[str] | None = None) -> dict:
    """Task-steps/s of the reference (``trajectories`` per timing) and of ours at each of
    ``batches`` (``windows`` meta-steps per block; ``overrides`` of our config, e.g.
    "train.fused_lstm=true"), each in a fresh process, ``rounds`` alternating rounds; medians,
    and ours over the reference's."""
    path = check_reference(path)
    base = [sys.executable, "-m", "metateleport.bench"]
    if threads:
        base += ["--threads", str(threads)]
    keys = ["reference", *(f"ours_B{b}" for b in batches)]
    runs = {clock: {k: [] for k in keys} for clock in CLOCKS}
    for _ in range(rounds):
        for key in keys:
            cmd = (["--reference-worker", str(path), str(trajectories)] if key == "reference"
                   else ["--worker", OURS, key.removeprefix("ours_B"), str(windows),
                         *(a for item in overrides or [] for a in ("--worker-set", item))])
            res = _run(base + cmd)
            for clock, field in CLOCKS.items():
                runs[clock][key].append(res[field])
    out = {"config": OURS, "overrides": list(overrides or []), "reference_dir": str(path),
           "rounds": rounds,
           "threads": threads, "tps": runs, "median": {}, "ratio": {}}
    for clock in CLOCKS:
        med = out["median"][clock] = {k: sorted(v)[len(v) // 2] for k, v in runs[clock].items()}
        out["ratio"][clock] = {k: v / med["reference"] for k, v in med.items()
                               if k != "reference"}
    return out


def print_reference(res: dict) -> None:
    """The lines ``bench --reference`` prints."""
    print(f"meta-training LSTM(update,tele) on the paper's task, task-steps/s, median of "
          f"{res['rounds']} alternating rounds (each a fresh process); reference: "
          f"{res['reference_dir']}")
    for clock in CLOCKS:
        med = res["median"][clock]
        ours = f"configs/{res['config']}.yaml" + "".join(
            f" --set {item}" for item in res.get("overrides", []))
        print(f"[{clock} time] reference {med['reference']:.0f}; ours ({ours}) " + ", ".join(
                  f"B = {key.removeprefix('ours_B')}: {med[key]:.0f} ({ratio:.1f}x)"
                  for key, ratio in res["ratio"][clock].items()))
