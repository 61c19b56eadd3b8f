"""Run configuration: dataclasses loaded from YAML and validated before any work starts.

A YAML file has up to three sections, ``task``, ``model`` and ``train``; every key is optional and
defaults to the value below. ``--set section.key=value`` overrides a key (the value is parsed as
YAML). An unknown key, a wrong type or an out-of-range value raises ``ConfigError`` naming the key
and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Config",
    "ConfigError",
    "ModelConfig",
    "TaskConfig",
    "TrainConfig",
    "upgrade_section",
    "build_family",
    "build_optimizer",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "load_config",
]


class ConfigError(ValueError):
    """A configuration key is unknown, has the wrong type or is out of range."""


@dataclass
class TaskConfig:
    """The optimizee family: ``family`` names a class of the registry tasks.FAMILIES, built by
    tasks.make_family from the other keys (those that apply to it)."""

    family: str = "synthetic"  # synthetic | paper | imbalanced | ... | digits (real images)
    widths: list[int] = field(default_factory=lambda: [20, 20, 20])
    n_samples: int = 20
    init: str = "uniform"
    data: str = "uniform"
    init_scale: float = 1.0
    data_scale: float = 1.0
    slope: float = 0.1
    unit_span: float = 1.0
    layer_span: float = 1.0
    cond: float | None = None
    bias: bool = False  # every layer has a bias (nn.Linear's)
    options: dict[str, Any] | None = None  # a family's own options (distribution: its ranges)


@dataclass
class ModelConfig:
    """The learned optimizer (meta_optimizers.LearnedOptimizer, whose docstring has the details)."""

    variant: str = "update_tele"  # which of m1 / m2 / hand-designed teleport (VARIANTS)
    hidden_size: int = 20  # LSTM hidden units of m1 and m2
    num_layers: int = 2  # LSTM layers of m1 and m2
    preprocess_p: float = 10.0  # p of the log-sign input preprocessing
    update_scale: float = 0.1  # m1's output scale
    tele_scale: float = 0.01  # m2's output scale
    tele_norm: float | None = 0.01  # every ||T_k||_F rescaled to this; null: m2 sets it ...
    max_tele_norm: float = 0.1  # ... up to this
    lr_max: float = 1e-3  # lr_tele: bound of the learned step size
    lr_init: float = 3e-4  # lr_tele: its start
    tele_until: int | None = None  # teleport only while t < tele_until (null: always) ...
    tele_every: int = 1  # ... after the updates of steps t with t % tele_every == 0
    balance_input: bool = False  # m2 reads the balance signal of each unit on T_ii
    curvature_input: bool = False  # ... and log of each unit's orbit curvature (on T_ii)
    balance_skip: bool = False  # plus a learned a * (balance signal) on T_ii, outside the LSTM
    lookahead_input: bool = False  # m2 reads dlog L(after m1's next update)/dT too
    m1_state_on_tele: str = "keep"  # m1's LSTM state across a teleport: keep | reset
    tele_action: str = "exact"  # exact (expm) | first_order (I + T, I - T; the control)
    guard: float | None = None  # refuse a step whose loss exceeds guard x the best so far
    update_input: str = "raw"  # m1 reads the gradient: raw | rms (over the problem's coordinates)
    # m1's output is the update (direct) | the log of a positive step per coordinate along the
    # gradient over its RMS (gradient: -update_scale * exp(out) * g / rms(g); needs rms input)
    # | along Adam's direction m^ / sqrt(v^) (adam; needs update_moments) | both summed, two
    # log-steps per coordinate (mixed; needs rms input and update_moments)
    update_form: str = "direct"
    update_tilt: float | None = None  # gradient form: |log step - the problem's mean| <= this
    tele_input: str = "raw"  # m2 reads G: raw | normalized (each G_k over its RMS entry)
    tele_norm_over: str = "layer"  # tele_norm / max_tele_norm bound each layer's T | the network's
    tele_group: str = "gl"  # m2's group: gl (T_k, the action on the batch) | diag (per unit)
    update_moments: bool = False  # m1 also reads Adam's moments per coordinate (learned_update)
    # the tilt bounds a log-step around the problem's mean (problem) | its layer's (layer:
    # each layer's weights and bias a common step of their own)
    update_tilt_over: str = "problem"
    # the first layer's tilt (the layer reading the input features); null: update_tilt there too
    update_tilt_first: float | None = None
    # every run starts from its initial weights balanced (teleport.balance_fully; exact)
    balance_first: bool = False


@dataclass
class TrainConfig:
    """Meta-training by truncated BPTT (unroll.MetaTrainer)."""

    batch_size: int = 8
    n_steps: int = 100
    unroll: int = 10
    trajectories: int = 480
    meta_lr: float = 1e-3
    meta_lr_schedule: str = "cosine"
    grad_clip: float = 1.0
    meta_loss: str = "log"
    meta_loss_on: str = "train"  # train | held_out: the loss on each problem's held-out samples
    #   | held_out_where_available: that for the problems that have them (a distribution's digits)
    # the losses the validation score (trainer.validation_score) reads, which selects the
    # iterate kept (best_params.pt): the same choices as meta_loss_on
    validate_on: str = "train"
    refused_weight: float = 0.0  # meta-loss + this x log(L(proposal) / bound) per refused step
    # meta-loss + this x log(P(W_end) / P(W_start)) per window, P the squared path norm
    # (mlp.path_norm_sq): how much the window grew the function's scale, which no teleport moves
    scale_weight: float = 0.0
    val_every: int = 10
    val_problems: int = 32
    ckpt_every: int = 20
    keep_checkpoints: int = 3
    max_skip_fraction: float = 0.5
    seed: int = 0
    dtype: str = "float32"
    threads: int = 0
    # recompute every LSTM step's forward in the backward pass instead of keeping its
    # activations: the same meta-gradient in a third to a half of the peak memory, at 1.2-2.2x
    # the time (docs/benchmarks.md, "Memory")
    recompute_lstm: bool = False
    # step m1's and m2's LSTMs under autograd with the hand-written forward and backward
    # (networks._FusedCell) instead of nn.LSTM's kernel: the same meta-gradient to float
    # rounding, 1.2-1.6x faster on CPU (docs/benchmarks.md, "The fused LSTM"); null: fused on
    # CPU, nn.LSTM's kernel (cuDNN) on CUDA, where the fused cell has not been timed
    fused_lstm: bool | None = None


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


#: old key -> its present name: configs, run folders and checkpoints written with the old key
#: keep loading (giving both is an error)
ALIASES = {"task.dataset": "task.family", "model.tele_steps": "model.tele_until"}

_CHOICES = {
    "task.init": ("uniform", "normal", "torch"),
    "task.data": ("uniform", "normal"),
    "model.variant": ("update_tele", "update", "lr_tele", "update_random_tele",
                      "update_balance"),
    "model.tele_action": ("exact", "first_order"),
    "model.m1_state_on_tele": ("keep", "reset"),
    "model.update_input": ("raw", "rms"),
    "model.update_form": ("direct", "gradient", "adam", "mixed"),
    "model.update_tilt_over": ("problem", "layer"),
    "model.tele_input": ("raw", "normalized"),
    "model.tele_norm_over": ("layer", "network"),
    "model.tele_group": ("gl", "diag"),
    "train.meta_loss": ("log", "sum"),
    "train.meta_loss_on": ("train", "held_out", "held_out_where_available"),
    "train.validate_on": ("train", "held_out", "held_out_where_available"),
    "train.meta_lr_schedule": ("constant", "cosine"),
    "train.dtype": ("float32", "float64"),
}

# key -> (predicate, what is allowed)
_POSITIVE = (lambda v: v > 0, "> 0")
_AT_LEAST_ONE = (lambda v: v >= 1, ">= 1")
_NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
_RANGES = {
    "task.n_samples": _AT_LEAST_ONE,
    "task.init_scale": _POSITIVE,
    "task.data_scale": _POSITIVE,
    "task.slope": (lambda v: v > 0 and v != 1, "> 0 and != 1"),
    "task.unit_span": (lambda v: v >= 1, ">= 1 (1: no rescaling)"),
    "task.layer_span": (lambda v: v >= 1, ">= 1 (1: no rescaling)"),
    "task.cond": (lambda v: v is None or v >= 1, ">= 1, or null to keep the data as drawn"),
    "model.hidden_size": _AT_LEAST_ONE,
    "model.num_layers": _AT_LEAST_ONE,
    "model.preprocess_p": _POSITIVE,
    "model.update_scale": _POSITIVE,
    "model.tele_scale": _POSITIVE,
    "model.tele_norm": (lambda v: v is None or v > 0, "> 0, or null to let the network set it"),
    "model.max_tele_norm": _POSITIVE,
    "model.lr_max": _POSITIVE,
    "model.lr_init": _POSITIVE,
    "model.tele_until": (lambda v: v is None or v >= 1, ">= 1, or null to teleport every step"),
    "model.tele_every": _AT_LEAST_ONE,
    "model.guard": (lambda v: v is None or v >= 1, ">= 1, or null for no guard"),
    "model.update_tilt": (lambda v: v is None or v > 0, "> 0, or null for no bound"),
    "model.update_tilt_first": (lambda v: v is None or v > 0,
                                "> 0, or null for update_tilt's bound"),
    "train.batch_size": _AT_LEAST_ONE,
    "train.n_steps": _AT_LEAST_ONE,
    "train.unroll": _AT_LEAST_ONE,
    "train.trajectories": _AT_LEAST_ONE,
    "train.meta_lr": _POSITIVE,
    "train.grad_clip": _POSITIVE,
    "train.refused_weight": (_NON_NEGATIVE[0], ">= 0 (0: refused proposals give no meta-loss)"),
    "train.scale_weight": (_NON_NEGATIVE[0], ">= 0 (0: the function's scale is not penalized)"),
    "train.val_every": (_NON_NEGATIVE[0], ">= 0 (0: never)"),
    "train.val_problems": _AT_LEAST_ONE,
    "train.ckpt_every": _AT_LEAST_ONE,
    "train.keep_checkpoints": _AT_LEAST_ONE,
    "train.max_skip_fraction": (lambda v: 0 < v <= 1, "in (0, 1] (1: never stop)"),
    "train.seed": _NON_NEGATIVE,
    "train.threads": (_NON_NEGATIVE[0], ">= 0 (0: torch's default)"),
}


def _check_type(key: str, value: Any, hint: Any) -> Any:
    """Return value converted to ``hint`` (int -> float allowed) or raise ConfigError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(key, value, inner[0])
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list of {item.__name__}, got {value!r}")
        return [_check_type(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads 3e-3 (no dot) as a string; a user means the number.
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected float, got str {value!r}") from None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: {value!r} is not a finite number")
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(
            f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def upgrade_section(name: str, data: dict) -> dict:
    """A config section written with old key names (``ALIASES``), with the present ones."""
    out = {}
    for key, value in data.items():
        new = ALIASES.get(f"{name}.{key}", f"{name}.{key}").split(".", 1)[1]
        if new in out and out[new] != value:
            raise ConfigError(f"{name}.{key}: given together with {name}.{new}, its present "
                              "name, with another value")
        out[new] = value
    return out


def _choices(key: str) -> tuple | None:
    if key == "task.family":
        from .tasks import buildable_families

        return tuple(buildable_families())
    return _CHOICES.get(key)


def _section_from_dict(name: str, cls: type, data: Any):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for given_key, value in data.items():
        full = f"{name}.{given_key}"
        key = ALIASES.get(full, full).split(".", 1)[1]
        if key not in allowed:
            raise ConfigError(f"{full}: unknown key; allowed keys in {name}: {', '.join(allowed)}")
        if key in values:
            old = [k for k, v in ALIASES.items() if v == f"{name}.{key}"][0]
            raise ConfigError(f"{old}: given together with {name}.{key}, its present name; "
                              "keep one")
        given = value
        value = _check_type(full, value, hints[key])
        choices = _choices(f"{name}.{key}")
        if choices is not None and value not in choices:
            raise ConfigError(f"{full}: {given!r} is not one of {list(choices)}")
        check = _RANGES.get(f"{name}.{key}")
        if check is not None and not check[0](value):
            raise ConfigError(f"{full}: {given!r} is out of range; allowed: {check[1]}")
        values[key] = value
    return cls(**values)


def config_from_dict(data: Any) -> Config:
    """Build and validate a Config from a nested dict (the parsed YAML)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"the config must be a mapping with task/model/train, got {data!r}")
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    unknown = [k for k in data if k not in sections]
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; allowed: {', '.join(sections)}")
    hints = typing.get_type_hints(Config)
    cfg = Config(**{k: _section_from_dict(k, hints[k], data.get(k)) for k in sections})
    from .config_checks import check_cross  # it reads this module's classes

    check_cross(cfg)
    return cfg


def config_to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def config_to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, in field order: what a run folder's config.yaml holds."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``section.key=value`` strings (value parsed as YAML) to a nested dict, in place;
    ``section.key.sub=value`` sets one entry of a mapping-valued key (task.options.digits=0.5)
    and keeps its others."""
    usage = "expected section.key=value, e.g. train.unroll=10, or section.key.sub=value"
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: {usage}")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"--set {item!r}: {usage}")
        section, name, *deeper = parts
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: cannot parse the value: "
                              f"{_yaml_problem(err)}") from None
        if data.get(section) is None:
            data[section] = {}
        if not isinstance(data[section], dict):
            raise ConfigError(f"{section}: expected a mapping of keys")
        if deeper:
            node, path = data[section], section
            for k in [name, *deeper[:-1]]:
                path += f".{k}"
                if node.get(k) is None:
                    node[k] = {}
                if not isinstance(node[k], dict):
                    raise ConfigError(f"--set {item!r}: {path} is {node[k]!r}, not a mapping")
                node = node[k]
            node[deeper[-1]] = value
            continue
        # an override names a key under its old or its present name; either replaces both
        for pair in ALIASES.items():
            if f"{section}.{name}" in pair:
                for full in pair:
                    data[section].pop(full.split(".", 1)[1], None)
        data[section][name] = value
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error (PyYAML's own message spans several, with a caret)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML file (None: all defaults), apply overrides, validate."""
    data: Any = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"config file {path} is a folder; pass a YAML file such as "
                              "configs/quick.yaml")
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err)}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text file (not UTF-8): is it really the "
                              "YAML config?") from None
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the config must be a mapping with task/model/train")
    return config_from_dict(apply_overrides(data, overrides))


def build_family(cfg: Config):
    """The task family of ``cfg`` (a tasks.TaskFamily), in the run's dtype."""
    import torch

    from .tasks import make_family

    return make_family(dataclasses.asdict(cfg.task), getattr(torch, cfg.train.dtype))


def build_optimizer(cfg: Config):
    """The learned optimizer of ``cfg.model``, untrained, in the run's dtype."""
    import torch

    from .meta_optimizers import LearnedOptimizer

    return LearnedOptimizer(**dataclasses.asdict(cfg.model)).to(getattr(torch, cfg.train.dtype))
