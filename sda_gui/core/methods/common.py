"""Pieces every classical method shares: the cold start and the observation at one time.

Cold start: ``N`` independent draws from the system's climatology (its prior
pushed ``burn_in`` noisy transitions onto the attractor) — the only prior
knowledge SDA's training data gives it too.

Observation at state ``i``: with operator ``A`` (identity, coarsening,
subsampling) and the mask ``M_i`` on ``A``'s output grid,
``h_i(x) = A(x)[M_i]`` (a linear map for every built-in operator), the
observed values ``y_i = values_i[M_i]`` and the stds ``σ_i = std_i[M_i]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..observation import Observation

__all__ = ["climatology", "ObservedStates", "observed_states"]


def climatology(ctx, n: Optional[int] = None, dtype=torch.float64) -> torch.Tensor:
    """``n`` (default ``ctx.n_members``) states ``(n, *state_shape)`` from the system's climatology."""
    n = ctx.n_members if n is None else int(n)
    x = ctx.system.initial_states(n, ctx.generator, ctx.device)
    return x.to(dtype)


@dataclass
class ObservedStates:
    """The observation split per state: for each observed state ``i``, ``h_i``, ``y_i``, ``σ_i``."""

    observation: Observation
    state_ndim: int
    device: torch.device
    dtype: torch.dtype = torch.float64

    def __post_init__(self):
        obs = self.observation
        self.op = obs.op
        self._mask = torch.as_tensor(obs.mask, device=self.device)
        self._values = torch.as_tensor(obs.values, device=self.device, dtype=self.dtype)
        self._std = torch.as_tensor(obs.std_array(), device=self.device, dtype=self.dtype)
        self.indices = [int(i) for i in obs.observed_states()]
        self._observed = set(self.indices)

    def is_observed(self, i: int) -> bool:
        return i in self._observed

    def h(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """``h_i(x)`` for states ``x`` of shape ``(..., *state_shape)`` → ``(..., m_i)``."""
        out = self.op(x, self.state_ndim)
        return out[..., self._mask[i]]

    def y(self, i: int) -> torch.Tensor:
        return self._values[i][self._mask[i]]

    def std(self, i: int) -> torch.Tensor:
        return self._std[i][self._mask[i]]

    def count(self, i: int) -> int:
        return int(self._mask[i].sum())

    def positions(self, i: int) -> np.ndarray:
        """Where each observed entry of state ``i`` sits on the operator's output grid (index tuples)."""
        return np.argwhere(self.observation.mask[i])


def observed_states(ctx, dtype=torch.float64) -> ObservedStates:
    return ObservedStates(ctx.observation, len(ctx.state_shape), ctx.device, dtype)
