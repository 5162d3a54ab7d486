"""The observation as the guidance methods see it: in the network's normalised units.

With ``x_n`` normalised states and ``x = x_n · scale + mean`` physical ones,
``A_n(x_n) = A(x)`` is the observation operator seen from the network; ``y`` and
``var_y = std²`` stay physical. ``gain = diag(J Jᵀ)`` with ``J = ∂A_n/∂x_n``
maps an isotropic variance in normalised units to observation space (used by
SDA's ``Σ_y + (σ²/μ²) Γ`` term). A nonlinear operator (``saturate``, a plugin's) is
linearised at the current denoised estimate: ``gain_at(x̂)`` takes ``J`` there.

A guidance turns the prior noise estimate into a posterior one:
``ε_post = ε − σ ∇_{x(t)} log p(y | x(t))``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..local_score import LocalScoreModel, window_split
from ...observation import Observation

__all__ = ["ObservationModel", "Guidance"]


class ObservationModel:
    def __init__(self, observation: Observation, model: LocalScoreModel, device="cpu"):
        self.observation = observation
        self.state_ndim = len(model.state_shape)
        self.mean = model.mean.to(device)
        self.scale = model.scale.to(device)
        self.y = torch.as_tensor(observation.observed_values(), dtype=torch.float32, device=device)
        self.var_y = torch.as_tensor(observation.observed_std(), dtype=torch.float32, device=device) ** 2
        scale2 = (self.scale ** 2).expand(observation.length, *model.state_shape)
        self._scale2 = scale2
        mask = torch.as_tensor(observation.mask, device=device)
        # for a nonlinear operator: its gain at the mean state, until gain_at sees an estimate
        at = None if observation.op.linear else self.mean.expand_as(scale2)
        self.gain = observation.op.gain(scale2, self.state_ndim, at)[..., mask].to(self.y.dtype)
        self.linear = bool(observation.op.linear)
        # Flat indices instead of a boolean mask: a gather needs no host sync (a boolean
        # index does, to learn its size), so a guided call can be captured in a CUDA graph.
        self.index = torch.as_tensor(np.flatnonzero(observation.mask), device=device)
        self.index_ndim = observation.mask.ndim
        self.op = observation.op
        # Every operator acts on each state alone, so the likelihood reads only the
        # observed states' outputs: its gradient needs the backward pass of their windows.
        self.split = window_split(observation.length, model.k, observation.observed_states(), device,
                                  getattr(model, "fold", "centre"))

    def __call__(self, x_n: torch.Tensor) -> torch.Tensor:
        """``A_n(x_n)`` for ``(N, L, *s)`` → ``(N, m)``, the order of ``Observation.apply``."""
        out = self.op(x_n * self.scale + self.mean, self.state_ndim)
        return out.flatten(-self.index_ndim).index_select(-1, self.index)

    def gain_at(self, x_n: torch.Tensor) -> torch.Tensor:
        """``diag(J Jᵀ)`` linearised at the normalised estimates ``x_n`` ``(N, L, *s)`` → ``(N, m)``
        (held constant: no gradient flows through it); the fixed ``gain`` for a linear operator."""
        if self.linear:
            return self.gain
        with torch.no_grad():
            x = x_n.detach() * self.scale + self.mean
            g = self.op.gain(self._scale2.expand_as(x).to(x), self.state_ndim, x)
            return g.flatten(-self.index_ndim).index_select(-1, self.index).to(self.y.dtype)


class Guidance:
    """Base of the guidance methods: ``__call__(model, x, t) → guided ε``."""

    name = ""
    #: never synchronises with the host, so a call can be captured in a CUDA graph
    graph_safe = False

    def __init__(self, obs: ObservationModel):
        self.obs = obs
        if not getattr(obs.op, "graph_safe", True):
            self.graph_safe = False        # the operator's gain syncs with the host

    def __call__(self, model: LocalScoreModel, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _denoise_with_graph(self, model, x, t):
        """``(x_leaf, x̂, ε)`` with the graph from ``x_leaf`` kept for autograd.

        The graph covers only the windows the observed states need (``obs.split``), so
        only gradients of functions of ``obs(x̂)`` are right; that is all a guidance takes.
        """
        x = x.detach().requires_grad_(True)
        mu, sigma = model.schedule(t)
        eps = model(x, t, self.obs.split)
        return x, (x - sigma * eps) / mu, eps
