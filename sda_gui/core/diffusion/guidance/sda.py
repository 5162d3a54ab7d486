"""SDA likelihood score (Rozet & Louppe 2023, eq. 12).

    p(y | x(t)) ≈ N(y | A(x̂), Σ_y + (σ²/μ²) A Γ Aᵀ),   Γ = γ I,   x̂ = (x(t) − σ ε)/μ

The gradient with respect to ``x(t)`` is taken by autograd through the network
(the variance term is held constant). ``A Γ Aᵀ`` is approximated by its diagonal
``γ · gain`` (exact for masks, coarsening and subsampling; for a nonlinear operator
the gain is linearised at the current estimate ``x̂``).

With ``dynamics`` (a ``DynamicsConsistency``) the log-likelihood also holds the
system's own transition, ``log p(y | x(t)) + log p_dyn(x(t))``, differentiated through
every window (``dynamics.py``).
"""

from __future__ import annotations

import torch

from .base import Guidance

__all__ = ["SDAGuidance"]


class SDAGuidance(Guidance):
    name = "sda"
    graph_safe = True

    def __init__(self, obs, gamma: float = 1e-2, dynamics=None):
        super().__init__(obs)
        self.gamma = float(gamma)
        self.dynamics = dynamics
        if dynamics is not None:
            self.obs.split = None     # the residual of neighbouring states needs every window's gradient

    def __call__(self, model, x, t):
        mu, sigma = model.schedule(t)
        with torch.enable_grad():
            x, x_hat, eps = self._denoise_with_graph(model, x, t)
            var = self.obs.var_y + (sigma / mu) ** 2 * self.gamma * self.obs.gain_at(x_hat)
            r = self.obs.y - self.obs(x_hat)
            log_p = -0.5 * (r ** 2 / var).sum()
            if self.dynamics is not None:
                log_p = log_p + self.dynamics.log_p(x_hat, sigma, mu)
            (score,) = torch.autograd.grad(log_p, x)
        return eps.detach() - sigma * score
