"""train.scale_weight: the squared path norm (mlp.path_norm_sq), the meta-loss term on its
growth per window (estimator.scale_growth) and the config check."""

from __future__ import annotations

import itertools

import pytest
import torch

from metateleport.config import ConfigError, load_config
from metateleport.mlp import mlp_forward, path_norm_sq
from metateleport.symmetry import apply_group
from metateleport.trainer import MetaTrainer


def _weights(widths, bias, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, d_out, d_in + bias, generator=gen, dtype=torch.float64)
            for d_in, d_out in zip(widths, widths[1:])]


def _by_enumeration(weights, d_0):
    """Every path from an input or a bias to an output, the product of its squared weights,
    summed, for one problem (index 0); loops over paths, nothing shared with path_norm_sq."""
    mats = [W[0] for W in weights]
    total = 0.0
    sizes = [d_0] + [W.shape[0] for W in mats]
    for start in range(len(mats)):  # paths that begin at layer start's input or bias
        sources = range(sizes[start]) if start == 0 else []
        biased = mats[start].shape[1] > sizes[start]
        for first in list(sources) + (["bias"] if biased else []):
            for units in itertools.product(*[range(s) for s in sizes[start + 1:]]):
                col = sizes[start] if first == "bias" else first
                product = float(mats[start][units[0], col]) ** 2
                for k in range(1, len(units)):
                    product *= float(mats[start + k][units[k], units[k - 1]]) ** 2
                total += product
    return total


@pytest.mark.parametrize("bias", [0, 1])
def test_path_norm_sums_every_path_and_ignores_rescaled_units(bias):
    weights = _weights((3, 4, 2, 2), bias)
    got = path_norm_sq(weights, 3)
    assert got.shape == (2,)
    assert float(got[0]) == pytest.approx(_by_enumeration(weights, 3), rel=1e-12)
    t = [torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)]
    moved = apply_group(weights, None, t, group="diag")
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(mlp_forward(moved, x)[0], mlp_forward(weights, x)[0])
    assert any(not torch.allclose(a, b) for a, b in zip(moved, weights)), "the weights moved"
    torch.testing.assert_close(path_norm_sq(moved, 3), got, rtol=1e-12, atol=0)
    if not bias:  # every path crosses all three layers: twice the weights, 2^6 the norm
        torch.testing.assert_close(path_norm_sq([2 * W for W in weights], 3), 64 * got)


def _trainer(scale_weight: float) -> MetaTrainer:
    return MetaTrainer(load_config(None, [
        "model.variant=update_tele", "model.tele_group=diag", "train.batch_size=2",
        "train.unroll=2", "train.n_steps=4", "train.trajectories=2", "train.val_every=0",
        "train.dtype=float64", f"train.scale_weight={scale_weight}"]))


def test_scale_weight_adds_the_window_growth_to_the_meta_loss_and_its_gradient():
    plain, scaled = _trainer(0.0), _trainer(2.0)
    a, b = plain.window(), scaled.window()
    assert "scale_growth" not in a and b["scale_growth"] != 0
    # the same window from the same start: only the term differs
    assert b["meta_loss"] == pytest.approx(a["meta_loss"] + 2.0 * b["scale_growth"], rel=1e-9)
    assert any(not torch.equal(p, q)
               for p, q in zip(plain.opt.parameters(), scaled.opt.parameters())), \
        "the term reaches the meta-gradient"


def test_a_negative_scale_weight_is_refused_by_name():
    with pytest.raises(ConfigError, match="train.scale_weight"):
        load_config(None, ["train.scale_weight=-1"])
