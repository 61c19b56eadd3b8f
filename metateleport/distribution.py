"""A task distribution over LeakyReLU MLPs: architectures, inits, orbits and data drawn per
problem (docs/design.md section 9), so that one learned optimizer can be meta-trained for any
such network instead of one family.

Problems come in groups of ``group_size`` that share an architecture (depth, widths, bias,
number of samples, synthetic or digits data), so that a group is one batched Problems and a
batch of several groups is a MixedProblems: the inner loop and meta-training run each group as
a batch, and the meta-loss averages over all problems. Within a group every problem draws its
own init distribution and scale, unit and layer rescaling and data conditioning.

Seeds: the architecture of group j is drawn from (split, seed, j), the knobs and data of problem
i from (split, seed, i) with tags of their own, so problem i does not depend on the batch size
or on ``start`` (the ranks of a data-parallel run split a batch as for every family).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .tasks import (
    INITS,
    MixedProblems,
    MLPTaskFamily,
    Problems,
    Split,
    TaskFamily,
    _as_split,
    register_family,
)

__all__ = ["DistributionOptions", "MLPDistribution"]

_ARCH_TAG, _KNOB_TAG = 11, 12


def _range(name: str, value: Any, low: float, integer: bool = False) -> tuple[float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{name}: expected [low, high], got {value!r}")
    lo, hi = value
    if not low <= lo <= hi or (integer and (lo != int(lo) or hi != int(hi))):
        raise ValueError(f"{name}: need {low} <= low <= high{' (integers)' if integer else ''}, "
                         f"got {value!r}")
    return float(lo), float(hi)


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")
    return float(value)


@dataclass
class DistributionOptions:
    """What the distribution draws (a config's ``task.options``; each key optional).

    depth: [low, high] hidden layers, uniform over the integers. width: [low, high], every
    width (inputs, hidden layers, outputs of synthetic data) log-uniform, rounded.
    n_fraction: [low, high]: n = round(f x the bound) with f uniform, where the bound is the
    narrowest hidden layer's input (+1 with biases), so the teleports stay exact.
    bias: the probability that a group's layers have biases. inits: weights of the init
    distributions (uniform / normal / torch). init_scale: [low, high], log-uniform (U[0, s],
    N(0, s^2), nn.Linear's bound times s). unit_span, layer_span: [low, high] log-uniform
    rescaling spans (1: none). cond: [low, high] log-uniform condition number of X, drawn with
    probability cond_prob (else X as drawn). digits: the probability that a group trains on
    subsets of scikit-learn's digits (widths [64, ..., 10], n <= 48), else synthetic data.
    group_size: problems per architecture.
    """

    depth: list[int] = field(default_factory=lambda: [1, 3])
    width: list[float] = field(default_factory=lambda: [8, 64])
    n_fraction: list[float] = field(default_factory=lambda: [0.5, 1.0])
    bias: float = 0.5
    inits: dict[str, float] = field(default_factory=lambda: {"uniform": 1.0, "normal": 1.0,
                                                             "torch": 1.0})
    init_scale: list[float] = field(default_factory=lambda: [0.5, 2.0])
    unit_span: list[float] = field(default_factory=lambda: [1.0, 10.0])
    layer_span: list[float] = field(default_factory=lambda: [1.0, 10.0])
    cond: list[float] = field(default_factory=lambda: [1.0, 1000.0])
    cond_prob: float = 0.5
    digits: float = 0.0
    group_size: int = 4

    def __post_init__(self):
        p = "task.options."
        self.depth = [int(v) for v in _range(p + "depth", self.depth, 1, integer=True)]
        self.width = list(_range(p + "width", self.width, 2))
        self.n_fraction = list(_range(p + "n_fraction", self.n_fraction, 0))
        if self.n_fraction[1] > 1:
            raise ValueError(f"{p}n_fraction: at most 1 (more samples than the bound make the "
                             f"teleport inexact), got {self.n_fraction}")
        for name in ("init_scale",):
            lo, hi = _range(p + name, getattr(self, name), 0)
            if lo <= 0:
                raise ValueError(f"{p}{name}: need low > 0, got {[lo, hi]}")
            setattr(self, name, [lo, hi])
        for name in ("unit_span", "layer_span", "cond"):
            setattr(self, name, list(_range(p + name, getattr(self, name), 1)))
        self.bias = _probability(p + "bias", self.bias)
        self.cond_prob = _probability(p + "cond_prob", self.cond_prob)
        self.digits = _probability(p + "digits", self.digits)
        if not isinstance(self.inits, dict) or not self.inits or any(
                k not in INITS or not isinstance(v, (int, float)) or v < 0
                for k, v in self.inits.items()) or sum(self.inits.values()) <= 0:
            raise ValueError(f"{p}inits: expected weights >= 0 (not all 0) of {list(INITS)}, "
                             f"got {self.inits!r}")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) \
                or self.group_size < 1:
            raise ValueError(f"{p}group_size: expected an int >= 1, got {self.group_size!r}")

    @classmethod
    def from_dict(cls, data: Any) -> DistributionOptions:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"task.options: expected a mapping, got {data!r}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in allowed]
        if unknown:
            raise ValueError(f"task.options.{unknown[0]}: unknown key; allowed: "
                             f"{', '.join(allowed)}")
        return cls(**data)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


@register_family
class MLPDistribution(TaskFamily):
    """The task distribution (see the module docstring). Args: ``options`` (a
    DistributionOptions or its dict), ``slope`` (LeakyReLU's, shared: one group action), ``data``
    (distribution of synthetic X and Y: uniform or normal) and ``dtype``."""

    name = "distribution"

    def __init__(self, options: DistributionOptions | dict | None = None, *,
                 slope: float = 0.1, data: str = "uniform", dtype: torch.dtype = torch.float32):
        self.options = (options if isinstance(options, DistributionOptions)
                        else DistributionOptions.from_dict(options))
        self.slope, self.data, self.dtype = float(slope), data, dtype
        # checks slope and data once, as the families each group builds will
        MLPTaskFamily(slope=slope, data=data)

    @classmethod
    def from_task(cls, task: dict, dtype: torch.dtype = torch.float32) -> MLPDistribution:
        """From a config's task section: ``options``, ``slope`` and ``data``; the other keys
        describe single families and must keep their defaults."""
        return cls(task.get("options"), slope=task.get("slope", 0.1),
                   data=task.get("data", "uniform"), dtype=dtype)

    def config(self) -> dict:
        return {"family": self.name, "slope": self.slope, "data": self.data,
                "options": dataclasses.asdict(self.options)}

    def architecture(self, split: Split | str, seed: int, group: int) -> dict:
        """The architecture of group ``group``: {"widths", "n_samples", "bias", "digits"}."""
        o = self.options
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
            [_as_split(split).value, int(seed), int(group), _ARCH_TAG])))
        depth = int(rng.integers(o.depth[0], o.depth[1] + 1))
        digits = bool(rng.random() < o.digits)
        bias = bool(rng.random() < o.bias)
        widths = [int(round(_log_uniform(rng, *o.width))) for _ in range(depth + 2)]
        if digits:
            widths[0], widths[-1] = 64, 10
        bound = min(widths[k] + bias for k in range(depth))
        if digits:
            bound = min(bound, 48)
        f = rng.uniform(*o.n_fraction)
        return {"widths": widths, "n_samples": max(1, int(round(f * bound))), "bias": bias,
                "digits": digits}

    def _knobs(self, split: Split, seed: int, i: int, arch: dict) -> dict:
        o = self.options
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
            [split.value, int(seed), int(i), _KNOB_TAG])))
        names = sorted(o.inits)
        weights = np.array([o.inits[n] for n in names], dtype=float)
        init = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        knobs = {"init": init, "init_scale": _log_uniform(rng, *o.init_scale),
                 "unit_span": _log_uniform(rng, *o.unit_span),
                 "layer_span": _log_uniform(rng, *o.layer_span)}
        use_cond = rng.random() < o.cond_prob
        cond = _log_uniform(rng, *o.cond)
        # conditioning needs X of full column rank, n <= d_0
        if use_cond and not arch["digits"] and arch["n_samples"] <= arch["widths"][0]:
            knobs["cond"] = cond
        return knobs

    def _one(self, split: Split, seed: int, i: int, arch: dict) -> Problems:
        from .digits import DigitsTaskFamily

        knobs = self._knobs(split, seed, i, arch)
        kwargs = dict(widths=arch["widths"], n_samples=arch["n_samples"], bias=arch["bias"],
                      slope=self.slope, dtype=self.dtype, **knobs)
        if arch["digits"]:
            kwargs.pop("cond", None)
            family: MLPTaskFamily = DigitsTaskFamily(**kwargs)
        else:
            family = MLPTaskFamily(data=self.data, **kwargs)
        return family.sample(1, seed, split, start=i)

    def sample(self, batch_size: int, seed: int, split: Split | str = Split.TRAIN,
               start: int = 0) -> Problems | MixedProblems:
        """Problems ``start`` .. ``start + batch_size - 1`` of stream ``split`` at ``seed``: a
        Problems when they share one architecture, else a MixedProblems of one group per
        architecture, in order."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        split = _as_split(split)
        size = self.options.group_size
        groups = []
        for j in range(start // size, (start + batch_size - 1) // size + 1):
            arch = self.architecture(split, seed, j)
            lo, hi = max(start, j * size), min(start + batch_size, (j + 1) * size)
            groups.append(_stack([self._one(split, seed, i, arch) for i in range(lo, hi)]))
        return groups[0] if len(groups) == 1 else MixedProblems(groups)


def _stack(problems: list[Problems]) -> Problems:
    def cat(ts):
        return None if ts[0] is None else torch.cat(ts)

    first = problems[0]
    return Problems(cat([p.X for p in problems]), cat([p.Y for p in problems]),
                    [cat([p.weights[k] for p in problems]) for k in range(len(first.weights))],
                    first.slope, cat([p.X_test for p in problems]),
                    cat([p.Y_test for p in problems]))
