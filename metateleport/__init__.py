"""metateleport: learned optimizers that exploit parameter-space symmetry."""

__version__ = "0.1.0"
