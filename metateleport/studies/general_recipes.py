"""The recipes the generalist study's arms are built from (general_arms.ARMS): the shipped
generalists' mixed tilt-3 recipe and its LSTM(update), and the helpers that derive an ARMS
entry from another (the gradient form, the first layer at tilt 1, balanced starts, the scale
term, the peak meta-learning rate, the meta-training budget, the LSTMs' width, the unroll
length, further overrides).
"""

from __future__ import annotations

#: an ARMS entry: (config, overrides, label, seeds)
Entry = tuple[str, list[str], str, list[int]]


def in_gradient_form(config: str, overrides: list[str], label: str, tilt: float) -> Entry:
    """An ARMS entry, 5 seeds: the arm of ``config``, ``overrides`` and ``label`` with m1 in
    the gradient form (base step 0.1) under ``tilt``."""
    return (config, overrides + ["model.update_form=gradient", f"model.update_tilt={tilt}",
                                 "model.update_scale=0.1"],
            f"{label}, m1 a preconditioner of the gradient (tilt {tilt:g})", [0, 1, 2, 3, 4])


#: the mixed form at tilt 3 (the shipped generalists' recipe) and its LSTM(update): ARMS
#: entries, and the base of the arms that start balanced
MIXED_TILT3 = (
    "general_update_tele",
    ["model.tele_group=diag", "model.guard=null", "train.trajectories=1600",
     "model.max_tele_norm=3.0", "model.update_moments=true", "model.update_form=mixed",
     "model.update_tilt=3.0", "model.update_scale=0.1"],
    "LSTM(update,tele) with a diag m2 without the guard, twice the meta-training, "
    "teleport bound 3, m1 a preconditioner of both the gradient and Adam's direction "
    "(tilt 3)", [0, 1, 2, 3, 4])
MIXED_TILT3_UPDATE = (
    "general_update",
    ["train.trajectories=1600", "model.update_moments=true", "model.update_form=mixed",
     "model.update_tilt=3.0", "model.update_scale=0.1"],
    "LSTM(update), guarded, twice the meta-training, m1 a preconditioner of both the "
    "gradient and Adam's direction (tilt 3)", [0, 1, 2, 3, 4])


def first_layer_at_1(entry: Entry) -> Entry:
    """The mixed tilt-3 ARMS ``entry`` with its tilt per layer and the first layer's at 1 (the
    two options just before its base step), its label saying so."""
    config, overrides, label, seeds = entry
    at = overrides.index("model.update_scale=0.1")
    return (config, [*overrides[:at], "model.update_tilt_over=layer",
                     "model.update_tilt_first=1.0", *overrides[at:]],
            label.replace("(tilt 3)", "(tilt 3 per layer, 1 in the first)"), list(seeds))


#: the mixed form at tilt 3 per layer, the first layer at tilt 1, and its LSTM(update)
MIXED_LAYER3_FIRST1 = first_layer_at_1(MIXED_TILT3)
MIXED_LAYER3_FIRST1_UPDATE = first_layer_at_1(MIXED_TILT3_UPDATE)


def extended(entry: Entry, overrides: list[str], how: str,
             seeds: list[int] | None = None) -> Entry:
    """The ARMS ``entry`` with ``overrides`` after its own (so that a TEST_TIME arm extends its
    source's), its label ending in ``how``, on ``seeds`` (default the entry's)."""
    config, own, label, own_seeds = entry
    return config, [*own, *overrides], f"{label}, {how}", list(own_seeds if seeds is None
                                                               else seeds)


def balanced(entry: Entry, how: str) -> Entry:
    """The ARMS ``entry`` with model.balance_first on, its label ending in ``how``."""
    return extended(entry, ["model.balance_first=true"], how)


#: the mixed tilt-3 arm and its LSTM(update) under their ARMS names
MIXED_TILT3_ARMS = {"update_tele_diag-noguard-long-bound3-mixed-tilt3": MIXED_TILT3,
                    "update-long-mixed-tilt3": MIXED_TILT3_UPDATE}


def scaled(weight: int, arms: dict[str, Entry] | None = None) -> dict[str, Entry]:
    """ARMS entries: each of ``arms`` (default the mixed tilt-3 arm and its LSTM(update)) with
    the growth of the function's scale in the meta-loss at ``weight`` ("<arm>-scale<weight>")."""
    how = "the function's scale growth in the meta-loss" + (
        "" if weight == 1 else f" at weight {weight}")
    return {f"{arm}-scale{weight}": extended(entry, [f"train.scale_weight={float(weight)}"],
                                             how)
            for arm, entry in (MIXED_TILT3_ARMS if arms is None else arms).items()}


def at_meta_lr(meta_lr: float, arms: dict[str, Entry],
               seeds: list[int] | None = None) -> dict[str, Entry]:
    """ARMS entries: each of ``arms`` meta-trained at the peak meta-learning rate ``meta_lr``
    ("<arm>-meta_lr<meta_lr>"), the cosine schedule unchanged, on ``seeds`` (default its)."""
    return {f"{arm}-meta_lr{meta_lr:g}": extended(
                entry, [f"train.meta_lr={meta_lr:g}"], f"peak meta-learning rate {meta_lr:g}",
                seeds)
            for arm, entry in arms.items()}


def at_budget(trajectories: int, arms: dict[str, Entry],
              seeds: list[int] | None = None) -> dict[str, Entry]:
    """ARMS entries: each of ``arms`` (meta-trained on 1600 trajectories, "twice the
    meta-training") on ``trajectories`` instead ("<arm>-budget<trajectories>"), the cosine
    schedule stretched over them, everything else unchanged, on ``seeds`` (default its)."""
    out = {}
    for arm, (config, overrides, label, own_seeds) in arms.items():
        at = overrides.index("train.trajectories=1600")
        out[f"{arm}-budget{trajectories}"] = (
            config, [*overrides[:at], f"train.trajectories={trajectories}", *overrides[at + 1:]],
            label.replace("twice the meta-training", f"{trajectories} meta-training trajectories"),
            list(own_seeds if seeds is None else seeds))
    return out


def with_hidden(size: int, arms: dict[str, Entry]) -> dict[str, Entry]:
    """ARMS entries: each of ``arms`` with its LSTMs (m1, and m2 if it has one) ``size`` units
    wide instead of 20 ("<arm>-hidden<size>"; two layers, as before), everything else
    unchanged."""
    return {f"{arm}-hidden{size}": extended(entry, [f"model.hidden_size={size}"],
                                            f"LSTMs of {size} x 2 units")
            for arm, entry in arms.items()}


def with_unroll(unroll: int, arms: dict[str, Entry],
                seeds: list[int] | None = None) -> dict[str, Entry]:
    """ARMS entries: each of ``arms`` meta-trained by truncated unrolls of ``unroll`` inner steps
    instead of 10 ("<arm>-unroll<unroll>"; the same trajectories, so half the meta-steps at 20,
    each twice as long), everything else unchanged, on ``seeds`` (default its)."""
    return {f"{arm}-unroll{unroll}": extended(entry, [f"train.unroll={unroll}"],
                                              f"unrolls of {unroll} steps", seeds)
            for arm, entry in arms.items()}


def with_balanced_test(arms: dict[str, Entry]) -> dict[str, Entry]:
    """ARMS entries: ``arms``, then each with its iterates balanced at test time only
    (TEST_TIME, "<arm>-balanced_test")."""
    return {**arms, **{f"{arm}-balanced_test": balanced(entry,
                                                        "balanced starts at test time only")
                       for arm, entry in arms.items()}}


def with_scale(weight: int) -> dict[str, Entry]:
    """ARMS entries: ``scaled(weight)``, then both balanced at test time only."""
    return with_balanced_test(scaled(weight))
