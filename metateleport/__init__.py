"""metateleport: learned optimizers that exploit parameter-space symmetry."""

from .teleporter import Teleporter, TeleportReport
from .torch_optim import LearnedOpt, LearnedTorchOptimizer

__all__ = ["LearnedOpt", "LearnedTorchOptimizer", "TeleportReport", "Teleporter"]

__version__ = "0.1.0"
