"""The runs of a study: meta-training one (arm, seed), scoring it, and its committed summary.

Run (arm, seed) of a study trains configs/<config>.yaml into RUNS/<study>/<arm>/s<seed>
(resumed when interrupted) and is scored on PROBLEMS validation and PROBLEMS test problems of
its own family (seed 0 of each stream: the problems eval_meta.py uses). Its summary, small and
committed, goes to SUMMARIES/<study>/<arm>/s<seed>.json: the resolved config, the final loss of
every problem, the median test curve, ms per step. A run whose summary exists is not run again,
so a stopped study goes on from there, on any machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
import yaml

from ..checkpoint import load_optimizer
from ..evaluation import score
from ..inner import Teleporting
from ..stats import quantile
from ..tasks import make_family
from ..teleport import BalanceTeleport, Schedule
from .arms import PROBLEMS, STUDIES, seeds_of

__all__ = ["load_runs", "run_one", "run_studies", "score_run", "train", "write_summary"]


def train(config: str, seed: int, folder: Path, overrides: Sequence[str], repo: Path) -> Path:
    """Meta-train ``repo``/configs/<config>.yaml at ``seed`` into ``folder`` (log beside it) with
    ``repo``/train_meta.py, one thread, resuming an interrupted run; a finished one (params.pt
    present) is reused as it is. Returns the path of its params.pt."""
    params = folder / "params.pt"
    if params.exists():
        return params
    cmd = [sys.executable, str(repo / "train_meta.py"), "--config",
           str(repo / "configs" / f"{config}.yaml"), "--out", str(folder), "--seed", str(seed),
           "--no-progress", "--set", "train.threads=1"]
    for item in overrides:
        cmd += ["--set", item]
    if (folder / "checkpoints").exists():
        cmd.append("--resume")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.log", "a") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=repo)
    return params


@torch.no_grad()
def score_run(params: Path, problems: int = PROBLEMS) -> dict[str, Any]:
    """Final losses of every validation and test problem, the median test curve and the time
    per step; for an LSTM(update) run also its test losses with a balancing teleport after the
    first update (the update rule as trained, balanced at test time only). Families with
    held-out samples add the optimizee's held-out loss and accuracy per problem."""
    opt, meta = load_optimizer(params)
    family = make_family(meta["task"])
    n_steps = meta["config"]["train"]["n_steps"]
    out: dict[str, Any] = {"n_steps": n_steps}
    skip = getattr(opt.group_net, "skip", None)
    if skip is not None:
        # the learned a of T_ii += a * r_i (the balance signal is the first extra input)
        out["balance_skip_weight"] = float(skip.weight[0, 0])
    rules = {"": opt}
    if meta["variant"] == "update":
        rules["plus_balance_"] = Teleporting(opt, BalanceTeleport(), Schedule(at=(0,)))
    for split in ("val", "test"):
        # the balanced update rule only on the test problems: it is reported, never selected
        chosen = rules if split == "test" else {"": opt}
        for prefix, scored in score(chosen, family.sample(problems, 0, split), n_steps).items():
            out[f"{prefix}{split}_final"] = [float(v) for v in scored.final]
            for key, values in (scored.held_out or {}).items():
                out[f"{prefix}{split}_held_out_{key}"] = [float(v) for v in values]
            if split == "test" and not prefix:
                out["test_median_curve"] = [float(v) for v in quantile(scored.losses, 0.5, 1)]
                out["ms_per_step"] = 1000 * float(scored.seconds[-1]) / n_steps
    return out


def run_one(study: str, arm: str, seed: int, runs: Path, summaries: Path, repo: Path) -> dict:
    """The summary of (arm, seed) of ``study``: read from ``summaries`` if it is there, else
    trained into ``runs``, scored, written and logged in ``summaries``/<study>/study.log."""
    summary = summaries / study / arm / f"s{seed}.json"
    if summary.is_file():
        return json.loads(summary.read_text())
    config, overrides, label = STUDIES[study]["arms"][arm]
    folder = runs / study / arm / f"s{seed}"
    start = time.time()
    params = train(config, seed, folder, overrides, repo)
    seconds = time.time() - start
    if STUDIES[study].get("keep_params"):
        # committed beside the summary, so that later scoring needs no run folder
        summary.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(params, summary.with_suffix(".pt"))
    data = {"study": study, "arm": arm, "label": label, "seed": seed, "config_file": config,
            "overrides": overrides, "config": yaml.safe_load((folder / "config.yaml").read_text()),
            "train_seconds_this_session": seconds, **score_run(params)}
    write_summary(summary, data, summaries / study / "study.log",
                  f"{arm} seed {seed}: trained in {seconds:.0f} s this session; test median "
                  f"{float(quantile(data['test_final'], 0.5)):.4g}")
    return data


def write_summary(summary: Path, data: dict, log: Path, line: str) -> None:
    """Write a finished run's summary atomically (a stopped session leaves none or all of it)
    and log ``line``, time-stamped, in the study's log."""
    summary.parent.mkdir(parents=True, exist_ok=True)
    tmp = summary.with_suffix(".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(summary)
    with open(log, "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def run_studies(studies: Sequence[str], arms: Sequence[str] | None, jobs: int, runs: Path,
                summaries: Path, repo: Path) -> None:
    """Every missing run of ``studies`` (only of ``arms``, if given), ``jobs`` at once."""
    # seed-major, so that a stopped session leaves comparable arms
    todo = [(study, arm, seed) for study in studies
            for seed in sorted({s for a in STUDIES[study]["arms"] for s in seeds_of(study, a)})
            for arm in STUDIES[study]["arms"]
            if (arms is None or arm in arms) and seed in seeds_of(study, arm)]
    with ThreadPoolExecutor(jobs) as pool:
        for f in [pool.submit(run_one, *job, runs, summaries, repo) for job in todo]:
            f.result()


def load_runs(study: str, summaries: Path) -> dict[str, dict[int, dict]]:
    """arm -> seed -> summary, for the finished runs of ``study`` in ``summaries``."""
    runs: dict[str, dict[int, dict]] = {}
    for arm in STUDIES[study]["arms"]:
        for seed in seeds_of(study, arm):
            f = summaries / study / arm / f"s{seed}.json"
            if f.is_file():
                runs.setdefault(arm, {})[seed] = json.loads(f.read_text())
    return runs
