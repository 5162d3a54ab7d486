"""Exact denoisers of Gaussian processes: closed-form references for tests and teaching.

For a zero-mean Gaussian window ``x_W ~ N(0, Σ)`` diffused to
``x(t) = μ x + σ ε``, the marginal is ``N(0, μ² Σ + σ² I)``, its score is
``−(μ² Σ + σ² I)⁻¹ x(t)`` and the optimal noise prediction is
``ε = σ (μ² Σ + σ² I)⁻¹ x(t)``. ``ar1_covariance`` builds ``Σ`` for a stationary
AR(1) chain ``x_{i+1} = a x_i + √(1 − a²) w`` (unit marginal variance), whose
trajectory precision is tridiagonal: a first-order Markov chain.
"""

from __future__ import annotations

import torch
from torch import nn

from .schedule import VPSchedule

__all__ = ["ar1_covariance", "GaussianWindowDenoiser"]


def ar1_covariance(length: int, a: float, dims: int = 1) -> torch.Tensor:
    """Covariance ``(length·dims, length·dims)`` of ``dims`` independent stationary AR(1) chains,
    ordered time-major (state i, variable j at index ``i·dims + j``)."""
    idx = torch.arange(length, dtype=torch.float64)
    cov_t = a ** (idx[:, None] - idx[None]).abs()
    return torch.kron(cov_t, torch.eye(dims, dtype=torch.float64))


class GaussianWindowDenoiser(nn.Module):
    """A "network" that returns the exact ``ε`` for windows ``(B, W, *s)`` of a Gaussian process."""

    def __init__(self, cov: torch.Tensor, schedule: VPSchedule | None = None):
        super().__init__()
        self.register_buffer("cov", cov.double())
        self.schedule = schedule or VPSchedule()

    def forward(self, x, t):
        flat = x.reshape(x.shape[0], -1).double()
        mu, sigma = self.schedule(t.double())
        eye = torch.eye(self.cov.shape[0], dtype=torch.float64, device=x.device)
        prec = torch.linalg.inv(mu[:, None, None] ** 2 * self.cov + sigma[:, None, None] ** 2 * eye)
        eps = sigma[:, None] * torch.einsum("bij,bj->bi", prec, flat)
        return eps.to(x.dtype).view_as(x)
