"""The generalist study's runs (metateleport.studies.general's registry): meta-training each
(arm, seed) (``train_one``, ``train_all``), scoring the chosen iterates on the test suites and
real sets (``score_all``), the shipped and the family studies' specialists on theirs, the
test-time controls (the guard swapped: ``GUARD_SWAP``; m1 alone: ``TELE_OFF``), recording the
validation histories, and shipping the generalists (``shipped_choice``, ``ship_generalist``).
Each writes committed summaries under studies/general/, which general_tables.py reads; every
name of ``__all__`` is importable from metateleport.studies.general too.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from ..checkpoint import load_checkpoint, save_atomic
from ..stats import median
from .general import (
    ACCURACY,
    ACCURACY_MARGIN,
    ARMS,
    ORDER,
    SHIPPED,
    SPECIALISTS,
    STUDY,
    TEST_TIME,
)
from .parked import PARKED, park, unpark, validation_history
from .realdata import REAL_SETS, score_real, score_validation, validation_gap
from .runs import train, write_summary
from .suites import SUITES, score_suite

__all__ = ["GUARD_SWAP", "STUDY_SPECIALISTS", "TELE_OFF", "committed", "derive_one",
           "park_all", "real_validation_gap",
           "real_validation_gaps", "record_histories", "score_all", "score_guard_swap",
           "score_specialists", "score_study_specialists", "score_tele_off", "ship_generalist",
           "shipped_choice", "train_all", "train_one", "validation_history", "within_margin"]


def real_validation_gap(summaries: Path, arm: str, seed: int) -> float | None:
    """The run's held-out accuracy on real data's validation problems below the better tuned
    hand optimizer's, the worse of REAL_SETS (realdata.validation_gap of its committed
    ``s<seed>-val-real-<set>.json``); None until every set is measured."""
    found = [summaries / STUDY / arm / f"s{seed}-val-real-{name}.json" for name in REAL_SETS]
    if not all(f.is_file() for f in found):
        return None
    return min(validation_gap(json.loads(f.read_text())) for f in found)


def real_validation_gaps(summaries: Path, arm: str) -> dict[int, float] | None:
    """seed -> real_validation_gap for every seed of ``arm``; None until every seed is trained
    and measured."""
    gaps = {s: real_validation_gap(summaries, arm, s) for s in ARMS[arm][3]}
    return None if None in gaps.values() else gaps


def within_margin(gaps: dict[int, float]) -> bool:
    """SHIPPED's condition on real data: the median seed of real_validation_gaps within
    ACCURACY_MARGIN of the best tuned hand optimizer's accuracy."""
    return median(list(gaps.values())) >= -ACCURACY_MARGIN


def shipped_choice(summaries: Path, name: str) -> tuple[str, int]:
    """(arm, seed) that checkpoints/``name``.pt ships, by SHIPPED's rule, from the committed
    summaries: of its arms with every seed trained and measured on real data's validation
    problems, those whose median real_validation_gap is at least -ACCURACY_MARGIN; of these
    the arm with the lowest median validation score, and of its seeds within the margin the
    one with the lowest. StudyError if no arm qualifies."""
    from .arms import StudyError
    from .selection import best_seed

    scores = {}
    for arm in SHIPPED[name][0]:
        done = _by_seed(summaries / STUDY / arm, ARMS[arm][3])
        gaps = real_validation_gaps(summaries, arm)
        if len(done) < len(ARMS[arm][3]) or gaps is None or not within_margin(gaps):
            continue
        scores[arm] = {s: d["validation_score"] for s, d in done.items()}, {
            s: d["validation_score"] for s, d in done.items() if gaps[s] >= -ACCURACY_MARGIN}
    if not scores:
        raise StudyError(f"{name}: none of {SHIPPED[name][0]} has all its seeds trained and "
                         f"measured on real data's validation problems within "
                         f"{ACCURACY_MARGIN} of the best tuned hand optimizer's accuracy")
    arm = min(scores, key=lambda a: median(list(scores[a][0].values())))
    return arm, best_seed(scores[arm][1])


def ship_generalist(summaries: Path, dest: Path, name: str) -> str:
    """Write ``dest``/NAME.pt (the chosen iterate of shipped_choice, with SHIPPED's guard in
    its model and config, and where it came from under "shipped") and NAME.yaml (that
    config). Returns the line to print."""
    from ..checkpoint import save_atomic

    arm, seed = shipped_choice(summaries, name)
    guard = SHIPPED[name][1]
    data = load_checkpoint(summaries / STUDY / arm / f"s{seed}.pt", "params")
    trained = data["model"].get("guard")
    data["model"]["guard"] = data["config"]["model"]["guard"] = guard
    data["shipped"] = {"study": STUDY, "arm": arm, "seed": seed, "trained_guard": trained,
                       "guard": guard}
    dest.mkdir(parents=True, exist_ok=True)
    save_atomic(data, dest / f"{name}.pt")
    how = "without the loss guard" if trained is None else f"with loss guard {trained:g}"
    where = f"studies/general/{arm}, seed {seed}"
    if arm in TEST_TIME:  # another arm's iterate, model options changed at test time
        where = (f"studies/general/{TEST_TIME[arm]}, seed {seed}; "
                 f"{', '.join(ARMS[arm][1][len(ARMS[TEST_TIME[arm]][1]):])} at test time: {arm}")
    header = "" if trained == guard and arm not in TEST_TIME else (
        f"# meta-trained {how} ({where}); shipped with model.guard {guard:g} at test time\n")
    (dest / f"{name}.yaml").write_text(header + yaml.safe_dump(data["config"], sort_keys=False))
    return (f"shipped general/{arm} seed {seed} (validation score "
            f"{data['validation_score']:.4g}) as {dest / name}.pt, guard {guard:g}")


def train_one(arm: str, seed: int, runs: Path, summaries: Path, repo: Path) -> dict[str, Any]:
    """The summary of (arm, seed): read if committed, else trained (or resumed) into ``runs``
    and written, with the chosen iterate, into ``summaries``/general/<arm>/."""
    out = summaries / STUDY / arm
    summary = out / f"s{seed}.json"
    if summary.is_file():
        return json.loads(summary.read_text())
    if arm in TEST_TIME:
        return derive_one(arm, seed, runs, summaries, repo)
    config, overrides, label, _ = ARMS[arm]
    folder = runs / STUDY / arm / f"s{seed}"
    parked = out / PARKED / f"s{seed}"
    unpark(parked, folder)
    start = time.time()
    train(config, seed, folder, overrides, repo)
    seconds = time.time() - start
    best = load_checkpoint(folder / "best_params.pt", "params")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "best_params.pt", out / f"s{seed}.pt")
    data = {"study": STUDY, "arm": arm, "label": label, "seed": seed, "config_file": config,
            "overrides": overrides,
            "config": yaml.safe_load((folder / "config.yaml").read_text()),
            "train_seconds_this_session": seconds, "chosen_meta_step": best["meta_step"],
            "validation_score": best["validation_score"]}
    write_summary(summary, data, summaries / STUDY / "study.log",
                  f"{arm} seed {seed}: trained in {seconds:.0f} s this session; chosen "
                  f"meta-step {best['meta_step']}, validation score {best['validation_score']}")
    shutil.rmtree(parked, ignore_errors=True)  # finished: its summary and iterate are committed
    if (out / PARKED).is_dir() and not any((out / PARKED).iterdir()):
        (out / PARKED).rmdir()
    return data


def park_all(runs: Path, summaries: Path, log: Callable[[str], None] = print) -> None:
    """Park (parked.park) every unfinished run of ORDER on this machine, those with a full
    checkpoint and no committed summary, beside its arm's summaries (``<arm>/parked/s<seed>``;
    commit them): the next session resumes it there, on this machine or another."""
    for arm, seed in ORDER:
        out = summaries / STUDY / arm
        if arm in TEST_TIME or (out / f"s{seed}.json").is_file():
            continue
        step = park(runs / STUDY / arm / f"s{seed}", out / PARKED / f"s{seed}")
        if step is not None:
            log(f"{arm} s{seed}: parked at meta-step {step}")


def derive_one(arm: str, seed: int, runs: Path, summaries: Path, repo: Path) -> dict[str, Any]:
    """The summary of (arm, seed) of a TEST_TIME arm, written with its iterate into
    ``summaries``/general/<arm>/: the source arm's chosen iterate of that seed (trained first if
    missing) with the arm's further overrides applied to its model config and nothing else,
    and its validation score measured anew on the run's own validation problems (the
    trainer's, as the changed optimizer runs on them)."""
    from ..config import apply_overrides, config_from_dict, config_to_dict
    from ..meta_optimizers import LearnedOptimizer
    from ..trainer import MetaTrainer, validation_score

    source = TEST_TIME[arm]
    config, overrides, label, _ = ARMS[arm]
    own = ARMS[source][1]
    if overrides[:len(own)] != own or ARMS[source][0] != config:
        raise ValueError(f"{arm}: its config and overrides must extend {source}'s")
    changed = overrides[len(own):]
    if any(not item.startswith("model.") for item in changed):
        raise ValueError(f"{arm}: only model options change at test time, got {changed}")
    base = train_one(source, seed, runs, summaries, repo)
    start = time.time()
    data = load_checkpoint(summaries / STUDY / source / f"s{seed}.pt", "params")
    cfg = config_from_dict(apply_overrides(data["config"], changed))
    data["config"], data["model"] = config_to_dict(cfg), config_to_dict(cfg)["model"]
    opt = LearnedOptimizer(**data["model"])
    opt.load_state_dict(data["state_dict"])
    data["validation_score"] = validation_score(MetaTrainer(cfg, opt=opt).validation_losses())
    out = summaries / STUDY / arm
    out.mkdir(parents=True, exist_ok=True)
    save_atomic(data, out / f"s{seed}.pt")
    summary = {"study": STUDY, "arm": arm, "label": label, "seed": seed, "config_file": config,
               "overrides": overrides, "derived_from": source, "test_time": changed,
               "config": data["config"], "train_seconds_this_session": time.time() - start,
               "chosen_meta_step": base["chosen_meta_step"],
               "validation_score": data["validation_score"]}
    write_summary(out / f"s{seed}.json", summary, summaries / STUDY / "study.log",
                  f"{arm} seed {seed}: {source}'s iterate with {changed} at test time; "
                  f"validation score {data['validation_score']}")
    return summary


def train_all(runs: Path, summaries: Path, repo: Path, jobs: int = 2,
              arms: list[str] | None = None, log: Callable[[str], None] = print) -> None:
    """Every missing run (of ``arms``, if given) in ORDER, ``jobs`` at once: first the
    meta-trained ones (with the sources of the TEST_TIME runs asked for), then the TEST_TIME
    ones, so that no job derives from an iterate another job is still training."""
    todo = [(a, s) for a, s in ORDER if arms is None or a in arms]
    trained = list(dict.fromkeys((TEST_TIME.get(a, a), s) for a, s in todo))
    with ThreadPoolExecutor(jobs) as pool:
        for batch in (trained, [(a, s) for a, s in todo if a in TEST_TIME]):
            futures = [(a, s, pool.submit(train_one, a, s, runs, summaries, repo))
                       for a, s in batch]
            for arm, seed, f in futures:
                data = f.result()
                log(f"{arm} s{seed}: validation score {data['validation_score']:.4g} "
                    f"(meta-step {data['chosen_meta_step']})")


def _score_once(out: Path, head: dict[str, Any], score: Callable[..., dict[str, Any]],
                args: tuple, summaries: Path, what: str, done: str,
                log: Callable[[str], None]) -> None:
    """Write {**head, **score(*args)} to ``out`` unless it exists, logging "<what> in <n> s"
    to the study log and ``done`` to ``log``."""
    if out.is_file():
        return
    start = time.time()
    data = {**head, **score(*args)}
    write_summary(out, data, summaries / STUDY / "study.log",
                  f"{what} in {time.time() - start:.0f} s")
    log(done)


def score_all(summaries: Path, problems: int = 32, log: Callable[[str], None] = print,
              arms: list[str] | None = None) -> None:
    """Score every finished run (its committed chosen iterate; of ``arms``, if given) on every
    suite of suites.SUITES and every real set that has no ``<arm>/s<seed>-<suite>.json`` (or
    ``-real-<set>.json``) yet, and write it; a run of an arm SHIPPED may choose from also on
    every real set's validation problems (``-val-real-<set>.json``, what shipped_choice
    reads)."""
    for arm, seed in ORDER:
        if arms is not None and arm not in arms:
            continue
        params = summaries / STUDY / arm / f"s{seed}.pt"
        if not params.is_file():
            continue
        for suite in SUITES:
            _score_once(summaries / STUDY / arm / f"s{seed}-{suite}.json",
                        {"arm": arm, "seed": seed, "problems": problems}, score_suite,
                        (params, suite, problems),
                        summaries, f"{arm} seed {seed} scored on {suite}",
                        f"{arm} s{seed} {suite}: done", log)
        for name in REAL_SETS:
            _score_once(summaries / STUDY / arm / f"s{seed}-real-{name}.json",
                        {"arm": arm, "seed": seed}, score_real, (params, name, problems),
                        summaries, f"{arm} seed {seed} scored on real {name}",
                        f"{arm} s{seed} real {name}: done", log)
        if any(arm in arms for arms, _ in SHIPPED.values()):  # what shipped_choice reads
            for name in REAL_SETS:
                _score_once(summaries / STUDY / arm / f"s{seed}-val-real-{name}.json",
                            {"arm": arm, "seed": seed}, score_validation, (params, name),
                            summaries, f"{arm} seed {seed} measured on real {name}'s "
                            "validation problems", f"{arm} s{seed} val real {name}: done", log)
        digits = summaries / STUDY / arm / f"s{seed}-digits.json"
        if arm in ACCURACY and "held_out_accuracy" not in json.loads(digits.read_text())[
                "learned"]:
            # a digits score from before score_suite recorded held-out metrics
            _score_once(summaries / STUDY / arm / f"s{seed}-digits-accuracy.json",
                        {"arm": arm, "seed": seed, "problems": problems}, score_suite,
                        (params, "digits", problems), summaries,
                        f"{arm} seed {seed} scored on digits' held-out images",
                        f"{arm} s{seed} digits held-out accuracy: done", log)


def score_specialists(summaries: Path, checkpoints: Path, problems: int = 32,
                      log: Callable[[str], None] = print) -> None:
    """Score every shipped specialist of SPECIALISTS on its own family, into
    ``<summaries>/general/specialists/<name>-<suite>.json`` (skipping those written)."""
    for suite, names in SPECIALISTS.items():
        for name in names:
            _score_once(summaries / STUDY / "specialists" / f"{name}-{suite}.json",
                        {"checkpoint": name, "problems": problems}, score_suite,
                        (checkpoints / f"{name}.pt", suite, problems),
                        summaries, f"specialist {name} scored on {suite}",
                        f"specialist {name} {suite}: done", log)


#: suite -> (study, arm) of the family studies (studies.arms) meta-trained on that suite's
#: family whose runs are scored on it beside the shipped specialists, every seed whose run
#: folder is on the machine: the diag specialist (the generalist's group, where the shipped
#: ones are gl) and LSTM(update) with the generalist's m1 options (added 2026-12-02)
STUDY_SPECIALISTS: dict[str, list[tuple[str, str]]] = {
    "unit_span10": [("imbalanced", "update_tele-skip-diag")],
    "cond1000": [("cond", "update_tele-diag")],
    "paper": [("paper", "update_tele-skip-diag"), ("paper", "update-rms-guard")],
    "digits": [("digits", "update_tele_diag")],
}


def score_study_specialists(summaries: Path, runs: Path, problems: int = 32,
                            log: Callable[[str], None] = print) -> None:
    """Score the last iterate (params.pt, what a family study scores and ships) of every run
    of STUDY_SPECIALISTS found under ``runs``/<study>/<arm>/s<seed> on its suite, into
    ``<summaries>/general/specialists/<study>-<arm>/s<seed>-<suite>.json`` (skipping those
    written)."""
    from .arms import seeds_of

    for suite, arms in STUDY_SPECIALISTS.items():
        for study, arm in arms:
            for seed in seeds_of(study, arm):
                params = runs / study / arm / f"s{seed}" / "params.pt"
                if not params.is_file():
                    continue
                _score_once(summaries / STUDY / "specialists" / f"{study}-{arm}"
                            / f"s{seed}-{suite}.json",
                            {"study": study, "arm": arm, "seed": seed, "problems": problems},
                            score_suite, (params, suite, problems), summaries,
                            f"{study}/{arm} seed {seed} scored on {suite}",
                            f"{study}/{arm} s{seed} {suite}: done", log)


#: the guard's test-time effect: arm -> the guard its chosen iterates are scored with instead
#: of their own (the guarded diag arm without it, its no-guard control with configs/
#: general_update_tele.yaml's factor 2), on these suites (fixed 2026-12-01 after the control's
#: first scores: the cheap ones, one held-out suite where the guard refuses most)
GUARD_SWAP = {"arms": {"update_tele_diag": None, "update_tele_diag-noguard": 2.0,
                       # since 2026-12-02: shipped, with the guard on
                       "update_tele_diag-noguard-long": 2.0,
                       # since 2026-12-03: shipped, with the guard on
                       "update_tele_diag-noguard-long-bound3": 2.0},
              "seeds": [0, 1, 2, 3, 4],  # 3 and 4 since 2026-12-02
              "suites": ["distribution", "depth3", "paper", "digits", "unit_span30"]}


def score_guard_swap(summaries: Path, problems: int = 32,
                     log: Callable[[str], None] = print) -> None:
    """Score every committed chosen iterate of GUARD_SWAP's arms and seeds on its suites with
    the guard swapped, into ``<arm>/guard_swap/s<seed>-<suite>.json`` (skipping those written;
    the same test problems as the arm's own ``s<seed>-<suite>.json``)."""
    for arm, seed, params in committed(summaries, GUARD_SWAP["arms"], GUARD_SWAP["seeds"]):
        guard = GUARD_SWAP["arms"][arm]
        for suite in GUARD_SWAP["suites"]:
            _score_once(summaries / STUDY / arm / "guard_swap" / f"s{seed}-{suite}.json",
                        {"arm": arm, "seed": seed, "problems": problems, "guard": guard},
                        score_suite, (params, suite, problems, 100, guard), summaries,
                        f"{arm} seed {seed} scored on {suite} with guard {guard}",
                        f"{arm} s{seed} {suite} guard {guard}: done", log)


def committed(summaries: Path, arms, seeds) -> list[tuple[str, int, Path]]:
    """(arm, seed, its committed chosen iterate) for the ``arms`` and ``seeds`` that have one,
    arm by arm."""
    return [(arm, seed, params) for arm in arms for seed in seeds
            if (params := summaries / STUDY / arm / f"s{seed}.pt").is_file()]


#: the teleports' test-time effect, generalization included: these arms' chosen iterates
#: scored with m1 alone (their teleports switched off; m1 and its state as trained) on these
#: suites and real sets ("real-<set>"). Fixed 2026-12-04 after a probe of the bound-3 arm's 5
#: seeds on real digits (m1 alone's median held-out accuracy 0.013-0.022 above on every seed,
#: at the same training loss); the other arms, suites and breast cancer were fixed before any
#: was scored (the gradient form's arms added before any of their scoring: tilt 1 when it was
#: registered, tilt 3 once its seed 0 was trained)
TELE_OFF = {"arms": ("update_tele_diag-noguard-long-bound3", "update_tele_diag-noguard-long",
                     "update_tele_diag-noguard", "update_tele_diag",
                     "update_tele_diag-noguard-long-bound3-gradient",
                     "update_tele_diag-noguard-long-bound3-gradient-tilt3"),
            "seeds": [0, 1, 2, 3, 4],
            "suites": ["distribution", "unit_span30", "digits", "real-digits",
                       "real-breast_cancer"]}


def score_tele_off(summaries: Path, problems: int = 32,
                   log: Callable[[str], None] = print) -> None:
    """Score every committed chosen iterate of TELE_OFF's arms and seeds with m1 alone on its
    suites and real sets, into ``<arm>/tele_off/s<seed>-<suite>.json`` (skipping those
    written; the same test problems as the arm's own ``s<seed>-<suite>.json``)."""
    for arm, seed, params in committed(summaries, TELE_OFF["arms"], TELE_OFF["seeds"]):
        for suite in TELE_OFF["suites"]:
            score, args = ((score_real, (params, suite[5:], problems))
                           if suite.startswith("real-") else
                           (score_suite, (params, suite, problems)))
            _score_once(summaries / STUDY / arm / "tele_off" / f"s{seed}-{suite}.json",
                        {"arm": arm, "seed": seed, "problems": problems, "teleport": False},
                        functools.partial(score, teleport=False), args, summaries,
                        f"{arm} seed {seed} scored on {suite} with m1 alone",
                        f"{arm} s{seed} {suite} m1 alone: done", log)


def _by_seed(folder: Path, seeds, suffix: str = "") -> dict[int, dict]:
    """seed -> the summary ``folder``/s<seed><suffix>.json, for those of ``seeds`` that have
    one (suffix "": the run's own summary; "-<suite>": its score on a suite)."""
    return {s: json.loads(f.read_text()) for s in seeds
            if (f := folder / f"s{s}{suffix}.json").is_file()}


def record_histories(runs: Path, summaries: Path, log: Callable[[str], None] = print) -> None:
    """For every finished run whose folder is on this machine, write its validation history
    to ``<arm>/s<seed>-validation.json`` (committed) unless it is there."""
    for arm, seed in ORDER:
        out = summaries / STUDY / arm / f"s{seed}-validation.json"
        folder = runs / STUDY / arm / f"s{seed}"
        if out.is_file() or not (summaries / STUDY / arm / f"s{seed}.json").is_file() \
                or not (folder / "tb").is_dir():
            continue
        history = validation_history(folder)
        write_summary(out, {"arm": arm, "seed": seed,
                            "val_score": {str(k): v for k, v in history.items()}},
                      summaries / STUDY / "study.log",
                      f"{arm} seed {seed}: validation history of {len(history)} points")
        log(f"{arm} s{seed}: validation history of {len(history)} points")
