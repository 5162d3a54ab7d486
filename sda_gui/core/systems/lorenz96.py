"""Lorenz-96 on a periodic ring of ``N`` variables (N = 40, F = 8 standard).

    dx_j/dt = (x_{j+1} − x_{j−2}) x_{j−1} − x_j + F

One RK4 step of ``dt`` per state (0.05 ≈ 6 hours of "atmosphere"), with optional
transition noise of std ``noise·√dt``. Initial states: ``F`` plus a small
Gaussian perturbation, then ``burn_in`` steps onto the attractor. Normalised with
the climatological mean and std of the F = 8 attractor (about 2.3 and 3.6).
"""

from __future__ import annotations

from typing import Optional

import torch

from .base import DynamicalSystem
from .lorenz63 import rk4

__all__ = ["Lorenz96"]


class Lorenz96(DynamicalSystem):
    name = "lorenz96"
    title = "Lorenz-96"

    def __init__(self, n: int = 40, forcing: float = 8.0, dt: float = 0.05,
                 noise: float = 0.0, burn_in: int = 512):
        if int(n) < 4:
            raise ValueError("Lorenz-96 needs at least 4 variables")
        self.n = int(n)
        self.forcing = float(forcing)
        self._dt = float(dt)
        self.noise = float(noise)
        self._burn_in = int(burn_in)

    @property
    def state_shape(self):
        return (self.n,)

    @property
    def variable_names(self):
        return [f"x{j + 1}" for j in range(self.n)]

    @property
    def params(self):
        return {"n": self.n, "forcing": self.forcing, "dt": self._dt, "noise": self.noise,
                "burn_in": self._burn_in}

    def normalization(self):
        # Climatology of the F=8 attractor; mean ≈ 0.29 F and std ≈ 0.45 F for other F.
        f = self.forcing
        return torch.full((self.n,), 0.29 * f), torch.full((self.n,), max(0.45 * abs(f), 1.0))

    def prior(self, n, generator, device="cpu"):
        return self.forcing + torch.randn((n, self.n), generator=generator, device=device)

    def vector_field(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.roll(x, -1, -1) - torch.roll(x, 2, -1)) * torch.roll(x, 1, -1) - x + self.forcing

    def transition(self, x, generator: Optional[torch.Generator] = None):
        x = rk4(self.vector_field, x, self._dt)
        if generator is not None and self.noise > 0:
            x = x + self.noise * self._dt ** 0.5 * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x

    def transition_std(self) -> float:
        return self.noise * self._dt ** 0.5
