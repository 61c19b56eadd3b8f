"""The order in which the generalist study's runs are trained (general_arms.ARMS names the
arms): registered with them, before any of their runs, and re-exported by general_arms.
"""

from __future__ import annotations

__all__ = ["ORDER"]


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
                           "update-long-moments")]
            + [(arm, s) for s in range(5)
               for arm in ("update_tele_diag-noguard-long-bound3-adam-tilt3",
                           "update-long-adam-tilt3")]
            # the teleporting arm's seeds first: its LSTM(update) is the comparison only
            + [("update_tele_diag-noguard-long-bound3-mixed-tilt3", s) for s in range(5)]
            + [("update-long-mixed-tilt3", s) for s in range(5)]
            + [("update_tele_diag-noguard-long-bound3-mixed-tilt2", s) for s in range(5)]
            + [("update-long-mixed-tilt2", s) for s in range(5)]
            + [("update_tele_diag-noguard-long-bound3-gradient-layer", s) for s in range(5)]
            + [("update-long-gradient-layer", s) for s in range(5)]
            + [("update_tele_diag-noguard-long-bound3-gradient-layer3-first1", s)
               for s in range(5)]
            + [("update-long-gradient-layer3-first1", s) for s in range(5)]
            + [("update_tele_diag-noguard-long-bound3-mixed-layer3-first1", s)
               for s in range(5)]
            + [("update-long-mixed-layer3-first1", s) for s in range(5)]
            + [("update_tele-noguard-long-bound3", s) for s in range(3)]
            + [("update_tele-noguard-long-bound3-held_out", s) for s in range(3)]
            # interleaved: each seed's pair is the done-when's comparison
            + [(arm, s) for s in range(5)
               for arm in ("update_tele_diag-noguard-long-bound3-mixed-tilt3-balanced",
                           "update-long-mixed-tilt3-balanced")]
            + [(arm, s) for s in range(5)
               for arm in ("update_tele_diag-noguard-long-bound3-mixed-tilt3-balanced_test",
                           "update-long-mixed-tilt3-balanced_test")]
            + [("update_tele_diag-noguard-long-mixed-tilt3-balanced", s) for s in range(3)]
            + [(arm, s) for suffix in ("balanced_test", "balanced") for s in range(5)
               for arm in (f"update_tele_diag-noguard-long-bound3-mixed-layer3-first1-{suffix}",
                           f"update-long-mixed-layer3-first1-{suffix}")]
            + [(f"update_tele_diag-noguard-long-bound3-mixed-tilt3-balanced-scale{w}", s)
               for w in (1, 10) for s in range(3)]
            # interleaved, each seed's pair; then their iterates balanced at test time
            + [(arm, s) for suffix in ("", "-balanced_test") for s in range(5)
               for arm in (f"update_tele_diag-noguard-long-bound3-mixed-tilt3-scale1{suffix}",
                           f"update-long-mixed-tilt3-scale1{suffix}")]
            # weight 3: the teleporting arm's seeds first, then its LSTM(update)'s
            + [(f"{arm}-scale3{suffix}", s) for suffix in ("", "-balanced_test")
               for arm in ("update_tele_diag-noguard-long-bound3-mixed-tilt3",
                           "update-long-mixed-tilt3") for s in range(5)]
            # the peak meta-learning rate 0.001 (3 seeds), the budgets of 3200 and 6400
            # trajectories and 40 x 2 LSTMs: the same order as weight 3's
            + [(f"{arm}-scale1-{how}{suffix}", s)
               for how, seeds in (("meta_lr0.001", range(3)), ("budget3200", range(5)),
                                  ("budget6400", range(3)), ("budget3200-hidden40", range(5)))
               for suffix in ("", "-balanced_test")
               for arm in ("update_tele_diag-noguard-long-bound3-mixed-tilt3",
                           "update-long-mixed-tilt3") for s in seeds]
            # unrolls of 20 (teleporting arm only)
            + [(f"update_tele_diag-noguard-long-bound3-mixed-tilt3-scale1-budget3200-unroll20"
                f"{suffix}", s) for suffix in ("", "-balanced_test") for s in range(3)]
            # the direct form's bound-1 arm with the scale term at weight 3
            + [(f"update_tele_diag-noguard-long-scale3{suffix}", s)
               for suffix in ("", "-balanced_test") for s in range(5)])


#: the order in which runs are trained
ORDER = _order()
