"""Statistics of loss curves: quantiles and bootstrap intervals that treat a diverged run (a
non-finite loss) as an infinite loss, steps to a threshold, win rates, and the paired
comparison of two optimizers over meta-training seeds and problems used by the studies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

__all__ = [
    "ArrayLike",
    "bootstrap_ci",
    "median",
    "difference_text",
    "paired_difference",
    "paired_log_ratio",
    "quantile",
    "spearman",
    "steps_to_threshold",
    "win_rate",
]

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]


def _losses(values: ArrayLike) -> np.ndarray:
    """float64 copy with every non-finite entry (a diverged run) set to +inf."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    x = np.array(values, dtype=np.float64)
    x[~np.isfinite(x)] = np.inf
    return x


def quantile(values: ArrayLike, q: float, axis: int = 0, signed: bool = False) -> np.ndarray:
    """Linear-interpolation quantile (numpy's default) along ``axis`` that treats non-finite
    values as +inf: it is infinite exactly when an infinite value enters the interpolation.
    (numpy's own quantile returns nan there, from inf * 0 or inf - inf.)

    ``signed``: for values that may be -inf as well (log-ratios: A finite, B diverged, a win
    for A), which then stays -inf (nan still counts as +inf); where a -inf and a +inf meet
    with nothing finite between, the result is 0 (a tie).

    q = 0.5 gives the median. values: any shape; the result drops ``axis``.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    if signed:
        x = np.array(values, dtype=np.float64)
        x[np.isnan(x)] = np.inf
    else:
        x = _losses(values)
    x = np.sort(x, axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("quantile of an empty array")
    h = q * (n - 1)
    i = math.floor(h)
    frac = h - i
    a = np.take(x, i, axis=axis)
    if frac == 0:
        return a
    b = np.take(x, i + 1, axis=axis)
    with np.errstate(invalid="ignore"):
        out = a + (b - a) * frac
    low, high = np.isneginf(a), np.isposinf(b)
    return np.where(low & high, 0.0, np.where(high, np.inf, np.where(low, -np.inf, out)))


def median(values: ArrayLike) -> float:
    """``quantile(values, 0.5)`` of a 1-D ``values`` as a float: a diverged run counts as +inf."""
    return float(quantile(values, 0.5))


def bootstrap_ci(
    values: ArrayLike,
    stat: Literal["median", "mean"] = "median",
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile bootstrap over problems: (estimate, lo, hi) of ``stat`` of ``values`` (M,).

    The M problems are resampled with replacement ``n_boot`` times (numpy PCG64 at ``seed``, so
    the interval is deterministic); lo and hi are the alpha/2 and 1 - alpha/2 quantiles of the
    resampled statistic. Non-finite values count as +inf (see the module docstring).
    """
    x = _losses(values)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {x.shape}")
    if stat not in ("median", "mean"):
        raise ValueError(f"stat must be 'median' or 'mean', got {stat!r}")
    if n_boot < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")

    def statistic(a: np.ndarray) -> np.ndarray:
        return quantile(a, 0.5, axis=-1) if stat == "median" else a.mean(axis=-1)

    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    boot = statistic(x[idx])
    return (
        float(statistic(x)),
        float(quantile(boot, alpha / 2)),
        float(quantile(boot, 1 - alpha / 2)),
    )


def steps_to_threshold(losses: ArrayLike, threshold: float | ArrayLike) -> np.ndarray:
    """First step t with loss_t <= threshold, per problem. losses: (N+1, M) -> (M,) float,
    inf where the threshold is never reached (a non-finite loss never reaches it).
    ``threshold``: one for all problems, or one per problem (M,)."""
    x = _losses(losses)
    hit = np.isfinite(x) & (x <= np.asarray(threshold, dtype=np.float64))
    first = hit.argmax(axis=0).astype(np.float64)
    first[~hit.any(axis=0)] = np.inf
    return first


def win_rate(main_final: ArrayLike, other_final: ArrayLike) -> tuple[float, int]:
    """Fraction (and count) of problems where main's final loss is strictly below the other's.

    main_final, other_final: (M,), the same problems in the same order. A non-finite loss
    loses: main wins against a diverged run if its own run is finite; two diverged runs tie,
    and a tie is not a win.
    """
    a, b = _losses(main_final), _losses(other_final)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two (M,) arrays of equal shape, got {a.shape} and {b.shape}")
    wins = int((a < b).sum())
    return wins / a.size, wins


def paired_log_ratio(
    a: ArrayLike, b: ArrayLike, n_boot: int = 4000, alpha: float = 0.05, seed: int = 0
) -> dict:
    """Paired comparison of optimizer A against B on the same problems, over seeds.

    a, b: (S, M) final losses, row s from meta-training seed s, column i the same problem i.
    Per pair the log-ratio log(a / b) (< 0: A ends lower); a diverged run counts as +inf, two
    diverged runs as a tie (0), and a pair where only B diverged has log-ratio -inf, a win for
    A. Returns {"median": median of the S x M pooled log-ratios,
    "ci": [lo, hi] from a two-level percentile bootstrap (seeds resampled, then problems within
    each resampled seed: meta-training seed noise is part of the interval), "per_seed": the
    median log-ratio of each seed, "seed_wins": seeds whose median loss is lower for A than for
    B, "problem_wins": pairs where A ends strictly lower, "pairs": S x M}.
    """
    x, y = _losses(a), _losses(b)
    if x.shape != y.shape or x.ndim != 2 or x.size == 0:
        raise ValueError(f"need two (S, M) arrays of equal shape, got {x.shape} and {y.shape}")
    with np.errstate(invalid="ignore"):
        r = np.log(x) - np.log(y)
    r[np.isinf(x) & np.isinf(y)] = 0.0
    boot = _two_level_bootstrap(r, lambda v: quantile(v, 0.5, axis=1, signed=True), n_boot, seed)
    return {
        "median": float(quantile(r.ravel(), 0.5, signed=True)),
        "ci": [float(quantile(boot, alpha / 2, signed=True)),
               float(quantile(boot, 1 - alpha / 2, signed=True))],
        "per_seed": [float(v) for v in quantile(r, 0.5, axis=1, signed=True)],
        "seed_wins": int((quantile(x, 0.5, axis=1) < quantile(y, 0.5, axis=1)).sum()),
        "problem_wins": int((x < y).sum()),
        "pairs": r.size,
    }


def paired_difference(
    a: ArrayLike, b: ArrayLike, n_boot: int = 4000, alpha: float = 0.05, seed: int = 0
) -> dict:
    """Paired comparison of a bounded score (e.g. held-out accuracy) of A against B.

    a, b: (S, M) finite scores, row s from meta-training seed s, column i the same problem i
    (B's rows may repeat one hand optimizer's scores). Returns {"mean": the mean of the S x M
    differences a - b, "ci": [lo, hi] of the mean from the two-level percentile bootstrap of
    paired_log_ratio, "per_seed": the mean difference of each seed, "pairs": S x M}.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.size == 0:
        raise ValueError(f"need two (S, M) arrays of equal shape, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired_difference needs finite scores")
    d = x - y
    boot = _two_level_bootstrap(d, lambda v: v.mean(axis=1), n_boot, seed)
    return {"mean": float(d.mean()),
            "ci": [float(quantile(boot, alpha / 2)), float(quantile(boot, 1 - alpha / 2))],
            "per_seed": [float(v) for v in d.mean(axis=1)], "pairs": d.size}


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two sequences (no ties expected)."""
    ra, rb = (np.argsort(np.argsort(np.asarray(x, float))) for x in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def difference_text(d: dict, fmt: str = "+.3f") -> str:
    """A paired_difference result as 'mean [lo, hi]' in ``fmt`` (signed, 3 decimals)."""
    return f"{d['mean']:{fmt}} [{d['ci'][0]:{fmt}}, {d['ci'][1]:{fmt}}]"


def _two_level_bootstrap(r: np.ndarray, stat, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot,) ``stat`` of r (S, M) resampled twice: seeds with replacement, then problems
    within each resampled seed (numpy PCG64 at ``seed``: deterministic)."""
    S, M = r.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, S, size=(n_boot, S))
    probs = rng.integers(0, M, size=(n_boot, S, M))
    return stat(r[seeds[:, :, None], probs].reshape(n_boot, S * M))
