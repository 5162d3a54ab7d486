"""Exponential moving average (EMA) of a network's weights during training.

After optimiser step n the average moves towards the current weights θ_n:

    θ̄_n = β_n θ̄_{n−1} + (1 − β_n) θ_n,    β_n = min(β, (1 + n) / (10 + n))

The warm-up of β_n keeps the first steps from being dominated by the random
initial weights; past n ≈ 9 / (1 − β) the average spans about 1 / (1 − β) steps.
The average of the iterates of a noisy optimiser is a smoother estimate of the
minimiser than the last iterate, which is what a score network's sampling error
depends on (a denoiser's error is summed over every diffusion step).

Training keeps optimising the raw weights; the average is what is validated and
what is saved as the model, and a resumable checkpoint carries both.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from .checkpoint import CheckpointError

__all__ = ["WeightAverage"]


class WeightAverage:
    """The running average of ``net``'s parameters (its buffers are not averaged)."""

    def __init__(self, net: nn.Module, decay: float, updates: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the EMA decay must lie strictly between 0 and 1, got {decay}")
        self.decay = float(decay)
        self.updates = int(updates)
        self._params = list(net.parameters())
        self.shadow = [p.detach().clone() for p in self._params]

    def beta(self) -> float:
        """The decay of the next update, β_n for n = updates + 1."""
        n = self.updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self) -> None:
        weight = 1.0 - self.beta()
        for avg, p in zip(self.shadow, self._params):
            avg.lerp_(p.detach(), weight)
        self.updates += 1

    @torch.no_grad()
    def copy_to_net(self) -> None:
        """Replaces the network's weights by the average, for good."""
        for avg, p in zip(self.shadow, self._params):
            p.copy_(avg)

    @contextmanager
    def applied(self):
        """The network holds the average inside the block and its own weights again after it."""
        raw = [p.detach().clone() for p in self._params]
        self.copy_to_net()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self._params, raw):
                    p.copy_(r)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates}

    def load_shadow(self, weights: dict, net: nn.Module, updates: int) -> None:
        """Restores the average from a state dict of ``net``'s layout (a checkpoint's ``weights``)."""
        names = [name for name, _ in net.named_parameters()]
        missing = [name for name in names if name not in weights]
        if missing:
            raise CheckpointError(f"this checkpoint's saved average lacks {missing[0]}; it cannot resume")
        with torch.no_grad():
            for avg, name in zip(self.shadow, names):
                avg.copy_(weights[name].to(avg))
        self.updates = int(updates)
