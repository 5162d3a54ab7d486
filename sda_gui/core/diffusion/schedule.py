"""Variance-preserving cosine noise schedule of SDA.

    μ(t) = cos(ω t)²,   ω = arccos(√η),   σ(t) = √(1 − μ(t)² + η²),   t ∈ [0, 1]

so that ``x(t) = μ(t) x + σ(t) ε`` goes from (almost) data at ``t = 0``
(μ = 1, σ = η) to (almost) pure noise at ``t = 1`` (μ = η, σ ≈ 1).
"""

from __future__ import annotations

import math

import torch

__all__ = ["VPSchedule"]


class VPSchedule:
    def __init__(self, eta: float = 1e-3):
        self.eta = float(eta)
        self.omega = math.acos(math.sqrt(self.eta))

    def mu(self, t: torch.Tensor) -> torch.Tensor:
        return torch.cos(self.omega * t) ** 2

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(1 - self.mu(t) ** 2 + self.eta ** 2)

    def __call__(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(t), self.sigma(t)

    def config(self) -> dict:
        return {"name": "vp_cosine", "eta": self.eta}
