"""Old import path of metateleport.torch_optim (LearnedOpt is LearnedTorchOptimizer)."""

from .torch_optim import TELEPORT_KINDS, LearnedOpt, LearnedTorchOptimizer

__all__ = ["TELEPORT_KINDS", "LearnedOpt", "LearnedTorchOptimizer"]
