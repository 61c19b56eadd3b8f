"""Old import path of meta-training: the estimator now lives in estimator.py, the trainer in
trainer.py, and the config layer (config.py) builds the family and the optimizer. Every name
this module exported is re-exported here."""

from __future__ import annotations

from .config import build_family, build_optimizer
from .estimator import META_LOSS_ON, META_LOSSES, apply_meta_step, unroll_window, window_meta_loss
from .trainer import MetaTrainer

__all__ = [
    "META_LOSSES",
    "META_LOSS_ON",
    "MetaTrainer",
    "apply_meta_step",
    "build_family",
    "build_optimizer",
    "unroll_window",
    "window_meta_loss",
]
