"""DPS likelihood score (Chung et al. 2023): the baseline SDA improves on.

DPS drops the variance term and uses a heuristic step normalised by the residual:

    ∇ log p(y | x(t)) ≈ −ζ ∇_{x(t)} ‖(y − A(x̂)) / σ_y‖₂,   x̂ = (x(t) − σ ε)/μ

(``ζ_i = ζ / ‖r‖`` applied to ``∇‖r‖²`` as in the DPS paper, with ``r`` whitened by σ_y).
"""

from __future__ import annotations

import torch

from .base import Guidance

__all__ = ["DPSGuidance"]


class DPSGuidance(Guidance):
    name = "dps"
    graph_safe = True

    def __init__(self, obs, zeta: float = 1.0):
        super().__init__(obs)
        self.zeta = float(zeta)

    def __call__(self, model, x, t):
        _, sigma = model.schedule(t)
        with torch.enable_grad():
            x, x_hat, eps = self._denoise_with_graph(model, x, t)
            r = (self.obs.y - self.obs(x_hat)) / self.obs.var_y.sqrt()
            norm = r.square().flatten(1).sum(1).sqrt()
            (grad,) = torch.autograd.grad(norm.sum(), x)
        return eps.detach() + sigma * self.zeta * grad
