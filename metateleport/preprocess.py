"""Gradient preprocessing of Andrychowicz et al. 2016, appendix A (docs/design.md section 5).

Each scalar x becomes two features: (log|x| / p, sign x) if |x| >= e^-p, else (-1, e^p x).
The first feature carries the magnitude over many orders (losses here span six), the second the
sign; tiny inputs are scaled linearly so the map stays continuous in x near 0.
"""

from __future__ import annotations

import math

import torch

__all__ = ["log_sign"]


def log_sign(x: torch.Tensor, p: float = 10.0) -> torch.Tensor:
    """x: any shape (...). Returns (..., 2) with the two features per entry."""
    if p <= 0:
        raise ValueError(f"preprocessing p must be > 0, got {p}")
    threshold = math.exp(-p)
    mag = x.abs()
    big = mag >= threshold
    log_part = torch.where(big, mag.clamp_min(threshold).log() / p, torch.full_like(x, -1.0))
    sign_part = torch.where(big, torch.sign(x), math.exp(p) * x)
    return torch.stack([log_part, sign_part], dim=-1)
