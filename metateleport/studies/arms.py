"""The registry of the studies of learned teleportation: per study, its arms (a config plus
overrides, and a label), the groups of arms chosen among on validation, the paired comparisons
of its table and its row of the headline table.

    STUDIES[study] = {"arms": {arm: (config, overrides, label)}, "choose": {name: [arms]},
                      "compare": [(A, B)], "family": text, "headline": {column: A},
                      "seeds": [...]}

A and B are arm names or chosen names; "family" and "headline" only for the studies in
studies/headline.md; "seeds" only where they are not SEEDS ("arm_seeds": {arm: seeds} for
arms with seeds of their own); "frontier": the title of the cost-quality plot of a study
whose arms are LSTM sizes "h<H>-l<L>" (studies.frontier); "keep_params": True keeps each new
run's parameters beside its summary and adds the hand-optimizer comparison (studies.hand).
An arm's run of seed s meta-trains configs/<config>.yaml with its overrides at train.seed = s.
"""

from __future__ import annotations

__all__ = ["PROBLEMS", "SEEDS", "STUDIES", "StudyError", "seeds_of"]


class StudyError(ValueError):
    """A study cannot do what was asked (no finished runs of an arm, a run folder missing...)."""


#: meta-training seeds of every study without "seeds" of its own
SEEDS = [0, 1, 2, 3, 4]
#: validation and test problems M of every run (seed 0 of each stream, as eval_meta.py's)
PROBLEMS = 64
_FLAT = ["task.unit_span=1.0"]  # an imbalanced_* config on the paper's family
# configs/imbalanced_update_tele.yaml is the m2 chosen here (tele_scale 0.1, norm <= 3, balance
# input and skip, lookahead input); the other m2 arms undo parts of it:
_NOLOOK = ["model.lookahead_input=false"]
_NOSKIP = [*_NOLOOK, "model.balance_skip=false"]
_COND = ["task.cond=1000.0"]  # the ill-conditioned family of the oracle's headroom
_FIRST = [*_NOSKIP, "model.tele_scale=0.01", "model.max_tele_norm=1.0"]  # the first m2 tried
#: (hidden units, layers) of m1's and m2's LSTMs in the frontier study; (20, 2): the present
FRONTIER_SIZES = [(4, 1), (4, 2), (8, 1), (8, 2), (20, 1), (20, 2)]


def _frontier_study(config: str, overrides: list[str], label: str, family: str,
                    title: str) -> dict:
    """A frontier study: ``config`` with ``overrides`` at every size of FRONTIER_SIZES (arms
    "h<H>-l<L>"), 3 seeds, every size compared with the present 20 x 2; ``title``: its
    plot's."""
    return {
        "arms": {f"h{h}-l{n}": (config, [*overrides, f"model.hidden_size={h}",
                                         f"model.num_layers={n}"],
                                f"{label}, m1 and m2 of {n} x {h} units")
                 for h, n in FRONTIER_SIZES},
        "choose": {},
        "family": family,
        "seeds": [0, 1, 2],
        "frontier": title,
        "compare": [(f"h{h}-l{n}", "h20-l2") for h, n in FRONTIER_SIZES if (h, n) != (20, 2)],
    }


STUDIES = {
    "imbalanced": {
        "arms": {
            "update": ("imbalanced_update", [], "LSTM(update)"),
            "update_balance": ("imbalanced_update_balance", ["model.tele_until=1"],
                               "LSTM(update)+balance"),
            "update_balance-every": ("imbalanced_update_balance", [],
                                     "LSTM(update)+balance after every update"),
            "update_tele": ("imbalanced_update_tele", _FIRST,
                            "LSTM(update,tele), learned norm <= 1, balance input"),
            "update_tele-nobal": ("imbalanced_update_tele",
                                  [*_FIRST, "model.balance_input=false"],
                                  "LSTM(update,tele), learned norm <= 1, G only"),
            "update_tele-s0.1": ("imbalanced_update_tele", _NOSKIP,
                                 "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input"),
            "update_tele-s0.1-first20": ("imbalanced_update_tele",
                                         [*_NOSKIP, "model.tele_until=20"],
                                         "same, teleports in the first 20 steps only"),
            "update_tele-skip": ("imbalanced_update_tele", _NOLOOK,
                                 "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input "
                                 "and skip"),
            "update_tele-skip-look": ("imbalanced_update_tele", [],
                                      "same as skip, plus the lookahead input"),
            "update_tele-skip-reset": ("imbalanced_update_tele",
                                       [*_NOLOOK, "model.m1_state_on_tele=reset"],
                                       "same as skip, m1's state reset after every teleport"),
            # added 2026-12-02, a diagnostic of the diag generalist like the paper study's
            "update_tele-skip-diag": ("imbalanced_update_tele",
                                      [*_NOLOOK, "model.tele_group=diag"],
                                      "same as skip, with a diag m2 (per-unit rescaling)"),
            "update_random_tele": ("imbalanced_update_random_tele", [],
                                   "LSTM(update)+random tele, norm 0.003"),
            "update_random_tele-0.03": ("imbalanced_update_random_tele",
                                        ["model.tele_norm=0.03"],
                                        "LSTM(update)+random tele, norm 0.03"),
            "update_random_tele-0.2": ("imbalanced_update_random_tele",
                                       ["model.tele_norm=0.2"],
                                       "LSTM(update)+random tele, norm 0.2 (the learned "
                                       "teleports' median)"),
        },
        "choose": {"tele": ["update_tele", "update_tele-nobal", "update_tele-s0.1",
                            "update_tele-s0.1-first20", "update_tele-skip",
                            "update_tele-skip-look", "update_tele-skip-reset"],
                   "random": ["update_random_tele", "update_random_tele-0.03",
                              "update_random_tele-0.2"],
                   "balance": ["update_balance", "update_balance-every"]},
        "family": "imbalanced: hidden units rescaled by log-uniform factors in [1/10, 10]",
        "headline": {"LSTM(update)": "update", "+ random teleports": "random",
                     "+ balance": "balance", "LSTM(update,tele)": "tele"},
        "compare": [("tele", "update"), ("tele", "random"), ("tele", "balance"),
                    ("update_tele", "update_tele-nobal"), ("update_tele-skip", "update_tele-s0.1"),
                    ("update_tele-skip-look", "update_tele-skip"),
                    ("update_tele-skip-reset", "update_tele-skip"),
                    ("balance", "update"), ("update_tele-skip-diag", "update_tele-skip")],
        "arm_seeds": {"update_tele-skip-diag": [0, 1, 2]},
    },
    "paper": {
        "arms": {
            "update": ("update", [], "LSTM(update)"),
            "update_balance": ("imbalanced_update_balance", [*_FLAT, "model.tele_until=1"],
                               "LSTM(update)+balance"),
            "update_tele": ("update_tele", [], "LSTM(update,tele), norm 0.003 (shipped config)"),
            "update_tele-learned": ("paper_update_tele", _FIRST,
                                    "LSTM(update,tele), learned norm <= 1, balance input"),
            "update_tele-s0.1": ("paper_update_tele", _NOSKIP,
                                 "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input"),
            "update_tele-skip-look": ("paper_update_tele_look", [],
                                      "same as skip, plus the lookahead input"),
            "update_tele-skip": ("paper_update_tele", [],
                                 "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input "
                                 "and skip"),
            # added 2026-12-02: how much of the diag generalist's distance to this family's
            # gl specialists is the group (diag is exact for every input, gl on the batch)
            "update_tele-skip-diag": ("paper_update_tele", ["model.tele_group=diag"],
                                      "same as skip, with a diag m2 (per-unit rescaling)"),
            # and how much of the generalist LSTM(update)'s distance to update.pt is its m1's
            # scale-free input and its guard rather than the distribution
            "update-rms-guard": ("update", ["model.update_input=rms", "model.guard=2.0"],
                                 "LSTM(update), gradient input over its RMS and guard 2 (the "
                                 "generalist's m1)"),
            "update_random_tele": ("update_random_tele", [],
                                   "LSTM(update)+random tele, norm 0.003"),
            "update_random_tele-0.2": ("update_random_tele", ["model.tele_norm=0.2"],
                                       "LSTM(update)+random tele, norm 0.2 (the learned "
                                       "teleports' median)"),
        },
        "choose": {"tele": ["update_tele", "update_tele-learned", "update_tele-s0.1",
                            "update_tele-skip", "update_tele-skip-look",
                            "update_tele-skip-diag"],
                   "random": ["update_random_tele", "update_random_tele-0.2"]},
        "family": "the paper's: U[0, 1] data and weights, 20 x 20",
        "headline": {"LSTM(update)": "update", "+ random teleports": "random",
                     "+ balance": "update_balance", "LSTM(update,tele)": "tele"},
        "compare": [("tele", "update"), ("tele", "random"),
                    ("tele", "update_balance"), ("update_tele-learned", "update"),
                    ("update_tele-skip", "update"), ("update_tele-skip", "update_tele-s0.1"),
                    ("update_tele-skip-look", "update_tele-skip"), ("update_balance", "update"),
                    ("update_tele-skip-diag", "update_tele-skip"),
                    ("update_tele-skip-diag", "update"), ("update-rms-guard", "update")],
        # a diagnostic of the generalist's m1, 3 seeds so that it fits in one session
        "arm_seeds": {"update-rms-guard": [0, 1, 2]},
    },
    "cond": {
        "arms": {
            "update": ("imbalanced_update", [*_FLAT, *_COND], "LSTM(update)"),
            "update_balance": ("imbalanced_update_balance", [*_FLAT, *_COND],
                               "LSTM(update)+balance after every update"),
            "update_tele": ("cond_update_tele", [],
                            "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input "
                            "and skip"),
            # added 2026-12-02, a diagnostic of the diag generalist like the paper study's
            "update_tele-diag": ("cond_update_tele", ["model.tele_group=diag"],
                                 "same, with a diag m2 (per-unit rescaling)"),
            "update_random_tele": ("update_random_tele", [*_COND, "model.tele_norm=0.2"],
                                   "LSTM(update)+random tele, norm 0.2"),
        },
        "choose": {},
        "family": "ill-conditioned: X with log-spaced singular values, condition number 1e3",
        "headline": {"LSTM(update)": "update", "+ random teleports": "update_random_tele",
                     "+ balance": "update_balance", "LSTM(update,tele)": "update_tele"},
        "compare": [("update_tele", "update"), ("update_tele", "update_random_tele"),
                    ("update_tele", "update_balance"), ("update_balance", "update"),
                    ("update_tele-diag", "update_tele")],
        "arm_seeds": {"update_tele-diag": [0, 1, 2]},
    },
    "digits": {
        "arms": {
            "update": ("digits_update", [], "LSTM(update)"),
            "update_balance": ("digits_update", ["model.variant=update_balance",
                                                 "model.tele_until=1"],
                               "LSTM(update)+balance after the first update"),
            "update_random_tele": ("digits_update", ["model.variant=update_random_tele",
                                                     "model.tele_norm=0.2"],
                                   "LSTM(update)+random tele, norm 0.2"),
            "update_tele": ("digits_update_tele", [],
                            "LSTM(update,tele), tele_scale 0.1, norm <= 3, balance input "
                            "and skip"),
            "update-held_out": ("digits_update", ["train.meta_loss_on=held_out"],
                                "LSTM(update), meta-trained on the held-out loss"),
            "update_tele-held_out": ("digits_update_tele", ["train.meta_loss_on=held_out"],
                                     "LSTM(update,tele), meta-trained on the held-out loss"),
            # added 2026-12-01 (generalization issue, item 6): m2 in the diag group, exact for
            # every input, so that a teleport cannot change the function on held-out images
            "update_tele_diag": ("digits_update_tele", ["model.tele_group=diag"],
                                 "LSTM(update,tele) with a diag m2"),
            "update_tele_diag-held_out": ("digits_update_tele",
                                          ["model.tele_group=diag", "train.meta_loss_on=held_out"],
                                          "LSTM(update,tele) with a diag m2, meta-trained on the "
                                          "held-out loss"),
            # (item 6, second half) the diag m2 reading each unit's orbit curvature, the
            # paper's curvature of the minimum (model.curvature_input)
            "update_tele_diag-curv": ("digits_update_tele",
                                      ["model.tele_group=diag", "model.curvature_input=true"],
                                      "LSTM(update,tele) with a diag m2 reading curvature"),
            "update_tele_diag-curv-held_out": ("digits_update_tele",
                                               ["model.tele_group=diag",
                                                "model.curvature_input=true",
                                                "train.meta_loss_on=held_out"],
                                               "LSTM(update,tele) with a diag m2 reading "
                                               "curvature, meta-trained on the held-out loss"),
        },
        "choose": {},
        "family": "real data: scikit-learn's digits, 40 images per problem, 64-32-10 MLP "
                  "with biases",
        # 3 seeds, so that the held-out meta-loss arms fit beside the others in one session
        "seeds": [0, 1, 2],
        # 5 for the diag m2 arms (2026-12-01) and the LSTM(update) arms they are compared with
        "arm_seeds": {arm: [0, 1, 2, 3, 4] for arm in ("update", "update-held_out",
                                                        "update_tele_diag",
                                                        "update_tele_diag-held_out",
                                                        "update_tele_diag-curv",
                                                        "update_tele_diag-curv-held_out")},
        # runs since 2026-12-01 keep their parameters (studies/digits/<arm>/s<seed>.pt) for the
        # real-set scoring of studies.hand; tuned GD and Adam on the same problems: hand.json
        "keep_params": True,
        "headline": {"LSTM(update)": "update", "+ random teleports": "update_random_tele",
                     "+ balance": "update_balance", "LSTM(update,tele)": "update_tele"},
        "compare": [("update_tele", "update"), ("update_tele", "update_random_tele"),
                    ("update_tele", "update_balance"), ("update_balance", "update"),
                    ("update_tele-held_out", "update-held_out"),
                    ("update-held_out", "update"), ("update_tele-held_out", "update_tele"),
                    ("update_tele_diag", "update"), ("update_tele_diag", "update_tele"),
                    ("update_tele_diag-held_out", "update-held_out"),
                    ("update_tele_diag-held_out", "update_tele_diag"),
                    ("update_tele_diag-curv", "update_tele_diag"),
                    ("update_tele_diag-curv-held_out", "update_tele_diag-held_out")],
    },
    # issue 19 item 4: the cost-quality frontier of m1's and m2's LSTM sizes on the paper's
    # family, configs/update_tele.yaml (the config bench --reference times) at each size
    "frontier": _frontier_study("update_tele", [], "LSTM(update,tele)",
                                "the paper's: U[0, 1] data and weights, 20 x 20",
                                "LSTM(update,tele), the paper's family"),
    # the same sizes for the generalist (configs/general_update_tele.yaml with its diag m2,
    # the shipped general_update_tele.pt's config) on the task distribution, added 2026-12-01;
    # its h20-l2 is the config of the generalist study's update_tele_diag arm, and its seeds
    # 0-2 were scored from that arm's run folders (trained with nn.LSTM's kernel; the other
    # sizes train under the fused default, the same meta-training to float rounding)
    "frontier_general": _frontier_study(
        "general_update_tele", ["model.tele_group=diag"],
        "generalist LSTM(update,tele) with a diag m2",
        "the task distribution of configs/general_update_tele.yaml",
        "the generalist with a diag m2, the task distribution"),
    "first_order": {
        "arms": {
            "exact": ("update_tele", ["model.tele_norm=0.01"],
                      "LSTM(update,tele), norm 0.01, exact action"),
            "first_order": ("update_tele", ["model.tele_norm=0.01",
                                            "model.tele_action=first_order"],
                            "LSTM(update,tele), norm 0.01, first-order action (I+T, I-T)"),
        },
        "choose": {},
        "compare": [("first_order", "exact")],
    },
}


def seeds_of(study: str, arm: str | None = None) -> list[int]:
    """The meta-training seeds of ``study`` (its "seeds", else SEEDS), or of its ``arm`` where
    the study's "arm_seeds" gives that arm seeds of its own."""
    spec = STUDIES[study]
    if arm is not None and arm in spec.get("arm_seeds", {}):
        return spec["arm_seeds"][arm]
    return spec.get("seeds", SEEDS)
