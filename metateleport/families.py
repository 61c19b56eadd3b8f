"""The synthetic task families (tasks.py has the interface and the registry): ``MLPTaskFamily``
(task.family "synthetic"), L-layer LeakyReLU regression on synthetic data with optionally
imbalanced initial points and ill-conditioned data, and the families named for one of its
settings: "paper" (its defaults), "imbalanced" (unit_span), "layer_rescaled" (layer_span) and
"ill_conditioned" (cond). tasks.py imports this module, which registers them, and keeps their
old import path (tasks.MLPTaskFamily, ...).
"""

from __future__ import annotations

import numpy as np
import torch

from .mlp import DEFAULT_SLOPE
from .tasks import (
    _ORBIT_TAG,
    Problems,
    Split,
    TaskFamily,
    _as_split,
    _without_options,
    register_family,
)

__all__ = ["INITS", "IllConditionedTaskFamily", "ImbalancedTaskFamily", "LayerRescaledTaskFamily",
           "MLPTaskFamily", "PaperTaskFamily"]


_DISTRIBUTIONS = ("uniform", "normal")
#: distributions of the initial weights: the data's, and nn.Linear's default
INITS = (*_DISTRIBUTIONS, "torch")


@register_family
class MLPTaskFamily(TaskFamily):
    """The family of L-layer LeakyReLU regression problems on synthetic data.

    Args:
        widths: (d_0, ..., d_L); L = len(widths) - 1 >= 2 layers.
        n_samples: n, the number of columns of X and Y.
        init: distribution of the initial weights, "uniform" (U[0, init_scale]; the paper's
            U[0, 1]), "normal" (N(0, init_scale^2)) or "torch" (nn.Linear's default,
            U(-b, b) with b = init_scale / sqrt(d_{k-1}), for weights and biases alike).
        data: distribution of X and Y, "uniform" or "normal", with ``data_scale``.
        bias: every layer gets a bias (a last weight column, see tasks.py's docstring), drawn
            like its weights. The paper's networks have none (the default).
        slope: LeakyReLU negative slope alpha (0 < alpha, alpha != 1).
        unit_span, layer_span: imbalanced initial points (docs/design.md section 8). Every hidden
            unit i of layer k gets a scale d_i = unit_span^u_i and the whole layer a scale
            c = layer_span^v (u_i, v ~ U[-1, 1], log-uniform scales in [1/span, span]); then
            W_k <- diag(c d) W_k and W_{k+1} <- W_{k+1} diag(c d)^-1. LeakyReLU is positively
            homogeneous, so the loss is exactly that of the unrescaled problem; 1 (the
            default) rescales nothing.
        cond: ill-conditioned data: X's singular values are replaced by values log-spaced from
            its largest one down to largest / cond (singular vectors kept), so cond(X) = cond.
            None (the default) keeps X as drawn.
        dtype: dtype of the tensors ``sample`` returns.

    The rescaling and conditioning draws come from a generator of their own (seeded by the same
    (split, seed, index) plus a tag), so problem i of a rescaled family is problem i of the
    plain family moved along its orbit: the same X, Y and the same loss.

    The group action (symmetry.py) needs every hidden layer's input to have full column rank,
    so n <= d_{k-1} (n <= d_{k-1} + 1 with biases) for every hidden layer k; the family checks
    it for d_0 and d_1..d_{L-2}.
    """

    name = "synthetic"

    def __init__(
        self,
        widths: list[int] | tuple[int, ...] = (20, 20, 20),
        n_samples: int = 20,
        init: str = "uniform",
        data: str = "uniform",
        init_scale: float = 1.0,
        data_scale: float = 1.0,
        slope: float = DEFAULT_SLOPE,
        unit_span: float = 1.0,
        layer_span: float = 1.0,
        cond: float | None = None,
        bias: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        widths = [int(w) for w in widths]
        if len(widths) < 3:
            raise ValueError(f"widths needs at least 3 entries (d_0, d_1, d_2), got {widths}")
        if any(w < 1 for w in widths):
            raise ValueError(f"every width must be >= 1, got {widths}")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if data not in _DISTRIBUTIONS:
            raise ValueError(f"data must be one of {_DISTRIBUTIONS}, got {data!r}")
        if not (init_scale > 0 and data_scale > 0):
            raise ValueError("init_scale and data_scale must be > 0")
        if not (slope > 0 and slope != 1):
            raise ValueError(
                f"slope must be > 0 and != 1 (LeakyReLU must be invertible), got {slope}"
            )
        if not (unit_span >= 1 and layer_span >= 1):
            raise ValueError(f"unit_span and layer_span must be >= 1 (1: no rescaling), got "
                             f"{unit_span}, {layer_span}")
        if cond is not None and not cond >= 1:
            raise ValueError(f"cond must be >= 1 or None, got {cond}")
        if cond is not None and n_samples > widths[0]:
            raise ValueError(f"cond needs n_samples <= d_0 (X of full column rank), got "
                             f"n_samples={n_samples}, d_0={widths[0]}")
        narrow = [k for k in range(1, len(widths) - 1) if n_samples > widths[k - 1] + bias]
        if narrow:
            k = narrow[0]
            rows = f"d_{k - 1}{' + 1' if bias else ''}={widths[k - 1] + bias}"
            raise ValueError(
                f"n_samples={n_samples} > {rows}: the input of hidden layer {k} "
                "cannot have full column rank, so the group action is not defined"
            )
        self.widths = widths
        self.n_samples = int(n_samples)
        self.init, self.data = init, data
        self.init_scale, self.data_scale = float(init_scale), float(data_scale)
        self.slope = float(slope)
        self.unit_span, self.layer_span = float(unit_span), float(layer_span)
        self.cond = None if cond is None else float(cond)
        self.bias = bool(bias)
        self.dtype = dtype

    @property
    def n_layers(self) -> int:
        return len(self.widths) - 1

    def _draw(self, rng: np.random.Generator, dist: str, scale: float, shape) -> np.ndarray:
        if dist == "uniform":
            return scale * rng.random(shape)
        if dist == "torch":
            bound = scale / np.sqrt(shape[1] - self.bias)
            return rng.uniform(-bound, bound, shape)
        return scale * rng.standard_normal(shape)

    def _data(self, rng: np.random.Generator, split: Split, key: list[int]):
        """X (d_0, n), Y (d_L, n) of one problem (drawn from ``rng``), and its held-out samples
        (X_test (d_0, m), Y_test (d_L, m)) or None; ``key`` seeds any further generator."""
        d, n = self.widths, self.n_samples
        X = self._draw(rng, self.data, self.data_scale, (d[0], n))
        Y = self._draw(rng, self.data, self.data_scale, (d[-1], n))
        if self.cond is not None:
            X = _condition(X, self.cond)
        return X, Y, None

    def _rescale(self, rng: np.random.Generator, Ws: list[np.ndarray]) -> None:
        """Move Ws (in place) along the positive-diagonal orbit of every hidden layer."""
        if self.unit_span == 1 and self.layer_span == 1:
            return
        for k in range(self.n_layers - 1):
            d = Ws[k].shape[0]
            units = self.unit_span ** rng.uniform(-1, 1, d)
            scale = units * self.layer_span ** rng.uniform(-1, 1)
            Ws[k] = scale[:, None] * Ws[k]
            Ws[k + 1][:, :d] = Ws[k + 1][:, :d] / scale[None, :]

    def sample(
        self, batch_size: int, seed: int, split: Split | str = Split.TRAIN, start: int = 0
    ) -> Problems:
        """Draw ``batch_size`` problems from stream ``split`` (train, val or test) at ``seed``:
        problems ``start`` .. ``start + batch_size - 1`` of that stream."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"start must be a non-negative int, got {start!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        split = _as_split(split)
        d = self.widths
        xs, ys, helds, ws = [], [], [], [[] for _ in range(self.n_layers)]
        for i in range(start, start + batch_size):
            seq = np.random.SeedSequence([split.value, int(seed), i])
            rng = np.random.Generator(np.random.PCG64(seq))
            X, Y, held = self._data(rng, split, [split.value, int(seed), i])
            xs.append(X)
            ys.append(Y)
            helds.append(held)
            Ws = [self._draw(rng, self.init, self.init_scale, (d[k + 1], d[k] + self.bias))
                  for k in range(self.n_layers)]
            orbit = np.random.Generator(np.random.PCG64(
                np.random.SeedSequence([split.value, int(seed), i, _ORBIT_TAG])))
            self._rescale(orbit, Ws)
            for k in range(self.n_layers):
                ws[k].append(Ws[k])

        def stack(arrs):
            return torch.from_numpy(np.stack(arrs)).to(self.dtype)

        problems = Problems(stack(xs), stack(ys), [stack(w) for w in ws], self.slope)
        if helds[0] is not None:
            problems.X_test, problems.Y_test = (stack([h[j] for h in helds]) for j in (0, 1))
        return problems

    def config(self) -> dict:
        return {
            "widths": list(self.widths),
            "n_samples": self.n_samples,
            "init": self.init,
            "data": self.data,
            "init_scale": self.init_scale,
            "data_scale": self.data_scale,
            "slope": self.slope,
            "unit_span": self.unit_span,
            "layer_span": self.layer_span,
            "cond": self.cond,
            "bias": self.bias,
            "family": self.name,
        }

    @classmethod
    def from_task(cls, task: dict, dtype: torch.dtype = torch.float32) -> MLPTaskFamily:
        """The family of a config's task section (without its ``family`` key)."""
        return cls(**_without_options(cls, task), dtype=dtype)


@register_family
class PaperTaskFamily(MLPTaskFamily):
    """The paper's task: MLPTaskFamily's defaults (20-20-20, n = 20, U[0, 1] data, weights)."""

    name = "paper"


class _RescaledFamily(MLPTaskFamily):
    """A synthetic family named for a property its problems must have (``knob`` > ``bound``);
    ``knob`` defaults to ``default``."""

    knob, bound, default = "", 1.0, 10.0

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault(self.knob, self.default)
        super().__init__(**kwargs)
        value = getattr(self, self.knob)
        if value is None or not value > self.bound:
            raise ValueError(f"{self.knob}: the {self.name} family needs {self.knob} > "
                             f"{self.bound:g}, got {value}")


@register_family
class ImbalancedTaskFamily(_RescaledFamily):
    """The paper's task with every hidden unit rescaled by a log-uniform factor in
    [1/unit_span, unit_span] (default 10): same losses, imbalanced weights (docs/design.md
    section 8)."""

    name, knob = "imbalanced", "unit_span"


@register_family
class LayerRescaledTaskFamily(_RescaledFamily):
    """The paper's task with every hidden layer rescaled as a whole by a log-uniform factor in
    [1/layer_span, layer_span] (default 10)."""

    name, knob = "layer_rescaled", "layer_span"


@register_family
class IllConditionedTaskFamily(_RescaledFamily):
    """The paper's task with ill-conditioned data, cond(X) = ``cond`` (default 1e3)."""

    name, knob, default = "ill_conditioned", "cond", 1e3


def _condition(X: np.ndarray, cond: float) -> np.ndarray:
    """X (d_0, n) with its singular values replaced by a log-spaced ladder from the largest
    one down to largest / cond (singular vectors kept)."""
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    ladder = s[0] * np.logspace(0, -np.log10(cond), len(s))
    return (U * ladder) @ Vt
