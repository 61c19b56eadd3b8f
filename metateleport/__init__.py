"""metateleport: learned optimizers that exploit parameter-space symmetry."""

from .torch_optim import LearnedOpt, LearnedTorchOptimizer

__all__ = ["LearnedOpt", "LearnedTorchOptimizer"]

__version__ = "0.1.0"
