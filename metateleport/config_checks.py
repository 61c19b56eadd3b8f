"""The checks of a config across its keys (config.config_from_dict runs them after each key
passed its own): widths against samples, a family's options, and the model's options that need
or exclude each other. Every failure is a ConfigError naming the keys."""

from __future__ import annotations

import dataclasses

from .config import Config, ConfigError, TaskConfig

__all__ = ["check_cross"]


def check_cross(cfg: Config) -> None:
    """Raise ConfigError, naming the keys, where keys that are valid one by one do not fit
    together (widths and samples, the family's options, the model's options)."""
    t, m, tr = cfg.task, cfg.model, cfg.train
    if len(t.widths) < 3 or any(w < 1 for w in t.widths):
        raise ConfigError(f"task.widths: need >= 3 positive widths (d_0, d_1, ..., d_L), "
                          f"got {t.widths}")
    for k in range(1, len(t.widths) - 1):
        if t.n_samples > t.widths[k - 1] + t.bias:
            bound = f"d_{k - 1}{' + 1, with biases' if t.bias else ''}"
            raise ConfigError(
                f"task.n_samples: {t.n_samples} > task.widths[{k - 1}]={t.widths[k - 1]}"
                f"{' + 1' if t.bias else ''}; the input of hidden layer {k} needs full column "
                f"rank (n <= {bound})"
            )
    if t.family == "digits":
        _check_digits(t)
    _check_family(t)
    some_held_out = t.family == "digits" or (
        t.family == "distribution" and (t.options or {}).get("digits", 0) > 0)
    for key in ("meta_loss_on", "validate_on"):
        on = getattr(tr, key)
        if on == "held_out" and t.family != "digits":
            raise ConfigError(f"train.{key}: held_out needs a family with held-out samples "
                              f"(task.family: digits), got task.family: {t.family}")
        if on == "held_out_where_available" and not some_held_out:
            raise ConfigError(
                f"train.{key}: held_out_where_available needs a family some of whose problems "
                "have held-out samples (task.family: digits, or distribution with "
                f"options.digits > 0), got task.family: {t.family}")
    if tr.refused_weight > 0 and m.guard is None:
        raise ConfigError(f"train.refused_weight: {tr.refused_weight} penalizes the steps the "
                          f"guard refuses, but model.guard is null")
    if m.tele_group == "diag" and (m.lookahead_input or m.tele_action != "exact"):
        raise ConfigError("model.tele_group: diag has neither model.lookahead_input nor "
                          "model.tele_action: first_order (both are gl's)")
    if m.update_form in ("gradient", "mixed") and (m.update_input != "rms"
                                                    or m.variant == "lr_tele"):
        raise ConfigError(f"model.update_form: {m.update_form} moves along m1's input, the "
                          "gradient over its RMS: it needs model.update_input: rms and a variant "
                          f"with m1 (not lr_tele), got update_input: {m.update_input}, variant: "
                          f"{m.variant}")
    if m.update_moments and (m.variant == "lr_tele" or m.lookahead_input):
        raise ConfigError("model.update_moments: needs an m1 (not model.variant lr_tele) that "
                          "m2 does not look ahead with (model.lookahead_input: false), got "
                          f"variant: {m.variant}, lookahead_input: {m.lookahead_input}")
    if m.update_moments and m.tele_group == "gl" and m.variant in ("update_tele",
                                                                    "update_random_tele"):
        raise ConfigError(f"model.update_moments: the moments follow a diag teleport; with "
                          f"model.tele_group: gl ({m.variant}) they would restart at every one")
    if m.update_tilt is not None and m.update_form == "direct":
        raise ConfigError(f"model.update_tilt: {m.update_tilt} bounds the gradient, adam or "
                          f"mixed form's steps, but model.update_form is {m.update_form}")
    if m.update_tilt_over != "problem" and m.update_tilt is None:
        raise ConfigError(f"model.update_tilt_over: {m.update_tilt_over} says what the tilt "
                          "bounds a log-step around, but model.update_tilt is null")
    if m.update_tilt_first is not None and m.update_tilt is None:
        raise ConfigError(f"model.update_tilt_first: {m.update_tilt_first} bounds the first "
                          "layer's log-steps, but model.update_tilt is null (no bound)")
    if m.update_form in ("adam", "mixed") and not m.update_moments:
        raise ConfigError(f"model.update_form: {m.update_form} moves along Adam's direction: it "
                          "needs model.update_moments: true")
    if m.variant == "update_random_tele" and m.tele_norm is None:
        raise ConfigError("model.tele_norm: variant update_random_tele needs a fixed norm for "
                          "its random teleports, got null")
    if tr.batch_size > tr.trajectories:
        raise ConfigError(f"train.batch_size: {tr.batch_size} > train.trajectories="
                          f"{tr.trajectories}; one batch would hold more trajectories than the "
                          "run asks for")
    if m.balance_skip and not m.balance_input:
        raise ConfigError("model.balance_skip: needs model.balance_input: true (the skip is a "
                          "path from that input)")
    if m.lookahead_input and m.variant != "update_tele":
        raise ConfigError(f"model.lookahead_input: needs model.variant update_tele (a learned m2 "
                          f"and an m1 to look ahead with), got {m.variant}")
    if not m.lr_init < m.lr_max:
        raise ConfigError(f"model.lr_init: {m.lr_init} must be < model.lr_max={m.lr_max}")
    if tr.n_steps % tr.unroll:
        raise ConfigError(
            f"train.unroll: {tr.unroll} must divide train.n_steps={tr.n_steps}"
        )


def _check_digits(t: TaskConfig) -> None:
    from .tasks import DigitsTaskFamily

    bad = DigitsTaskFamily.problem(t.widths, t.n_samples, t.cond)
    if bad:
        raise ConfigError(f"task.{bad[0]}: {bad[1]}")


def _check_family(t: TaskConfig) -> None:
    """The registered family's own argument checks (e.g. imbalanced needs unit_span > 1), as a
    ConfigError naming the key."""
    from .tasks import make_family

    if t.family == "digits":
        if t.options:
            raise ConfigError("task.options: the digits family takes none")
        return  # checked above, without loading the images
    try:
        make_family(dataclasses.asdict(t))
    except ValueError as err:
        key, _, rest = str(err).partition(": ")
        if key.startswith("task."):
            raise ConfigError(str(err)) from None
        raise ConfigError(f"task.{key}: {rest}" if hasattr(t, key)
                          else f"task.family: {err}") from None
