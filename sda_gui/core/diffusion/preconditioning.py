"""A noise predictor built from a network that predicts the clean window.

An ``ε``-network is fragile at high noise: the denoised estimate
``x̂ = (x(t) − σ ε)/μ`` divides the network's error by ``μ(1) = 1e-3``, so a network
that is slightly off near ``t = 1`` (as a U-Net trained briefly is) throws samples far
off the data. Here the network ``F`` predicts the clean window through the scalings of
Karras et al. (2022, "EDM"), written for ``x(t) = μ x + σ ε`` and data of standard
deviation ``s`` (normalised units):

    c_in = 1/√(μ²s² + σ²),   c_skip = μ s² c_in²,   c_out = σ s c_in
    x̂ = c_skip x(t) + c_out F(c_in x(t), t),      ε = (x(t) − μ x̂) / σ

``c_skip x(t)`` is the exact posterior mean for Gaussian data, so a network that
outputs zero is already the best linear denoiser, and the network's error reaches
``x̂`` multiplied by ``c_out ≤ s`` instead of ``σ/μ``. Training regresses ``F`` on
its unit-variance target ``(x − c_skip x(t)) / c_out`` (``dsm_loss``); towards
``t = 0`` this is the usual ``ε`` loss.
"""

from __future__ import annotations

import torch
from torch import nn

from .schedule import VPSchedule

__all__ = ["Preconditioned"]


class Preconditioned(nn.Module):
    def __init__(self, net: nn.Module, schedule: VPSchedule, sigma_data: float = 1.0):
        super().__init__()
        self.net = net
        self.schedule = schedule
        self.sigma_data = float(sigma_data)

    def _scalings(self, t: torch.Tensor, x: torch.Tensor):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        t = t.reshape((-1,) + (1,) * (x.ndim - 1))
        mu, sigma = self.schedule(t)
        s = self.sigma_data
        c_in = torch.rsqrt((mu * s) ** 2 + sigma**2)
        return mu, sigma, c_in, mu * s * s * c_in**2, sigma * s * c_in

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        mu, sigma, c_in, c_skip, c_out = self._scalings(t, x)
        x_hat = c_skip * x + c_out * self.net(c_in * x, t)
        return (x - mu * x_hat) / sigma

    def dsm_loss(self, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, amp: bool = False) -> torch.Tensor:
        """Mean squared error of ``F`` against its target for clean windows ``x``, times ``t`` and noise ``eps``."""
        mu, sigma, c_in, c_skip, c_out = self._scalings(t, x)
        xt = mu * x + sigma * eps
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            out = self.net(c_in * xt, t)
        return (out.float() - (x - c_skip * xt) / c_out).square().mean()
