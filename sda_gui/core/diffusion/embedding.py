"""Sinusoidal embedding of the diffusion time ``t ∈ [0, 1]``, shared by all networks."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["TimeEmbedding"]


class TimeEmbedding(nn.Module):
    """``t`` → ``[sin(2π f t), cos(2π f t)]`` over log-spaced frequencies, then a small MLP."""

    def __init__(self, features: int = 32):
        super().__init__()
        if features % 2:
            raise ValueError("time embedding size must be even")
        freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), features // 2))
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(features, features), nn.SiLU(), nn.Linear(features, features))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angle = t[..., None] * self.freqs * math.pi
        return self.mlp(torch.cat((angle.sin(), angle.cos()), dim=-1))
