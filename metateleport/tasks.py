"""Task families: distributions over batched LeakyReLU MLP problems (docs/design.md sections 2
and 9), behind one interface (``TaskFamily``) and a registry (``FAMILIES``, ``make_family``).
The families themselves register from their modules, which this one imports: the synthetic ones
(families.py), the digits family (digits.py) and the distribution over architectures
(distribution.py).

A problem is (X, Y, W): X in R^{d_0 x n} (columns are samples), Y in R^{d_L x n}, and the
initial weights W = [W_1 (d_1 x d_0), ..., W_L (d_L x d_{L-1})]. Work is batched: every tensor
carries a leading batch axis B, one problem per row.

Biases: a layer may carry one (a last weight column, see mlp.py); the group action then needs
[h; 1] of full column rank.

Seeds: a problem is drawn from numpy's PCG64 seeded by (split, seed, index in batch), so the same
seed gives the same problems on every machine, problem i of ``sample(B, s)`` does not depend on B,
and the three splits (train, val, test) can never produce the same stream even for equal seeds.
``sample(B, s, start=r * B)`` draws problems r*B .. r*B+B-1 of that stream: how the ranks of a
data-parallel run split one batch of B x world problems (distributed.py) without overlap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

# The MLP's functions lived here before mlp.py: their old import path keeps working.
from .mlp import (  # noqa: F401
    DEFAULT_SLOPE,
    affine,
    has_bias,
    leaky_relu,
    leaky_relu_inv,
    mlp_forward,
    mlp_loss,
    mlp_loss_and_grad,
    with_ones,
)

__all__ = [
    "DATASETS",
    "INITS",
    "held_out_mask",
    "held_out_metrics",
    "MLPTaskFamily",
    "MixedProblems",
    "Problems",
    "Split",
    "TaskFamily",
    "batched_mlp_loss_and_grad",
    "buildable_families",
    "groups_of",
    "has_held_out",
    "make_family",
    "register_family",
]


class Split(enum.Enum):
    """Disjoint seed streams. The value enters the PRNG seed, so equal seeds never collide."""

    TRAIN = 0
    VAL = 1
    TEST = 2


def _as_split(split: Split | str) -> Split:
    if isinstance(split, Split):
        return split
    try:
        return Split[str(split).upper()]
    except KeyError:
        raise ValueError(
            f"unknown split {split!r}; allowed: {[s.name.lower() for s in Split]}"
        ) from None


@dataclass
class Problems:
    """A batch of B problems.

    X: (B, d_0, n); Y: (B, d_L, n); weights: [W_1 (B, d_1, d_0), ..., W_L (B, d_L, d_{L-1})],
    each with one more column when its layer has a bias (see the module docstring).
    X_test, Y_test: optional held-out samples (B, d_0, m), (B, d_L, m) that the optimizer never
    sees, on which evaluation measures the optimizee's generalization (real-data families).
    """

    X: torch.Tensor
    Y: torch.Tensor
    weights: list[torch.Tensor]
    slope: float = DEFAULT_SLOPE
    X_test: torch.Tensor | None = None
    Y_test: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.X.shape[0]

    def _map(self, fn) -> Problems:
        def opt(t):
            return None if t is None else fn(t)

        return Problems(fn(self.X), fn(self.Y), [fn(w) for w in self.weights], self.slope,
                        opt(self.X_test), opt(self.Y_test))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        return self._map(lambda t: t.to(device=device, dtype=dtype))

    def __getitem__(self, idx) -> Problems:
        """Select problems along the batch axis (an int keeps the axis, with size 1)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return self._map(lambda t: t[idx])


@dataclass
class MixedProblems:
    """Problems of several architectures: ``groups``, each a Problems of one shape. Problem i
    is problem i of their concatenation, and per-problem results (B,) concatenate alike."""

    groups: list[Problems]

    @property
    def batch_size(self) -> int:
        return sum(g.batch_size for g in self.groups)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        return MixedProblems([g.to(device, dtype) for g in self.groups])

    def __getitem__(self, idx) -> MixedProblems:
        """Problems ``idx`` (an int or a slice with step 1) of the concatenation."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        start, stop, step = idx.indices(self.batch_size)
        if step != 1:
            raise ValueError("mixed problems take contiguous slices only")
        out, offset = [], 0
        for g in self.groups:
            lo, hi = max(start - offset, 0), min(stop - offset, g.batch_size)
            if lo < hi:
                out.append(g[lo:hi])
            offset += g.batch_size
        return MixedProblems(out)


def has_held_out(problems: Problems | MixedProblems) -> bool:
    """Whether every problem has held-out samples (X_test, Y_test)."""
    return all(g.X_test is not None for g in groups_of(problems))


def held_out_mask(problems: Problems | MixedProblems) -> torch.Tensor:
    """(B,) bool: which problems of the batch have held-out samples (X_test, Y_test), in the
    batch's order (a MixedProblems' groups side by side)."""
    return torch.cat([torch.full((g.batch_size,), g.X_test is not None)
                      for g in groups_of(problems)])


def groups_of(problems: Problems | MixedProblems) -> list[Problems]:
    """The one-shape groups of a batch (a Problems is one group)."""
    return problems.groups if isinstance(problems, MixedProblems) else [problems]


class TaskFamily:
    """A distribution over optimization problems: the noun every caller (meta-training,
    evaluation, studies, the oracle) receives instead of building problems itself.

    ``name``: the registry key. ``sample(batch_size, seed, split, start)`` -> Problems (or
    MixedProblems, for a family of several architectures): problems
    ``start`` .. ``start + batch_size - 1`` of stream ``split`` at ``seed``, the same on every
    machine. ``config()`` -> the dict that rebuilds the family (a config's task section).
    ``loss_and_grad(problems)`` -> the function (weights -> (loss (B,) with graph, detached
    gradients)) that the inner loop differentiates: the batched MLP unless a family (a user's
    nn.Module) computes its loss another way.
    """

    name: str = ""

    def sample(self, batch_size: int, seed: int, split: Split | str = Split.TRAIN,
               start: int = 0) -> Problems:
        raise NotImplementedError

    def config(self) -> dict:
        raise NotImplementedError

    def loss_and_grad(self, problems: Problems):
        return batched_mlp_loss_and_grad(problems)


def batched_mlp_loss_and_grad(problems: Problems):
    """weights -> mlp.mlp_loss_and_grad(weights, X, Y, slope) of ``problems``."""
    return lambda weights: mlp_loss_and_grad(weights, problems.X, problems.Y, problems.slope)


#: name -> TaskFamily class: configs (task.family), evaluation, studies and the oracle look a
#: family up here, so a new family is one registered class
FAMILIES: dict[str, type[TaskFamily]] = {}


def register_family(cls: type[TaskFamily]) -> type[TaskFamily]:
    """Class decorator: register ``cls`` under ``cls.name``."""
    if not cls.name or cls.name in FAMILIES:
        raise ValueError(f"a family needs a new, non-empty name, got {cls.name!r}")
    FAMILIES[cls.name] = cls
    return cls


def _without_options(cls: type, task: dict) -> dict:
    """A single family's task section has no ``options`` (those are a distribution's)."""
    task = dict(task)
    if task.pop("options", None):
        raise ValueError(f"options: the {cls.name} family takes none (a family of several "
                         "architectures does, e.g. distribution)")
    return task


def buildable_families() -> list[str]:
    """The registered families a config can build (with ``from_task``; not a module's)."""
    return [n for n, c in FAMILIES.items() if hasattr(c, "from_task")]


def make_family(task: dict, dtype: torch.dtype = torch.float32) -> TaskFamily:
    """The registered family of a config's task section (config.TaskConfig as a dict): the
    class ``FAMILIES[task["family"]]`` ("dataset", the key's old name, is read too) built from
    the other keys."""
    task = dict(task)
    name = task.pop("family", None)
    old = task.pop("dataset", None)
    if name is not None and old is not None and name != old:
        raise ValueError(f"task family given twice: family {name!r}, dataset {old!r}")
    name = name or old or "synthetic"
    if name not in buildable_families():
        raise ValueError(f"unknown task family {name!r}; allowed: {buildable_families()}")
    return FAMILIES[name].from_task(task, dtype)


# The last entry of the seed of a problem's rescaling/conditioning generator, and of a digits
# meta-training problem's held-out images.
_ORBIT_TAG, _HELD_OUT_TAG = 1, 2

# The synthetic families (families.py) register themselves: import them here, before the
# digits family and the distribution below, which build on MLPTaskFamily (tasks.MLPTaskFamily,
# tasks.INITS, ... are also their old import paths).
from .families import (  # noqa: E402, F401
    INITS,
    IllConditionedTaskFamily,
    ImbalancedTaskFamily,
    LayerRescaledTaskFamily,
    MLPTaskFamily,
    PaperTaskFamily,
)


def held_out_metrics(weights: list[torch.Tensor], problems: Problems) -> dict[str, torch.Tensor]:
    """The optimizee's generalization, on the held-out samples of ``problems`` (which need
    X_test, Y_test): per problem (B,), "loss" 1/2 ||Y_test - f(X_test)||^2 averaged over the
    held-out samples (the training loss is summed over the n training samples, so divide it by
    n to compare) and "accuracy", the fraction whose largest output is the one-hot target's.
    For MixedProblems, ``weights`` holds each group's (inner.run's Trajectory.weights)."""
    if isinstance(problems, MixedProblems):
        parts = [held_out_metrics(w, g) for w, g in zip(weights, problems.groups)]
        return {k: torch.cat([m[k] for m in parts]) for k in ("loss", "accuracy")}
    if problems.X_test is None or problems.Y_test is None:
        raise ValueError("these problems have no held-out samples (X_test, Y_test)")
    with torch.no_grad():
        f = mlp_forward([w.detach() for w in weights], problems.X_test, problems.slope)[0]
        m = problems.X_test.shape[2]
        loss = 0.5 * (f - problems.Y_test).pow(2).sum(dim=(1, 2)) / m
        accuracy = (f.argmax(dim=1) == problems.Y_test.argmax(dim=1)).to(f.dtype).mean(dim=1)
    return {"loss": loss, "accuracy": accuracy}


# The digits family and the distribution register themselves: import them here, whichever
# module comes first (tasks.DigitsTaskFamily is also its old import path).
from .digits import DigitsTaskFamily, digits_pools  # noqa: E402, F401
from .distribution import MLPDistribution  # noqa: E402, F401

#: the old name of the registry's keys
DATASETS = tuple(FAMILIES)
