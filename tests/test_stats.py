"""metateleport.stats: quantiles and bootstrap intervals with diverged runs as infinite losses,
steps to a threshold, win rates and the paired log-ratio of the studies."""

import math

import numpy as np
import pytest
import torch

from metateleport.stats import (
    bootstrap_ci,
    paired_log_ratio,
    quantile,
    steps_to_threshold,
    win_rate,
)


def test_bootstrap_ci_covers_the_median_and_is_deterministic():
    x = np.random.default_rng(0).normal(5.0, 1.0, size=400)
    est, lo, hi = bootstrap_ci(x, "median", n_boot=1000, seed=3)
    assert est == pytest.approx(np.median(x)) and lo < 5.0 < hi and hi - lo < 0.4
    assert bootstrap_ci(x, "median", n_boot=1000, seed=3) == (est, lo, hi)
    mean, mlo, mhi = bootstrap_ci(x, "mean", n_boot=1000)
    assert mean == pytest.approx(x.mean()) and mlo < mean < mhi


def test_non_finite_runs_count_as_infinite_loss():
    x = np.array([1.0, 2.0, np.nan, np.inf, 3.0])
    assert quantile(x, 0.5) == 3.0  # sorted: 1, 2, 3, inf, inf
    assert math.isinf(bootstrap_ci(x, "mean")[0])
    assert math.isinf(quantile(np.array([1.0, np.nan, np.nan]), 0.5))
    curves = torch.tensor([[9.0, 9.0], [4.0, float("nan")], [1.0, float("nan")]])
    assert steps_to_threshold(curves, 5.0).tolist() == [1.0, math.inf]


def test_win_rate_on_a_hand_made_example():
    main = torch.tensor([1.0, 2.0, 3.0, float("nan"), 5.0])
    other = torch.tensor([2.0, 2.0, 1.0, float("nan"), float("inf")])
    assert win_rate(main, other) == (0.4, 2)  # wins on 0 and 4; tie on 1 and 3
    with pytest.raises(ValueError, match="equal shape"):
        win_rate(main, other[:3])


def test_paired_log_ratio():
    rng = np.random.default_rng(0)
    b = rng.uniform(1, 2, size=(5, 64))
    c = paired_log_ratio(2 * b, b)
    assert c["median"] == pytest.approx(math.log(2)) and c["ci"][0] == pytest.approx(math.log(2))
    assert c["seed_wins"] == 0 and c["problem_wins"] == 0 and c["pairs"] == 320
    noisy = b * np.exp(rng.normal(-0.1, 0.3, size=b.shape))
    c = paired_log_ratio(noisy, b)
    assert c["ci"][0] < c["median"] < c["ci"][1] < 0 and c["seed_wins"] == 5
    both = b.copy()
    both[0, 0] = np.inf
    c = paired_log_ratio(both, both)
    assert c["median"] == 0 and c["ci"] == [0, 0]
    with pytest.raises(ValueError, match="equal shape"):
        paired_log_ratio(b, b[:, :3])


def test_paired_log_ratio_counts_the_other_side_diverging_as_a_win():
    """A pair where only B diverged (inf or nan) is a win for A (log-ratio -inf), not a loss:
    the median and interval of the log-ratios must not read -inf as a diverged +inf."""
    rng = np.random.default_rng(1)
    a = rng.uniform(1, 2, size=(4, 20))
    b = 1.5 * a
    b[:, :12] = np.nan  # B diverged on 12 of 20 problems of every seed
    c = paired_log_ratio(a, b)
    assert c["median"] == -np.inf and c["ci"][1] < 0
    assert all(v == -np.inf for v in c["per_seed"])
    b[:, :12] = np.inf
    b[:, 12:] = 0.5 * a[:, 12:]  # now A ends higher wherever B did not diverge
    c = paired_log_ratio(a, b)
    assert c["median"] == -np.inf, "12 of 20 pairs are B's divergences: the median is one"
    b[:, :8] = 0.5 * a[:, :8]  # only 4 divergences of B left, A higher on 16
    c = paired_log_ratio(a, b)
    assert c["median"] == pytest.approx(math.log(2)) and c["ci"][1] == pytest.approx(math.log(2))
    flipped = paired_log_ratio(b, a)  # now A (= b) wins 16 and diverges 4
    assert flipped["median"] == pytest.approx(-math.log(2))


def test_paired_difference_of_accuracies():
    from metateleport.stats import paired_difference

    a = np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4]])
    b = np.full_like(a, 0.5)
    out = paired_difference(a, b, n_boot=500)
    assert out["mean"] == pytest.approx(0.15)
    assert out["per_seed"] == pytest.approx([0.3, 0.0])
    lo, hi = out["ci"]
    assert -0.1 <= lo < 0.0 < 0.15 < hi <= 0.4, "resampled seeds and problems: seed 1 ties"
    assert paired_difference(a, a)["ci"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="finite"):
        paired_difference(a, np.full_like(a, np.nan))
