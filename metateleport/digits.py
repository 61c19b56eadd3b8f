"""Real data: scikit-learn's handwritten digits as a registered task family (docs/design.md
section 9). ``pip install metateleport[digits]``; the images ship inside scikit-learn."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .tasks import _HELD_OUT_TAG, MLPTaskFamily, Split, _without_options, register_family

__all__ = ["DigitsTaskFamily", "digits_pools"]


@register_family
class DigitsTaskFamily(MLPTaskFamily):
    """Real data: scikit-learn's handwritten digits (1797 8x8 images, 10 classes), which ship
    inside scikit-learn (no download; ``pip install metateleport[digits]``).

    The images are split once, by a fixed permutation, into three disjoint pools: 40% for the
    training subsets of meta-training and validation problems, 40% for those of test problems
    (so evaluation runs on images never seen in meta-training), and the last 20% (361 images),
    held out from every problem: each test problem's ``X_test``, ``Y_test``, on which evaluation
    measures the optimizee's generalization. Meta-training and validation problems hold out n
    other images of their own pool instead (``train.meta_loss_on: held_out`` meta-trains on
    them), so that no image of the evaluation's held-out set ever reaches meta-training.

    A problem trains the MLP full-batch on n_samples images drawn without replacement from its
    split's pool: X = pixels / 16 (64, n), Y the one-hot labels (10, n), and the loss of
    tasks.mlp_loss, 1/2 ||Y - f(X)||^2 summed over the samples (least-squares classification:
    the loss whose teleport feature m2 reads). Full batch and n <= d_0 + 1 keep the teleport
    exact; some pixels are 0 in every image, so subsets of more than ~48 images are
    rank-deficient, and the family allows at most ``MAX_SAMPLES``.

    Args: as MLPTaskFamily, with widths (64, ..., 10); ``data``, ``data_scale`` and ``cond``
    do not apply. The initial weights are drawn as in MLPTaskFamily (``init="torch"``:
    nn.Linear's default, ``bias=True``: nn.Linear's bias, as a PyTorch user's MLP has).
    """

    name = "digits"
    FEATURES, CLASSES, MAX_SAMPLES = 64, 10, 48
    #: the permutation's seed and the pools' fractions: fixed, part of the family's definition
    SPLIT_SEED, POOLS = 0, (0.4, 0.4)

    @classmethod
    def problem(cls, widths, n_samples: int, cond: float | None) -> tuple[str, str] | None:
        """(argument, what is wrong) for arguments this family cannot take, else None: the one
        check behind both this constructor and config validation."""
        widths = [int(w) for w in widths]
        if widths[0] != cls.FEATURES or widths[-1] != cls.CLASSES:
            return "widths", (f"the digits family needs [{cls.FEATURES}, ..., {cls.CLASSES}] "
                              f"(8x8 images, 10 classes), got {widths}")
        if n_samples > cls.MAX_SAMPLES:
            return "n_samples", (f"{n_samples} > {cls.MAX_SAMPLES}; larger subsets of digit "
                                 "images are numerically rank-deficient (some pixels are 0 in "
                                 "every image), so the teleport would not be exact")
        if cond is not None:
            return "cond", "does not apply to the digits family (its data is real); use null"
        return None

    def __init__(self, widths=(64, 32, 10), n_samples: int = 40, **kwargs) -> None:
        bad = self.problem(widths, n_samples, kwargs.get("cond"))
        if bad:
            raise ValueError(f"{bad[0]}: {bad[1]}")
        super().__init__([int(w) for w in widths], n_samples, **kwargs)
        images, labels, pools = digits_pools()
        self._pools = {Split.TRAIN: pools["meta_train"], Split.VAL: pools["meta_train"],
                       Split.TEST: pools["test"]}
        self._images, self._labels, self._held_out_idx = images, labels, pools["held_out"]
        self._held_out = self._xy(pools["held_out"])

    @classmethod
    def from_task(cls, task: dict, dtype: torch.dtype = torch.float32) -> DigitsTaskFamily:
        # a config's task section always holds the synthetic data knobs; real data has none
        task = {k: v for k, v in _without_options(cls, task).items()
                if k not in ("data", "data_scale", "cond")}
        return cls(**task, dtype=dtype)

    def _xy(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._images[idx].T, np.eye(self.CLASSES)[self._labels[idx]].T

    def _data(self, rng: np.random.Generator, split: Split, key: list[int]):
        pool = self._pools[split]
        train = rng.choice(pool, self.n_samples, replace=False)
        if split == Split.TEST:
            return *self._xy(train), self._held_out
        # meta-training and validation problems hold out n other images of their own pool,
        # drawn by a generator of their own: the held-out images of evaluation stay unseen
        other = np.random.Generator(np.random.PCG64(np.random.SeedSequence([*key, _HELD_OUT_TAG])))
        held = other.choice(np.setdiff1d(pool, train), self.n_samples, replace=False)
        return *self._xy(train), self._xy(held)


@functools.lru_cache(maxsize=1)
def digits_pools() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """scikit-learn's bundled digits and the fixed split of DigitsTaskFamily: (images
    (1797, 64) in [0, 1], labels (1797,), {"meta_train", "test", "held_out"} -> indices)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the digits task family needs scikit-learn: pip install -c "
                          "constraints.txt -e \".[digits]\"") from None
    data = load_digits()
    images, labels = data.data / 16.0, data.target
    order = np.random.default_rng(DigitsTaskFamily.SPLIT_SEED).permutation(len(labels))
    a = int(DigitsTaskFamily.POOLS[0] * len(labels))
    b = a + int(DigitsTaskFamily.POOLS[1] * len(labels))
    return images, labels, {"meta_train": order[:a], "test": order[a:b], "held_out": order[b:]}
