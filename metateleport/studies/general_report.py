"""The generalist study's report (``all_tables``): every table of general_tables.py under its
heading, the pairings of the arms in the registry (general.py) one section each, what
scripts/general_study.py prints and writes to studies/general/tables.md. Importable from
metateleport.studies.general too.
"""

from __future__ import annotations

from pathlib import Path

from .general import (
    ADAM_FORM,
    ADAM_FORM_UPDATE,
    ARMS,
    BALANCED,
    BALANCED_TEST,
    BALANCED_TEST_UPDATE,
    BALANCED_UPDATE,
    BUDGET,
    BUDGET6400,
    BUDGET6400_START,
    BUDGET6400_UPDATE,
    BUDGET_START,
    BUDGET_UPDATE,
    CONTROLS,
    CURVATURE,
    DIGITS_SHARE,
    DIRECT_SCALE,
    FIRST_BALANCED,
    FIRST_BALANCED_UPDATE,
    FIRST_BALANCED_VS_SHIPPED,
    GL_CONTROLS,
    GL_RECIPE,
    GRADIENT_FIRST,
    GRADIENT_FIRST_TILT3,
    GRADIENT_FIRST_UPDATE,
    GRADIENT_FORM,
    GRADIENT_FORM_UPDATE,
    GRADIENT_LAYER,
    GRADIENT_LAYER_UPDATE,
    GRADIENT_TILT,
    GRADIENT_TILT_UPDATE,
    HIDDEN,
    HIDDEN_UPDATE,
    LONGER,
    META_LR,
    META_LR_START,
    META_LR_UPDATE,
    MIXED_FIRST,
    MIXED_FIRST_UPDATE,
    MIXED_FORM,
    MIXED_FORM_UPDATE,
    MIXED_TILT,
    MIXED_TILT_PAIR,
    MIXED_TILT_UPDATE,
    MIXED_VS_SHIPPED,
    MOMENTS,
    MOMENTS_UPDATE,
    SAME_BUDGET,
    SCALE,
    SCALE_OWN,
    SCALE_OWN_START,
    SCALE_OWN_UPDATE,
    UNROLL,
    UPDATE_SWAP,
    VAL_HELD_OUT,
    VARIANTS,
)
from .general_runs import shipped_choice
from .general_tables import (
    digits_accuracy_table,
    guard_swap_table,
    paired_table,
    real_table,
    selection_table,
    shipped_table,
    specialist_table,
    status_table,
    suite_table,
    tele_off_table,
)

__all__ = ["all_tables"]


def _pairing(summaries: Path, arms: tuple[str, ...], subject: str, paired: str,
             accuracy: str) -> list[tuple[str, str]]:
    """The three sections of one pairing of ``arms`` (the arm they are paired with last):
    per suite (``subject + paired``), on real data and on the digits suite's held-out
    images (``... + accuracy``)."""
    return [(subject + paired, paired_table(summaries, arms, specialists=False)),
            (f"{subject} on real data", real_table(summaries, arms)),
            (f"{subject}: held-out accuracy on the digits suite{accuracy}",
             digits_accuracy_table(summaries, arms))]


def _budget_sections(summaries: Path, pairings: tuple[tuple[str, ...], ...], budget: int,
                     before: int) -> list[tuple[str, str]]:
    """The sections of general.BUDGET*'s pairings (``pairings``): the shipped recipe on
    ``budget`` meta-training trajectories paired with it on ``before``."""
    both, start, update = pairings
    return [*_pairing(summaries, both, f"The shipped recipe on {budget} meta-training "
                      "trajectories", " (meta-trained from the problems' own starts, and "
                      f"balanced at test time only), paired with the same on {before}",
                      ", paired with it"),
            *_pairing(summaries, start, f"{budget} meta-training trajectories from the problems' "
                      "own starts", f", paired with {before}", ", paired with it"),
            *_pairing(summaries, update, f"{budget} meta-training trajectories for LSTM(update)",
                      f", paired with {before} balanced at test time", "")]


def all_tables(summaries: Path) -> str:
    """Every table of the study from the committed summaries, as markdown under headings:
    what ``general_study.py`` prints and writes to ``studies/general/tables.md``."""
    # imported here, not at the top: general_verdict imports the modules that import this one
    from .general_verdict import done_when_table, frontier_table, shipping_table

    shipped = shipped_choice(summaries, "general_update_tele")[0]
    # paired with the shipped LSTM(update)'s arm (the done-when comparison) and with the
    # study's first LSTM(update) arm and guarded diag arm
    against = tuple(dict.fromkeys((shipped_choice(summaries, "general_update")[0], "update",
                                   "update_tele_diag")))
    parts = [
        ("Runs", status_table(summaries)),
        (f"The shipped teleporting generalist ({ARMS[shipped][2]}), per suite",
         shipped_table(summaries, shipped, against)),
        ("The done-when per candidate teleporting arm (general_verdict.py)",
         done_when_table(summaries)),
        ("The frontier: the specialists outside the gl group against real data, per teleporting "
         "diag arm (general_verdict.py)", frontier_table(summaries)),
        ("The shipping rule: what it read of every arm it chooses from (general_verdict.py)",
         shipping_table(summaries)),
        ("Failed seeds with and without selection on validation", selection_table(summaries)),
        ("Per run and suite", suite_table(summaries)),
        ("Per suite, paired with LSTM(update)", paired_table(summaries)),
        ("Real data, through LearnedTorchOptimizer", real_table(summaries)),
        ("The diag arm's controls, paired with it", paired_table(summaries, CONTROLS,
                                                                 specialists=False)),
        ("The diag arm's controls on real data", real_table(summaries, CONTROLS)),
        ("The gl arm's controls, paired with it", paired_table(summaries, GL_CONTROLS,
                                                               specialists=False)),
        ("The gl arm's controls on real data", real_table(summaries, GL_CONTROLS)),
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
        *_pairing(summaries, MOMENTS, "m1 reading Adam's moments",
                  " on the bound-3 arm, paired with it", ", paired with the bound-3 arm"),
        *_pairing(summaries, MOMENTS_UPDATE, "m1 reading Adam's moments for LSTM(update)",
                  ", paired with it", ""),
        *_pairing(summaries, ADAM_FORM, "m1 a preconditioner of Adam's direction",
                  ", paired with the gradient form's tilt-3 arm", ", paired with it"),
        *_pairing(summaries, ADAM_FORM_UPDATE,
                  "m1 a preconditioner of Adam's direction for LSTM(update)", ", paired with it",
                  ""),
        *_pairing(summaries, MIXED_FORM, "m1 a preconditioner of both the gradient and Adam's "
                  "direction", ", paired with the gradient form's tilt-3 arm", ", paired with it"),
        *_pairing(summaries, MIXED_VS_SHIPPED, "m1 a preconditioner of both the gradient and "
                  "Adam's direction against the direct form", ", paired with the bound-3 arm",
                  ", paired with it"),
        *_pairing(summaries, MIXED_FORM_UPDATE, "m1 a preconditioner of both the gradient and "
                  "Adam's direction for LSTM(update)", ", paired with it", ""),
        *_pairing(summaries, MIXED_TILT, "The mixed form at tilt 2",
                  " (with the mixed tilt-3 and the gradient form's tilt-1 arms), paired with "
                  "the direct form's bound-3 arm", ", paired with it"),
        *_pairing(summaries, MIXED_TILT_PAIR, "The mixed form at tilt 2 against tilt 3",
                  ", paired with tilt 3", ", paired with it"),
        *_pairing(summaries, MIXED_TILT_UPDATE, "The mixed form at tilt 2 for LSTM(update)",
                  ", paired with it", ""),
        *_pairing(summaries, GRADIENT_LAYER, "The gradient form's tilt 1 per layer",
                  " (with the mixed tilt-3 and the direct bound-3 arms), paired with tilt 1 "
                  "over the problem", ", paired with it"),
        *_pairing(summaries, GRADIENT_LAYER_UPDATE,
                  "The gradient form's tilt 1 per layer for LSTM(update)", ", paired with it",
                  ""),
        *_pairing(summaries, GRADIENT_FIRST,
                  "The gradient form at tilt 3 per layer, the first layer at tilt 1",
                  " (with tilt 3 over the problem and the direct bound-3 arm), paired with tilt "
                  "1 per layer", ", paired with it"),
        *_pairing(summaries, GRADIENT_FIRST_TILT3,
                  "The gradient form's first layer at tilt 1 (tilt 3 per layer elsewhere)",
                  ", paired with tilt 3 over the problem", ", paired with it"),
        *_pairing(summaries, GRADIENT_FIRST_UPDATE,
                  "The gradient form at tilt 3 per layer, the first at 1, for LSTM(update)",
                  ", paired with it", ""),
        *_pairing(summaries, MIXED_FIRST,
                  "The mixed form at tilt 3 per layer, the first layer at tilt 1",
                  " (with the gradient form's and the direct bound-3 arms), paired with the "
                  "mixed form at tilt 3 over the problem", ", paired with it"),
        *_pairing(summaries, MIXED_FIRST_UPDATE,
                  "The mixed form at tilt 3 per layer, the first at 1, for LSTM(update)",
                  ", paired with it", ""),
        *_pairing(summaries, BALANCED, "The mixed form at tilt 3 from balanced starts",
                  ", paired with the mixed form at tilt 3 from the problems' own starts",
                  ", paired with it"),
        *_pairing(summaries, BALANCED_UPDATE,
                  "The mixed form at tilt 3 from balanced starts, for LSTM(update)",
                  ", paired with it", ""),
        *_pairing(summaries, BALANCED_TEST,
                  "The mixed form at tilt 3 balanced before the first step at test time only",
                  " (with the arm meta-trained from balanced starts), paired with the mixed "
                  "form at tilt 3 from the problems' own starts", ", paired with it"),
        *_pairing(summaries, BALANCED_TEST_UPDATE,
                  "Balanced starts at test time only, against the LSTM(update)s from balanced "
                  "starts", " (meta-trained so, and at test time only), paired with the "
                  "first", ", paired with it"),
        *_pairing(summaries, FIRST_BALANCED,
                  "The per-layer recipe (the first layer at tilt 1) from balanced starts",
                  " (at test time only and meta-trained so), paired with it from the problems' "
                  "own starts", ", paired with it"),
        *_pairing(summaries, FIRST_BALANCED_UPDATE,
                  "The per-layer recipe from balanced starts, for LSTM(update)",
                  ", paired with it", ""),
        *_pairing(summaries, FIRST_BALANCED_VS_SHIPPED,
                  "The per-layer recipe from balanced starts against the shipped generalist",
                  " (tilt 3 over the problem, balanced at test time only), paired with it",
                  ", paired with it"),
        *_pairing(summaries, SCALE,
                  "The function's scale growth in the meta-loss (train.scale_weight 1, 10)",
                  ", paired with the mixed tilt-3 arm from balanced starts without it",
                  ", paired with it"),
        *_pairing(summaries, SCALE_OWN,
                  "The scale term (weights 1 and 3) on the mixed tilt-3 recipe",
                  " (meta-trained from the problems' own starts, and balanced at test time "
                  "only), paired with it balanced at test time without the term",
                  ", paired with it"),
        *_pairing(summaries, SCALE_OWN_START, "The scale term on the mixed tilt-3 recipe from the "
                  "problems' own starts", ", paired with the arm without it", ", paired with it"),
        *_pairing(summaries, SCALE_OWN_UPDATE, "The scale term on the mixed tilt-3 recipe, for "
                  "LSTM(update)", ", paired with it", ""),
        *_pairing(summaries, META_LR, "The shipped recipe at peak meta-learning rate 0.001",
                  " (meta-trained from the problems' own starts, and balanced at test time "
                  "only), paired with the shipped generalist (0.003)", ", paired with it"),
        *_pairing(summaries, META_LR_START, "Peak meta-learning rate 0.001 from the problems' "
                  "own starts", ", paired with 0.003", ", paired with it"),
        *_pairing(summaries, META_LR_UPDATE, "Peak meta-learning rate 0.001 for LSTM(update)",
                  ", paired with 0.003 balanced at test time", ""),
        *_budget_sections(summaries, (BUDGET, BUDGET_START, BUDGET_UPDATE), 3200, 1600),
        *_budget_sections(summaries, (BUDGET6400, BUDGET6400_START, BUDGET6400_UPDATE), 6400,
                          3200),
        *_pairing(summaries, HIDDEN, "40 x 2 LSTMs on the shipped recipe (3200 trajectories)",
                  " (meta-trained from the problems' own starts, and balanced at test time "
                  "only), paired with the shipped generalist (20 x 2)", ", paired with it"),
        *_pairing(summaries, HIDDEN_UPDATE, "40 x 2 LSTMs for LSTM(update)",
                  ", paired with 20 x 2 balanced at test time", ""),
        *_pairing(summaries, UNROLL, "Unrolls of 20 steps on the shipped recipe (3200 "
                  "trajectories)", " (meta-trained from the problems' own starts, and balanced "
                  "at test time only), paired with the shipped generalist (unrolls of 10)",
                  ", paired with it"),
        *_pairing(summaries, DIRECT_SCALE, "The scale term at weight 3 on the direct form's "
                  "bound-1 arm", " (meta-trained so, and balanced at test time only), paired "
                  "with that arm without it", ", paired with it"),
        *_pairing(summaries, UPDATE_SWAP, "The LSTM(update) shipped as general_update.pt since "
                  "a fifth session of 2026-12-07", ", paired with the one it replaced",
                  ", paired with it"),
        *_pairing(summaries, GL_RECIPE, "The gl group at the diag bound-3 arm's recipe",
                  " (with the held-out digits meta-loss and the first gl arm without the "
                  "guard), paired with the diag bound-3 arm", ", paired with it"),
        ("LSTM(update) at the teleporting arms' budget (1600 trajectories), paired with them",
         paired_table(summaries, SAME_BUDGET, specialists=False)),
        ("LSTM(update) at the teleporting arms' budget on real data",
         real_table(summaries, SAME_BUDGET)),
        ("LSTM(update) at the teleporting arms' budget: held-out accuracy on the digits suite",
         digits_accuracy_table(summaries, SAME_BUDGET)),
        ("Held-out accuracy on the digits suite (the family's held-out images)",
         digits_accuracy_table(summaries)),
        *((f"{ARMS[arm][2]} against the specialists", specialist_table(summaries, arm))
          # the direct form's bound-3 arm: shipped until 2026-12-06, the fastest on most suites
          # and the gl group at its recipe: how near a gl generalist comes to the gl specialists
          for arm in dict.fromkeys((shipped, "update_tele_diag-noguard-long-bound3",
                                    "update_tele-noguard-long-bound3",
                                    "update_tele-noguard-long-bound3-held_out", "update_tele_diag",
                                    "update"))),
    ]
    head = ("# Study `general`\n\nRegenerate: `python scripts/general_study.py status` (from the "
            "committed summaries; `score` scores what is missing first).\n")
    return head + "".join(f"\n## {title}\n\n{table}" for title, table in parts)
