"""Lorenz-63 with the paper's settings (Rozet & Louppe 2023, §5.1).

    dx/dt = σ (y − x),   dy/dt = x (ρ − z) − y,   dz/dt = x y − β z

integrated with one RK4 step of ``dt`` per state, plus transition noise
``N(0, dt·I)`` when a generator is given. Initial states are drawn from
``N([0, 0, 25], [[64, 50, 0], [50, 81, 0], [0, 0, 75]])`` and pushed through
``burn_in`` noisy steps onto the attractor. Normalisation: mean ``[0, 0, 25]``,
scale ``[8, 9, 8.6]``.
"""

from __future__ import annotations

from typing import Optional

import torch

from .base import DynamicalSystem

__all__ = ["Lorenz63", "rk4"]


def rk4(f, x: torch.Tensor, dt: float) -> torch.Tensor:
    """One classical Runge–Kutta step of ``dx/dt = f(x)``."""
    k1 = f(x)
    k2 = f(x + dt / 2 * k1)
    k3 = f(x + dt / 2 * k2)
    k4 = f(x + dt * k3)
    return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


class Lorenz63(DynamicalSystem):
    name = "lorenz63"
    title = "Lorenz-63"

    def __init__(self, sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0,
                 dt: float = 0.025, noise: float = 1.0, burn_in: int = 1024):
        self.sigma, self.rho, self.beta = float(sigma), float(rho), float(beta)
        self._dt = float(dt)
        # transition noise std = noise * sqrt(dt); noise=1 is the paper's N(0, dt I)
        self.noise = float(noise)
        self._burn_in = int(burn_in)

    @property
    def state_shape(self):
        return (3,)

    @property
    def variable_names(self):
        return ["x", "y", "z"]

    @property
    def params(self):
        return {"sigma": self.sigma, "rho": self.rho, "beta": self.beta, "dt": self._dt,
                "noise": self.noise, "burn_in": self._burn_in}

    def normalization(self):
        return torch.tensor([0.0, 0.0, 25.0]), torch.tensor([8.0, 9.0, 8.6])

    def prior(self, n, generator, device="cpu"):
        mean = torch.tensor([0.0, 0.0, 25.0], device=device)
        cov = torch.tensor([[64.0, 50.0, 0.0], [50.0, 81.0, 0.0], [0.0, 0.0, 75.0]], device=device)
        chol = torch.linalg.cholesky(cov)
        z = torch.randn((n, 3), generator=generator, device=device)
        return mean + z @ chol.T

    def vector_field(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c = x[..., 0], x[..., 1], x[..., 2]
        return torch.stack((self.sigma * (b - a), a * (self.rho - c) - b, a * b - self.beta * c), dim=-1)

    def transition(self, x, generator: Optional[torch.Generator] = None):
        x = rk4(self.vector_field, x, self._dt)
        if generator is not None and self.noise > 0:
            x = x + self.noise * self._dt ** 0.5 * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x

    def transition_std(self) -> float:
        return self.noise * self._dt ** 0.5
