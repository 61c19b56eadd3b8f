"""The generalist study: one learned optimizer for any LeakyReLU MLP, meta-trained over the task
distribution (configs/general_*.yaml), against its controls.

Arms (all on the distribution, same budget): LSTM(update) and LSTM(update,tele) with the loss
guard, 5 seeds each; + random teleports, + balance and LSTM(update,tele) without the guard as
controls, 3 seeds each. A run's seed s meta-trains its config with its overrides at
train.seed = s; its chosen iterate is the one with the best validation score
(trainer.validation_score, best_params.pt).

Phase "train" (``train_all``): every missing run, in the order of ``ORDER`` (the headline arms'
seeds first, interleaved, so that a stopped session leaves comparable arms), resuming
interrupted runs; each finished run leaves in the summaries folder ``<arm>/s<seed>.json``
(config, training time, the chosen iterate and its validation score) and ``<arm>/s<seed>.pt``
(the chosen iterate's parameters, ~50 KB), both committed, so that scoring can run on any
machine. Scoring on the test suites reads those files only.
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

import numpy as np
import yaml

from ..checkpoint import load_checkpoint
from ..stats import bootstrap_ci, difference_text, median, paired_difference, paired_log_ratio
from .realdata import REAL_SETS, score_real, versus_best_hand
from .runs import train, write_summary
from .suites import ADAM_CAP, HELD_OUT, SUITES, score_suite

__all__ = ["ACCURACY", "ARMS", "CONTROLS", "CURVATURE", "DIGITS_SHARE", "FAILED_MARGIN",
           "GRADIENT_FORM", "GRADIENT_FORM_UPDATE", "GRADIENT_TILT", "GRADIENT_TILT_UPDATE",
           "GUARD_SWAP", "HEADLINE", "LONGER", "ORDER", "SAME_BUDGET", "SHIPPED", "SPECIALISTS",
           "STUDY", "STUDY_SPECIALISTS", "TELE_OFF", "VAL_HELD_OUT", "VARIANTS", "all_tables",
           "committed", "digits_accuracy_table", "guard_swap_table", "paired_table", "real_table",
           "record_histories", "score_all", "score_guard_swap", "score_specialists",
           "score_study_specialists", "score_tele_off", "selection_table", "ship_generalist",
           "shipped_choice", "shipped_table", "specialist_table", "status_table", "suite_table",
           "tele_off_table", "train_all", "train_one", "validation_history"]

STUDY = "general"


def _in_gradient_form(config: str, overrides: list[str], label: str,
                      tilt: float) -> tuple[str, list[str], str, list[int]]:
    """An ARMS entry, 5 seeds: the arm of ``config``, ``overrides`` and ``label`` with m1 in
    the gradient form (base step 0.1) under ``tilt``."""
    return (config, overrides + ["model.update_form=gradient", f"model.update_tilt={tilt}",
                                 "model.update_scale=0.1"],
            f"{label}, m1 a preconditioner of the gradient (tilt {tilt:g})", [0, 1, 2, 3, 4])


#: arm -> (config, overrides, label, seeds)
ARMS: dict[str, tuple[str, list[str], str, list[int]]] = {
    "update": ("general_update", [], "LSTM(update), guarded", [0, 1, 2, 3, 4]),
    # added 2026-12-03: every teleporting arm shipped since 2026-12-02 meta-trained on 1600
    # trajectories, and the LSTM(update) it was paired with on 800; the issue asks for the same
    # budget. LSTM(update) at 1600, 5 seeds, registered before any run; a candidate to ship as
    # general_update (SHIPPED), and the generalist LSTM(update) of the done-when comparison if
    # it ships
    "update-long": ("general_update", ["train.trajectories=1600"],
                    "LSTM(update), guarded, twice the meta-training (1600 trajectories)",
                    [0, 1, 2, 3, 4]),
    "update_tele": ("general_update_tele", [], "LSTM(update,tele), guarded", [0, 1, 2, 3, 4]),
    "update_tele-noguard": ("general_update_tele", ["model.guard=null"],
                            "LSTM(update,tele) without the guard", [0, 1, 2]),
    "update_random_tele": ("general_update_tele",
                           ["model.variant=update_random_tele", "model.tele_norm=0.1"],
                           "LSTM(update)+random teleports of norm 0.1, guarded", [0, 1, 2]),
    "update_balance": ("general_update_tele",
                       ["model.variant=update_balance", "model.tele_until=1"],
                       "LSTM(update)+balance after the first update, guarded", [0, 1, 2]),
    # added 2026-12-01 after the gl arm's seeds 0-2 and its pilots (studies/general/pilots):
    # m2 in the diag group, exact for every input
    "update_tele_diag": ("general_update_tele", ["model.tele_group=diag"],
                         "LSTM(update,tele) with a diag m2, guarded", [0, 1, 2, 3, 4]),
    # added 2026-12-01 after the diag arm's 5 seeds: its controls in its own group
    "update_tele_diag-noguard": ("general_update_tele", ["model.tele_group=diag",
                                                         "model.guard=null"],
                                 "LSTM(update,tele) with a diag m2 without the guard",
                                 # seeds 3-4 added 2026-12-02: it ended lower than the guarded
                                 # arm on 11 of 16 suites over seeds 0-2, and its guard swap
                                 # changed nothing, so it is a candidate to ship (with the
                                 # guard at test time); 5 seeds, like the arm it would replace
                                 [0, 1, 2, 3, 4]),
    "update_random_tele_diag": ("general_update_tele",
                                ["model.variant=update_random_tele", "model.tele_norm=0.1",
                                 "model.tele_group=diag"],
                                "LSTM(update)+random diag teleports of norm 0.1, guarded",
                                [0, 1, 2]),
    # added 2026-12-02 after the no-guard arm was shipped: its validation scores were still
    # falling at the last meta-step; does twice the meta-training budget pay?
    "update_tele_diag-noguard-long": ("general_update_tele",
                                      ["model.tele_group=diag", "model.guard=null",
                                       "train.trajectories=1600"],
                                      "LSTM(update,tele) with a diag m2 without the guard, "
                                      "twice the meta-training (1600 trajectories)",
                                      # seeds 3-4 added 2026-12-02: over seeds 0-2 its median
                                      # validation score (1.68) is below the shipped arm's
                                      # (1.92), so it is a candidate to ship: 5 seeds, like
                                      # the arm it would replace
                                      [0, 1, 2, 3, 4]),
    # added 2026-12-02 after the bound diagnosis: the shipped long arm's m2 sits at its bound
    # (norm 1 over the network) on 22.5% of unit_span10 steps and 30% of unit_span30's, where
    # it is furthest from the specialists and from 10x Adam; does a bound of 3 pay?
    "update_tele_diag-noguard-long-bound3": ("general_update_tele",
                                             ["model.tele_group=diag", "model.guard=null",
                                              "train.trajectories=1600",
                                              "model.max_tele_norm=3.0"],
                                             "LSTM(update,tele) with a diag m2 without the "
                                             "guard, twice the meta-training, teleport bound 3",
                                             [0, 1, 2, 3, 4]),
    # added 2026-12-02: the shipped long arm's optimizee classifies held-out digits 0.042 below
    # tuned SGD's, and in the digits study the held-out meta-loss was what closed that gap; its
    # digits groups (20% of the distribution) meta-train on their held-out loss, the synthetic
    # ones on their training loss
    "update_tele_diag-noguard-long-held_out": ("general_update_tele",
                                               ["model.tele_group=diag", "model.guard=null",
                                                "train.trajectories=1600",
                                                "train.meta_loss_on=held_out_where_available"],
                                               "LSTM(update,tele) with a diag m2 without the "
                                               "guard, twice the meta-training, digits groups "
                                               "on their held-out loss", [0, 1, 2]),
    # added 2026-12-03, after the held-out meta-loss alone did not carry over to real digits
    # (-0.051 against -0.042 below tuned SGD): the digits study's recipe that closed that gap
    # (update_tele_diag-curv-held_out: m2 also reads each unit's orbit curvature, meta-trained
    # on the held-out loss), on the bound-3 arm; ~6% more time per meta-step
    "update_tele_diag-noguard-long-bound3-curv-held_out": (
        "general_update_tele",
        ["model.tele_group=diag", "model.guard=null", "train.trajectories=1600",
         "model.max_tele_norm=3.0", "model.curvature_input=true",
         "train.meta_loss_on=held_out_where_available"],
        "LSTM(update,tele) with a diag m2 without the guard, twice the meta-training, "
        "teleport bound 3, reading curvature, digits groups on their held-out loss", [0, 1, 2]),
    # added 2026-12-03, after the digits-accuracy table: every teleporting generalist's optimizee
    # classifies the digits family's held-out images 0.021-0.027 worse than LSTM(update)'s, and
    # the held-out meta-loss on a fifth of the groups changed nothing there; does it with half
    # of them on digits? Its validation problems hold more digits too, so its validation score
    # is not comparable with the other arms': it is not a candidate to ship (SHIPPED)
    "update_tele_diag-noguard-long-bound3-digits05-held_out": (
        "general_update_tele",
        ["model.tele_group=diag", "model.guard=null", "train.trajectories=1600",
         "model.max_tele_norm=3.0", "task.options.digits=0.5",
         "train.meta_loss_on=held_out_where_available"],
        "LSTM(update,tele) with a diag m2 without the guard, twice the meta-training, "
        "teleport bound 3, half the groups on digits and their held-out loss", [0, 1, 2, 3, 4]),
    # added 2026-12-03 (evening), 5 seeds registered before any run, after LSTM(update) lost
    # held-out digits accuracy with twice the meta-training (-0.036 on real digits): the
    # bound-3 arm with its iterate chosen on the validation digits problems' held-out loss
    # (train.validate_on; the synthetic ones still on their training loss). Meta-training
    # itself is the bound-3 arm's, bit for bit on one machine, so the pair measures the choice
    # of iterate alone. Its validation score reads other losses than the other arms': it is
    # not a candidate to ship (SHIPPED)
    "update_tele_diag-noguard-long-bound3-val_held_out": (
        "general_update_tele",
        ["model.tele_group=diag", "model.guard=null", "train.trajectories=1600",
         "model.max_tele_norm=3.0", "train.validate_on=held_out_where_available"],
        "LSTM(update,tele) with a diag m2 without the guard, twice the meta-training, "
        "teleport bound 3, its iterate chosen on the digits problems' held-out loss",
        [0, 1, 2, 3, 4]),
    # added 2026-12-04, 5 seeds registered before any run (after a one-seed pilot of 320
    # trajectories, validation only: 5.44 direct against 5.92 in this form at the last
    # meta-step), after four ways of putting held-out digits into meta-training or selection
    # left real digits 0.05-0.07 below tuned SGD: the bound-3 arm with m1 in the gradient form
    # (model.update_form), gradient descent under a positive diagonal preconditioner whose
    # per-coordinate steps stay within e^+-1 of the problem's common step, the implicit bias
    # of gradient descent that tuned SGD has; a candidate to ship (SHIPPED)
    "update_tele_diag-noguard-long-bound3-gradient": _in_gradient_form(
        "general_update_tele",
        ["model.tele_group=diag", "model.guard=null", "train.trajectories=1600",
         "model.max_tele_norm=3.0"],
        "LSTM(update,tele) with a diag m2 without the guard, twice the meta-training, "
        "teleport bound 3", 1.0),
    # added 2026-12-04, 5 seeds registered before any run, once the gradient form's seeds 0-1
    # were trained (validation 3.548 / 1.381 against the bound-3 arm's 1.455 / -0.675) and
    # seed 0 scored (real digits 0.752 against 0.734 for the bound-3 arm's seed 0; a
    # look at one seed of a test set, said here): the same form for LSTM(update) at the same
    # budget, the generalist LSTM(update) meta-trained the same way as the teleporting arm
    # (the done-when's comparison) and the teleports' control in that form; a candidate to
    # ship as general_update (SHIPPED)
    "update-long-gradient": _in_gradient_form(
        "general_update", ["train.trajectories=1600"],
        "LSTM(update), guarded, twice the meta-training", 1.0),
    # added 2026-12-04, 5 seeds registered before any run, once scripts/tilt_saturation.py
    # (validation problems only) found the tilt-1 arms' log-steps beyond the bound on 0.5-0.8
    # of the coordinates after step 10, with a spread (std of o' - s) of 2-3.4 asked for (its
    # distribution rows then counted calls, not steps; per step since: 0.53-0.84, 2.4-3.4): the
    # gradient form's teleporting arm with the bound at 3 (steps within e^+-3 of the common
    # one), between tilt 1 (real digits level with tuned SGD, slow) and the direct form
    # (fast, 0.06 below it); a candidate to ship (SHIPPED)
    "update_tele_diag-noguard-long-bound3-gradient-tilt3": _in_gradient_form(
        "general_update_tele",
        ["model.tele_group=diag", "model.guard=null", "train.trajectories=1600",
         "model.max_tele_norm=3.0"],
        "LSTM(update,tele) with a diag m2 without the guard, twice the meta-training, "
        "teleport bound 3", 3.0),
    # added 2026-12-04, 5 seeds registered before any run, once the tilt-3 arm's 5 seeds were
    # scored (real digits 0.025 below tuned SGD, 0.84-11.7x the direct form's loss): its
    # LSTM(update) in the same form at the same budget, the done-when's comparison for it; a
    # candidate to ship as general_update (SHIPPED)
    "update-long-gradient-tilt3": _in_gradient_form(
        "general_update", ["train.trajectories=1600"],
        "LSTM(update), guarded, twice the meta-training", 3.0),
    # added 2026-12-06, 5 seeds each registered before any run (a 100-meta-step timing run
    # only, no score looked at): the shipped bound-3 arm and its LSTM(update) (update-long)
    # with m1 also reading Adam's moments of every coordinate (model.update_moments). The suites
    # where every generalist is slowest against tuned Adam (digits 0.9x, normal_init 4.3x,
    # unit_span30 7.8x Adam-equivalent) are those where coordinates of one problem differ most
    # in scale (rarely active pixels, rescaled units), which Adam's per-coordinate
    # normalization absorbs and m1's input, the gradient over its RMS over the whole problem,
    # does not. Candidates to ship (SHIPPED)
    "update_tele_diag-noguard-long-bound3-moments": (
        "general_update_tele",
        ["model.tele_group=diag", "model.guard=null", "train.trajectories=1600",
         "model.max_tele_norm=3.0", "model.update_moments=true"],
        "LSTM(update,tele) with a diag m2 without the guard, twice the meta-training, "
        "teleport bound 3, m1 reading Adam's moments", [0, 1, 2, 3, 4]),
    "update-long-moments": ("general_update",
                            ["train.trajectories=1600", "model.update_moments=true"],
                            "LSTM(update), guarded, twice the meta-training, m1 reading "
                            "Adam's moments", [0, 1, 2, 3, 4]),
}


def _order() -> list[tuple[str, int]]:
    main = [(arm, s) for s in range(5) for arm in ("update_tele", "update")]
    controls = [(arm, s) for s in range(3)
                for arm in ("update_tele-noguard", "update_random_tele", "update_balance")]
    diag_controls = [(arm, s) for s in range(3)
                     for arm in ("update_tele_diag-noguard", "update_random_tele_diag")]
    return (main + controls + [("update_tele_diag", s) for s in range(5)] + diag_controls
            + [("update_tele_diag-noguard", s) for s in (3, 4)]
            + [("update_tele_diag-noguard-long", s) for s in range(5)]
            + [(arm, s) for s in range(3) for arm in ("update_tele_diag-noguard-long-bound3",
                                                      "update_tele_diag-noguard-long-held_out")]
            + [("update_tele_diag-noguard-long-bound3", s) for s in (3, 4)]
            + [("update_tele_diag-noguard-long-bound3-curv-held_out", s) for s in range(3)]
            + [("update_tele_diag-noguard-long-bound3-digits05-held_out", s) for s in range(5)]
            + [("update-long", s) for s in range(5)]
            # seeds 2-4 first: this machine keeps the bound-3 arm's runs of those seeds, whose
            # final meta-parameters the new runs must reproduce
            + [("update_tele_diag-noguard-long-bound3-val_held_out", s) for s in (2, 3, 4, 0, 1)]
            + [("update_tele_diag-noguard-long-bound3-gradient", s) for s in range(5)]
            + [("update-long-gradient", s) for s in range(5)]
            + [("update_tele_diag-noguard-long-bound3-gradient-tilt3", s) for s in range(5)]
            + [("update-long-gradient-tilt3", s) for s in range(5)]
            + [(arm, s) for s in range(5)
               for arm in ("update_tele_diag-noguard-long-bound3-moments",
                           "update-long-moments")])


#: the order in which runs are trained
ORDER = _order()
#: the arms of the main tables, LSTM(update) last: the arm every other is paired with (the
#: no-guard diag arm since it was shipped, 2026-12-02, its long version since that was, and
#: the long version's bound-3 variant since that is, 2026-12-03)
HEADLINE = ("update_tele", "update_tele_diag", "update_tele_diag-noguard",
            "update_tele_diag-noguard-long", "update_tele_diag-noguard-long-bound3",
            "update_balance", "update")
#: the no-guard diag arm with twice the meta-training, paired with it (the arm last)
LONGER = ("update_tele_diag-noguard-long", "update_tele_diag-noguard")
#: the two changes tried on the shipped (long) arm, each paired with it (the arm last): a
#: teleport bound of 3, and the digits groups' held-out meta-loss
VARIANTS = ("update_tele_diag-noguard-long-bound3", "update_tele_diag-noguard-long-held_out",
            "update_tele_diag-noguard-long")
#: the digits study's generalization recipe (curvature input, held-out meta-loss) on the
#: bound-3 arm, paired with it (the arm last)
CURVATURE = ("update_tele_diag-noguard-long-bound3-curv-held_out",
             "update_tele_diag-noguard-long-bound3")
#: half the distribution's groups on digits, meta-trained on their held-out loss, on the
#: bound-3 arm, paired with it (the arm last)
DIGITS_SHARE = ("update_tele_diag-noguard-long-bound3-digits05-held_out",
                "update_tele_diag-noguard-long-bound3")
#: the bound-3 arm's iterate chosen on the validation digits problems' held-out loss, paired
#: with the bound-3 arm (the arm last)
VAL_HELD_OUT = ("update_tele_diag-noguard-long-bound3-val_held_out",
                "update_tele_diag-noguard-long-bound3")
#: m1 as a preconditioner of the gradient on the bound-3 arm, paired with it (the arm last)
GRADIENT_FORM = ("update_tele_diag-noguard-long-bound3-gradient",
                 "update_tele_diag-noguard-long-bound3")
#: the gradient form's bound at 3 and at 1, each paired with the direct form's bound-3 arm
#: (the arm last)
GRADIENT_TILT = ("update_tele_diag-noguard-long-bound3-gradient-tilt3",
                 "update_tele_diag-noguard-long-bound3-gradient",
                 "update_tele_diag-noguard-long-bound3")
#: the tilt-3 teleporting arm and the direct form's LSTM(update) paired with the tilt-3
#: LSTM(update) (the arm last)
GRADIENT_TILT_UPDATE = ("update_tele_diag-noguard-long-bound3-gradient-tilt3", "update-long",
                        "update-long-gradient-tilt3")
#: the gradient form for both generalists at 1600 trajectories, each in its own pair: the
#: teleporting arms paired with the gradient form's LSTM(update) (the arm last), and that
#: LSTM(update) with the direct one's
GRADIENT_FORM_UPDATE = ("update_tele_diag-noguard-long-bound3-gradient",
                        "update_tele_diag-noguard-long-bound3", "update-long",
                        "update-long-gradient")
#: the same budget (1600 trajectories) for LSTM(update): the teleporting arms meta-trained on
#: it, paired with LSTM(update) meta-trained on it (the arm last)
SAME_BUDGET = ("update_tele_diag-noguard-long-bound3", "update_tele_diag-noguard-long",
               "update", "update-long")
#: the teleporting generalist's controls in its own (diag) group, and the arm itself last: the
#: arm every other is paired with in ``paired_table(summaries, CONTROLS)``
CONTROLS = ("update_tele_diag-noguard", "update_random_tele_diag", "update_tele_diag")
#: the arms scored on the digits suite's held-out images (score_all), with LSTM(update) last:
#: the shipped teleporting generalist's arm, the bound-1 arm, the two held-out-meta-loss arms
ACCURACY = ("update_tele_diag-noguard-long-bound3", "update_tele_diag-noguard-long",
            "update_tele_diag-noguard-long-held_out",
            "update_tele_diag-noguard-long-bound3-curv-held_out",
            "update_tele_diag-noguard-long-bound3-digits05-held_out",
            "update_tele_diag-noguard-long-bound3-val_held_out",
            "update_tele_diag-noguard-long-bound3-gradient",
            "update_tele_diag-noguard-long-bound3-gradient-tilt3", "update-long-gradient",
            "update-long-gradient-tilt3", "update_tele_diag-noguard-long-bound3-moments",
            "update-long-moments", "update-long", "update")

#: suite -> the shipped specialists (checkpoints/<name>.pt) meta-trained on that family
SPECIALISTS: dict[str, list[str]] = {
    "paper": ["update", "paper_update_tele", "paper_update_tele_look"],
    "unit_span10": ["imbalanced_update", "imbalanced_update_tele"],
    "cond1000": ["cond_update_tele"],
    "digits": ["digits_update", "digits_update_tele"],
}


#: checkpoints/<name>.pt -> (the arms it is chosen from, the loss guard it ships with): of
#: the arms with all their seeds, the one with the lowest median validation score, and of its
#: seeds the one with the lowest; shipped with the guard on whatever the arm meta-trained with
#: (the guard swap measured no difference at test time for either diag arm)
SHIPPED: dict[str, tuple[list[str], float]] = {
    # the 1600-trajectory arm a candidate since 2026-12-03, before any of its runs
    # (and the gradient form's since 2026-12-04, before any of its runs)
    # (and its tilt-3 version since 2026-12-04, before any of its runs)
    # (and the moments' since 2026-12-06, before any of its runs)
    "general_update": (["update", "update-long", "update-long-gradient",
                        "update-long-gradient-tilt3", "update-long-moments"], 2.0),
    # the long arm a candidate since 2026-12-02, once its 5 seeds were trained; its bound-3
    # version since 2026-12-03, before its seeds 2-4 were trained (it counts once all 5 are)
    # (and the gradient form's since 2026-12-04, before any of its runs, at tilt 1 and 3)
    "general_update_tele": (["update_tele_diag", "update_tele_diag-noguard",
                             "update_tele_diag-noguard-long",
                             "update_tele_diag-noguard-long-bound3",
                             "update_tele_diag-noguard-long-bound3-gradient",
                             "update_tele_diag-noguard-long-bound3-gradient-tilt3",
                             # since 2026-12-06, before any of its runs
                             "update_tele_diag-noguard-long-bound3-moments"], 2.0),
}


def shipped_choice(summaries: Path, name: str) -> tuple[str, int]:
    """(arm, seed) that checkpoints/``name``.pt ships, by SHIPPED's rule, from the committed
    summaries; StudyError if none of its arms has all its seeds."""
    from .arms import StudyError
    from .selection import best_seed

    scores = {}
    for arm in SHIPPED[name][0]:
        done = _by_seed(summaries / STUDY / arm, ARMS[arm][3])
        if len(done) == len(ARMS[arm][3]):
            scores[arm] = {s: d["validation_score"] for s, d in done.items()}
    if not scores:
        raise StudyError(f"{name}: none of {SHIPPED[name][0]} has all its seeds trained")
    arm = min(scores, key=lambda a: median(list(scores[a].values())))
    return arm, best_seed(scores[arm])


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
    header = "" if trained == guard else (
        f"# meta-trained {how} (studies/general/{arm}, seed {seed}); shipped with model.guard "
        f"{guard:g} at test time\n")
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
    config, overrides, label, _ = ARMS[arm]
    folder = runs / STUDY / arm / f"s{seed}"
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
    return data


def train_all(runs: Path, summaries: Path, repo: Path, jobs: int = 2,
              arms: list[str] | None = None, log: Callable[[str], None] = print) -> None:
    """Every missing run (of ``arms``, if given) in ORDER, ``jobs`` at once."""
    todo = [(a, s) for a, s in ORDER if arms is None or a in arms]
    with ThreadPoolExecutor(jobs) as pool:
        futures = [(a, s, pool.submit(train_one, a, s, runs, summaries, repo)) for a, s in todo]
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


def score_all(summaries: Path, problems: int = 32, log: Callable[[str], None] = print) -> None:
    """Score every finished run (its committed chosen iterate) on every suite of
    suites.SUITES and every real set that has no ``<arm>/s<seed>-<suite>.json`` (or
    ``-real-<set>.json``) yet, and write it."""
    for arm, seed in ORDER:
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


def specialist_table(summaries: Path, arm: str = "update_tele_diag") -> str:
    """Markdown, per suite with specialists: the generalist ``arm``'s loss at step N over each
    specialist's, paired on the same test problems (and, for a family study's arm, on the
    seeds both have; a shipped specialist is one run, set against every seed of ``arm``),
    median and 95% two-level bootstrap interval (above 1: the generalist ends higher; the
    generalist issue asks for at most 2), and the seeds of ``arm`` within 2x."""
    from .arms import STUDIES, seeds_of

    rows = [f"| suite | specialist | seeds | median loss | / tuned Adam | {ARMS[arm][2]}: "
            "median | generalist / specialist | seeds within 2x |",
            "|---|---|---|---|---|---|---|---|"]
    for suite in SUITES:
        own = _scored(summaries, arm, suite)
        # (label, seed -> summary, how many runs it is)
        found: list[tuple[str, dict[int, dict], int | None]] = []
        for name in SPECIALISTS.get(suite, []):
            f = summaries / STUDY / "specialists" / f"{name}-{suite}.json"
            if f.is_file():
                d = json.loads(f.read_text())
                found.append((f"{name}.pt (shipped)", dict.fromkeys(own, d), 1))
        for study, study_arm in STUDY_SPECIALISTS.get(suite, []):
            done = _by_seed(summaries / STUDY / "specialists" / f"{study}-{study_arm}",
                            seeds_of(study, study_arm), f"-{suite}")
            label = STUDIES[study]["arms"][study_arm][2]
            found.append((f"{label} (`{study}/{study_arm}`)", done, None))
        for label, done, n in found:
            seeds = sorted(set(own) & set(done))
            if not seeds:
                continue
            a = np.array([own[s]["learned"]["final"] for s in seeds])
            b = np.array([done[s]["learned"]["final"] for s in seeds])
            within = sum(median(x) <= 2 * median(y) for x, y in zip(a, b))
            adam = _ratio(paired_log_ratio(b, [done[s]["adam"]["final"] for s in seeds]))
            rows.append(f"| {suite} | {label} | {n or len(seeds)} | {median(b.ravel()):.3g} | "
                        f"{adam} | {median(a.ravel()):.3g} | {_ratio(paired_log_ratio(a, b))} | "
                        f"{within}/{len(seeds)} |")
    return "\n".join(rows) + "\n"


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


def _guard_of(arm: str) -> float | None:
    """The loss guard's factor that ``arm`` meta-trains with (its config and overrides)."""
    from ..config import load_config

    config, overrides, _, _ = ARMS[arm]
    path = Path(__file__).resolve().parents[2] / "configs" / f"{config}.yaml"
    return load_config(path, list(overrides)).model.guard


def guard_swap_table(summaries: Path) -> str:
    """Markdown, per suite and GUARD_SWAP arm: the seeds scored both ways, the median loss at
    step N as trained and with the guard swapped, the paired ratio swapped / as trained (95%
    two-level bootstrap interval over seeds and problems), the diverged problems and the
    refused fraction each way."""
    rows = ["| suite | optimizer | guard as trained -> swapped | seeds | median loss, as trained "
            "| swapped | swapped / as trained | diverged | refused |",
            "|---|---|---|---|---|---|---|---|---|"]
    for suite in GUARD_SWAP["suites"]:
        for arm, guard in GUARD_SWAP["arms"].items():
            own = _scored(summaries, arm, suite)
            swapped = _by_seed(summaries / STUDY / arm / "guard_swap", own, f"-{suite}")
            if not swapped:
                continue
            seeds = sorted(swapped)
            a = np.array([own[s]["learned"]["final"] for s in seeds])
            b = np.array([swapped[s]["learned"]["final"] for s in seeds])
            before, after = ("none" if g is None else f"{g:g}" for g in (_guard_of(arm), guard))
            div = [sum(d[s]["learned"]["diverged"] for s in seeds) for d in (own, swapped)]
            ref = [np.mean([d[s]["learned"].get("refused_fraction", 0.0) for s in seeds])
                   for d in (own, swapped)]
            rows.append(f"| {suite} | {ARMS[arm][2]} | {before} -> {after} | {len(seeds)} | "
                        f"{median(a.ravel()):.3g} | {median(b.ravel()):.3g} | "
                        f"{_ratio(paired_log_ratio(b, a))} | {div[0]} -> {div[1]} of {a.size} | "
                        f"{ref[0]:.2f} -> {ref[1]:.2f} |")
    return "\n".join(rows) + "\n"


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


def tele_off_table(summaries: Path) -> str:
    """Markdown, per TELE_OFF suite and arm: the seeds scored both ways, the median loss at
    step N with the teleports and with m1 alone, the paired ratio m1 alone / with (95%
    two-level bootstrap interval over seeds and problems), the diverged problems each way,
    and where the optimizee has held-out samples (the digits suite's held-out images, the
    real sets) the median held-out accuracy each way, its paired difference m1 alone - with,
    and m1 alone's against the better tuned hand optimizer (by median accuracy)."""
    rows = ["| suite | optimizer | seeds | median loss, with teleports | m1 alone | "
            "m1 alone / with | diverged | held-out accuracy, with -> m1 alone | "
            "m1 alone - with | m1 alone - best hand's |", "|---" * 10 + "|"]
    for suite in TELE_OFF["suites"]:
        key = "accuracy" if suite.startswith("real-") else "held_out_accuracy"
        for arm in TELE_OFF["arms"]:
            # a run scored before score_suite recorded held-out metrics: its extra pass
            own = {**_scored(summaries, arm, suite),
                   **_scored_with(summaries, arm, (f"{suite}-accuracy",), key)}
            off = _by_seed(summaries / STUDY / arm / "tele_off", own, f"-{suite}")
            if not off:
                continue
            seeds = sorted(off)
            a = np.array([own[s]["learned"]["final"] for s in seeds])
            b = np.array([off[s]["learned"]["final"] for s in seeds])
            div = [sum(d[s]["learned"]["diverged"] for s in seeds) for d in (own, off)]
            cells = ["-", "-", "-"]
            if all(key in d[s]["learned"] for d in (own, off) for s in seeds):
                hands = ("sgd", "adam") if suite.startswith("real-") else ("gd", "adam")
                best, acc, versus = versus_best_hand(off, hands, key)
                with_acc = np.array([own[s]["learned"][key] for s in seeds])
                cells = [f"{float(np.median(with_acc)):.3f} -> {float(np.median(acc)):.3f}",
                         difference_text(paired_difference(acc, with_acc)),
                         f"{difference_text(versus)} vs {best}"]
            rows.append(f"| {suite} | {ARMS[arm][2]} | {len(seeds)} | {median(a.ravel()):.3g} "
                        f"| {median(b.ravel()):.3g} | {_ratio(paired_log_ratio(b, a))} | "
                        f"{div[0]} -> {div[1]} of {a.size} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _by_seed(folder: Path, seeds, suffix: str = "") -> dict[int, dict]:
    """seed -> the summary ``folder``/s<seed><suffix>.json, for those of ``seeds`` that have
    one (suffix "": the run's own summary; "-<suite>": its score on a suite)."""
    return {s: json.loads(f.read_text()) for s in seeds
            if (f := folder / f"s{s}{suffix}.json").is_file()}


def _scored(summaries: Path, arm: str, suite: str) -> dict[int, dict]:
    """seed -> the suite summary of (arm, seed), for the seeds scored on ``suite`` (a real
    set: "real-<set>")."""
    return _by_seed(summaries / STUDY / arm, ARMS[arm][3], f"-{suite}")


def _scored_with(summaries: Path, arm: str, suites: tuple[str, ...], key: str) -> dict[int, dict]:
    """seed -> the first of the suite summaries ``suites`` of (arm, seed) whose learned run
    records ``key``, for the seeds that have one."""
    found: dict[int, dict] = {}
    for suite in suites:
        for s, d in _scored(summaries, arm, suite).items():
            if key in d["learned"]:
                found.setdefault(s, d)
    return found


def _ratio(test: dict) -> str:
    """exp of a paired_log_ratio's median and interval: '0.12 [0.08, 0.2]'."""
    lo, hi = test["ci"]
    return f"{np.exp(test['median']):.3g} [{np.exp(lo):.3g}, {np.exp(hi):.3g}]"


def _cells(done: dict[int, dict]) -> tuple[np.ndarray, dict[str, str], str, str, str]:
    """For one arm's suite summaries (seed -> summary): its final losses (seeds, problems),
    the paired ratios against tuned Adam and GD ({"adam", "gd"}), and the diverged, refused
    and Adam-equivalent cells of the tables."""
    seeds = sorted(done)
    final = np.array([done[s]["learned"]["final"] for s in seeds])
    vs = {k: _ratio(paired_log_ratio(final, [done[s][k]["final"] for s in seeds]))
          for k in ("adam", "gd")}
    speed = np.concatenate([done[s]["learned"]["adam_equivalent"] for s in seeds])
    cap = ADAM_CAP // done[seeds[0]]["n_steps"]
    est, lo, hi = (f">{cap}x" if np.isinf(v) else f"{v:.1f}x" for v in bootstrap_ci(speed))
    diverged = sum(done[s]["learned"]["diverged"] for s in seeds)
    refused = np.mean([done[s]["learned"].get("refused_fraction", 0.0) for s in seeds])
    return final, vs, f"{diverged}/{final.size}", f"{refused:.2f}", f"{est} [{lo}, {hi}]"


def _versus(done: dict[int, dict], theirs: dict[int, dict]) -> str:
    """The paired ratio of one arm's final losses over another's on the seeds both have."""
    both = sorted(set(done) & set(theirs))
    if not both:
        return "-"
    return _ratio(paired_log_ratio([done[s]["learned"]["final"] for s in both],
                                   [theirs[s]["learned"]["final"] for s in both]))


def paired_table(summaries: Path, arms: tuple[str, ...] = HEADLINE,
                 specialists: bool = True) -> str:
    """Markdown, per suite and arm of ``arms``: the seeds scored, the median loss at step N
    (pooled over seeds and problems), the paired loss ratios against tuned Adam, tuned GD and
    the last arm of ``arms``, LSTM(update), on the seeds both have (median and 95% two-level
    bootstrap interval over seeds and problems, stats.paired_log_ratio: below 1, the arm ends
    lower), diverged problems, the
    guard's refused fraction and the Adam-equivalent speedup (median over seeds and problems
    and its bootstrap interval over them; '>cap' where tuned Adam never gets there); and the
    specialists of SPECIALISTS on their own family (unless not ``specialists``). Held-out suites
    are marked (held out)."""
    rows = ["| suite | optimizer | seeds | median loss | / tuned Adam | / tuned GD | "
            f"/ {ARMS[arms[-1]][2]} | diverged | refused | Adam-equivalent |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for suite in SUITES:
        name = f"{suite} (held out)" if suite in HELD_OUT else suite
        runs = {arm: _scored(summaries, arm, suite) for arm in arms}
        for arm in arms:
            done = runs[arm]
            if not done:
                continue
            final, vs, diverged, refused, speed = _cells(done)
            vs_other = "-" if arm == arms[-1] else _versus(done, runs[arms[-1]])
            rows.append(f"| {name} | {ARMS[arm][2]} | {len(done)} | {median(final.ravel()):.3g} "
                        f"| {vs['adam']} | {vs['gd']} | {vs_other} | {diverged} | {refused} | "
                        f"{speed} |")
        for spec in SPECIALISTS.get(suite, []) if specialists else []:
            f = summaries / STUDY / "specialists" / f"{spec}-{suite}.json"
            if f.is_file():
                d = json.loads(f.read_text())
                final = np.array([d["learned"]["final"]])
                vs = {k: _ratio(paired_log_ratio(final, [d[k]["final"]])) for k in ("adam", "gd")}
                rows.append(f"| {name} | specialist {spec}.pt | - | {median(final.ravel()):.3g} "
                            f"| {vs['adam']} | {vs['gd']} | - | "
                            f"{d['learned']['diverged']}/{final.size} | "
                            f"{d['learned'].get('refused_fraction', 0.0):.2f} | - |")
    return "\n".join(rows) + "\n"


def shipped_table(summaries: Path, arm: str,
                  against: tuple[str, ...] = ("update", "update_tele_diag")) -> str:
    """Markdown, one row per suite for ``arm`` (the shipped one): its seeds, median loss at
    step N, the paired ratios against tuned Adam, tuned GD and each arm of ``against`` (on the
    seeds both have), diverged problems, refused fraction and Adam-equivalent speedup; the
    columns of paired_table for one arm, so that the generalist issue's criteria read off one
    table."""
    rows = ["| suite | seeds | median loss | / tuned Adam | / tuned GD | "
            + " | ".join(f"/ {ARMS[a][2]}" for a in against)
            + " | diverged | refused | Adam-equivalent |",
            "|---|---|---|---|---|" + "---|" * len(against) + "---|---|---|"]
    for suite in SUITES:
        done = _scored(summaries, arm, suite)
        if not done:
            continue
        final, vs, diverged, refused, speed = _cells(done)
        ratios = [vs["adam"], vs["gd"],
                  *(_versus(done, _scored(summaries, other, suite)) for other in against)]
        name = f"{suite} (held out)" if suite in HELD_OUT else suite
        rows.append(f"| {name} | {len(done)} | {median(final.ravel()):.3g} | "
                    + " | ".join(ratios) + f" | {diverged} | {refused} | {speed} |")
    return "\n".join(rows) + "\n"


def real_table(summaries: Path, arms: tuple[str, ...] = HEADLINE) -> str:
    """Markdown, per real set (studies.realdata, through LearnedTorchOptimizer; a test set
    only) and arm: the seeds scored, the median held-out accuracy and training loss at step N
    (pooled over seeds and problems), tuned SGD's and Adam's, the paired difference in
    held-out accuracy against the better of the two (by median accuracy), and against the last
    arm of ``arms`` on the seeds both have: mean and 95% two-level bootstrap interval
    (stats.paired_difference)."""
    return _accuracy_table(summaries, arms, {name: (f"real-{name}",) for name in REAL_SETS},
                           ("sgd", "adam"), "accuracy")


def digits_accuracy_table(summaries: Path, arms: tuple[str, ...] = ACCURACY) -> str:
    """real_table's columns for the digits suite's held-out images (the family's own held-out
    pool, never in meta-training) against tuned GD and Adam: from the digits suite's summary,
    or for a run scored before score_suite recorded held-out metrics, from its extra pass
    ``<arm>/s<seed>-digits-accuracy.json``."""
    return _accuracy_table(summaries, arms, {"digits": ("digits-accuracy", "digits")},
                           ("gd", "adam"), "held_out_accuracy")


def _accuracy_table(summaries: Path, arms: tuple[str, ...], sources: dict[str, tuple[str, ...]],
                    hands: tuple[str, str], key: str) -> str:
    """The rows of real_table: per source (set name -> the summaries' suite keys, the first
    that records ``key`` taken for each seed) and arm."""
    rows = ["| set | optimizer | seeds | held-out accuracy | training loss | "
            + " | ".join(f"tuned {h.upper() if h != 'adam' else 'Adam'}" for h in hands)
            + f" | accuracy - best hand's | accuracy - {ARMS[arms[-1]][2]}'s |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, suites in sources.items():
        reference = _scored_with(summaries, arms[-1], suites, key)
        for arm in arms:
            done = _scored_with(summaries, arm, suites, key)
            if not done:
                continue
            seeds = sorted(done)
            best, acc, diff = versus_best_hand(done, hands, key)
            final = np.array([done[s]["learned"]["final"] for s in seeds])
            shown = [f"{median(v[key]):.3f} (loss {median(v['final']):.3g})"
                     for v in (done[seeds[0]][h] for h in hands)]
            both = sorted(set(done) & set(reference))
            other = "-" if arm == arms[-1] or not both else difference_text(paired_difference(
                [done[s]["learned"][key] for s in both],
                [reference[s]["learned"][key] for s in both]))
            rows.append(f"| {name} | {ARMS[arm][2]} | {len(seeds)} | "
                        f"{float(np.median(acc)):.3f} | {median(final.ravel()):.3g} | "
                        + " | ".join(shown) + f" | {difference_text(diff)} vs {best} | {other} |")
    return "\n".join(rows) + "\n"


#: a seed has failed when its validation score (a mean log-loss) lies more than this above the
#: median of its arm's chosen scores: a geometric-mean loss 4x the arm's typical one
FAILED_MARGIN = float(np.log(4.0))


def validation_history(folder: Path) -> dict[int, float]:
    """meta-step -> validation score (val/score, trainer.validation_score) of run ``folder``,
    from its TensorBoard log; the last entry is the final iterate's."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tb"))
    events.Reload()
    return {int(e.step): float(e.value) for e in events.Scalars("val/score")}


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


def selection_table(summaries: Path) -> str:
    """Markdown: per arm, the seeds that fail with selection on validation (the chosen
    iterate's score) and without it (the last iterate's), a seed failing when its score lies
    more than FAILED_MARGIN above the median of the arm's chosen scores or is not finite."""
    rows = ["| arm | seeds | chosen score per seed | last iterate's score per seed | "
            "failed with selection | failed without |", "|---|---|---|---|---|---|"]
    for arm, (_, _, label, _) in ARMS.items():
        found = {}
        for s, d in _scored(summaries, arm, "validation").items():
            history = {int(k): v for k, v in d["val_score"].items()}
            found[s] = (min(history.values()), history[max(history)])
        if not found:
            continue
        bar = median([c for c, _ in found.values()]) + FAILED_MARGIN
        failed = [sum(not (v[i] <= bar) for v in found.values()) for i in (0, 1)]
        rows.append(f"| {label} | {len(found)} | "
                    + " | ".join(", ".join(f"s{s}: {found[s][i]:.2f}" for s in sorted(found))
                                 for i in (0, 1))
                    + f" | {failed[0]}/{len(found)} | {failed[1]}/{len(found)} |")
    return "\n".join(rows) + "\n"


def status_table(summaries: Path) -> str:
    """Markdown: per arm, the finished seeds with their validation scores and training time."""
    rows = ["| arm | seeds done | validation score per seed | training time |",
            "|---|---|---|---|"]
    for arm, (_, _, label, seeds) in ARMS.items():
        done = _by_seed(summaries / STUDY / arm, seeds)
        scores = ", ".join(f"s{s}: {d['validation_score']:.3f}" for s, d in sorted(done.items()))
        minutes = sum(d["train_seconds_this_session"] for d in done.values()) / 60
        rows.append(f"| {label} | {len(done)}/{len(seeds)} | {scores or '-'} | "
                    f"{minutes:.0f} min |")
    return "\n".join(rows) + "\n"


def suite_table(summaries: Path) -> str:
    """Markdown: per suite and scored run, the median loss at step N of the run, tuned GD and
    tuned Adam, the diverged problems, the guard's refused fraction and the median
    Adam-equivalent speedup (">cap" where tuned Adam never reaches the run's loss)."""
    rows = ["| suite | arm | seed | median loss | tuned GD | tuned Adam | diverged | refused | "
            "Adam-equivalent |", "|---|---|---|---|---|---|---|---|---|"]
    for suite in SUITES:
        for arm, seed in ORDER:
            f = summaries / STUDY / arm / f"s{seed}-{suite}.json"
            if not f.is_file():
                continue
            d = json.loads(f.read_text())
            med = {k: median(d[k]["final"]) for k in ("learned", "gd", "adam")}
            speed = median(d["learned"]["adam_equivalent"])
            shown = f">{ADAM_CAP // d['n_steps']}x" if np.isinf(speed) else f"{speed:.1f}x"
            rows.append(f"| {suite} | {arm} | {seed} | {med['learned']:.3g} | {med['gd']:.3g} | "
                        f"{med['adam']:.3g} | {d['learned']['diverged']}/{d['problems']} "
                        f"(GD {d['gd']['diverged']}, Adam {d['adam']['diverged']}) | "
                        f"{d['learned'].get('refused_fraction', 0.0):.2f} | {shown} |")
    return "\n".join(rows) + "\n"


def _pairing(summaries: Path, arms: tuple[str, ...], subject: str, paired: str,
             accuracy: str) -> list[tuple[str, str]]:
    """The three sections of one pairing of ``arms`` (the arm they are paired with last):
    per suite (``subject + paired``), on real data and on the digits suite's held-out
    images (``... + accuracy``)."""
    return [(subject + paired, paired_table(summaries, arms, specialists=False)),
            (f"{subject} on real data", real_table(summaries, arms)),
            (f"{subject}: held-out accuracy on the digits suite{accuracy}",
             digits_accuracy_table(summaries, arms))]


def all_tables(summaries: Path) -> str:
    """Every table of the study from the committed summaries, as markdown under headings:
    what ``general_study.py`` prints and writes to ``studies/general/tables.md``."""
    shipped = shipped_choice(summaries, "general_update_tele")[0]
    # paired with the shipped LSTM(update)'s arm (the done-when comparison) and with the
    # study's first LSTM(update) arm and guarded diag arm
    against = tuple(dict.fromkeys((shipped_choice(summaries, "general_update")[0], "update",
                                   "update_tele_diag")))
    parts = [
        ("Runs", status_table(summaries)),
        (f"The shipped teleporting generalist ({ARMS[shipped][2]}), per suite",
         shipped_table(summaries, shipped, against)),
        ("Failed seeds with and without selection on validation", selection_table(summaries)),
        ("Per run and suite", suite_table(summaries)),
        ("Per suite, paired with LSTM(update)", paired_table(summaries)),
        ("Real data, through LearnedTorchOptimizer", real_table(summaries)),
        ("The diag arm's controls, paired with it", paired_table(summaries, CONTROLS,
                                                                 specialists=False)),
        ("The diag arm's controls on real data", real_table(summaries, CONTROLS)),
        ("The guard swapped at test time", guard_swap_table(summaries)),
        ("The teleports switched off at test time (m1 alone)", tele_off_table(summaries)),
        ("Twice the meta-training, paired with the same arm at the study's budget",
         paired_table(summaries, LONGER, specialists=False)),
        ("Twice the meta-training on real data", real_table(summaries, LONGER)),
        ("Teleport bound 3 and the held-out digits meta-loss, paired with the long arm",
         paired_table(summaries, VARIANTS, specialists=False)),
        ("Teleport bound 3 and the held-out digits meta-loss on real data",
         real_table(summaries, VARIANTS)),
        ("Curvature input and the held-out digits meta-loss on the bound-3 arm, paired with it",
         paired_table(summaries, CURVATURE, specialists=False)),
        ("Curvature input and the held-out digits meta-loss on real data",
         real_table(summaries, CURVATURE)),
        ("Half the groups on digits, on their held-out loss, paired with the bound-3 arm",
         paired_table(summaries, DIGITS_SHARE, specialists=False)),
        ("Half the groups on digits, on their held-out loss, on real data",
         real_table(summaries, DIGITS_SHARE)),
        ("Half the groups on digits: held-out accuracy on the digits suite, paired with the "
         "bound-3 arm", digits_accuracy_table(summaries, DIGITS_SHARE)),
        ("The bound-3 arm's iterate chosen on the digits problems' held-out loss, paired with "
         "the bound-3 arm", paired_table(summaries, VAL_HELD_OUT, specialists=False)),
        ("The iterate chosen on the digits problems' held-out loss, on real data",
         real_table(summaries, VAL_HELD_OUT)),
        ("The iterate chosen on the digits problems' held-out loss: held-out accuracy on the "
         "digits suite, paired with the bound-3 arm", digits_accuracy_table(summaries,
                                                                          VAL_HELD_OUT)),
        *_pairing(summaries, GRADIENT_FORM, "m1 as a preconditioner of the gradient",
                  " on the bound-3 arm, paired with it", ", paired with the bound-3 arm"),
        *_pairing(summaries, GRADIENT_TILT, "The gradient form's bound at 3 and at 1",
                  ", paired with the direct form's bound-3 arm", ", paired with it"),
        *_pairing(summaries, GRADIENT_TILT_UPDATE,
                  "The gradient form at tilt 3 for LSTM(update)", ", paired with it", ""),
        *_pairing(summaries, GRADIENT_FORM_UPDATE, "The gradient form for LSTM(update)",
                  ", paired with it (against the direct form's LSTM(update) and both "
                  "teleporting arms)", ""),
        ("LSTM(update) at the teleporting arms' budget (1600 trajectories), paired with them",
         paired_table(summaries, SAME_BUDGET, specialists=False)),
        ("LSTM(update) at the teleporting arms' budget on real data",
         real_table(summaries, SAME_BUDGET)),
        ("LSTM(update) at the teleporting arms' budget: held-out accuracy on the digits suite",
         digits_accuracy_table(summaries, SAME_BUDGET)),
        ("Held-out accuracy on the digits suite (the family's held-out images)",
         digits_accuracy_table(summaries)),
        *((f"{ARMS[arm][2]} against the specialists", specialist_table(summaries, arm))
          for arm in dict.fromkeys((shipped, "update_tele_diag", "update"))),
    ]
    head = ("# Study `general`\n\nRegenerate: `python scripts/general_study.py status` (from the "
            "committed summaries; `score` scores what is missing first).\n")
    return head + "".join(f"\n## {title}\n\n{table}" for title, table in parts)

