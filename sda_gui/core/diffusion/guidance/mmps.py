"""MMPS likelihood score (Rozet et al. 2024): Tweedie's covariance instead of ``γ I``.

    V = Cov[x | x(t)] ≈ (σ²/μ) ∂x̂/∂x(t)
    p(y | x(t)) ≈ N(y | A(x̂), Σ_y + A V Aᵀ)
    ∇_{x(t)} log p(y | x(t)) = (∂x̂/∂x(t))ᵀ Aᵀ u,   (Σ_y + A V Aᵀ) u = y − A(x̂)

The linear system is solved per sample by a few conjugate-gradient steps; each
step costs one vector–Jacobian product through the network (``∂x̂/∂x(t)`` is
symmetric for a true score, so its transpose stands in for it). No γ to tune.
"""

from __future__ import annotations

import torch

from .base import Guidance

__all__ = ["MMPSGuidance", "conjugate_gradient"]


def conjugate_gradient(matvec, b: torch.Tensor, iterations: int) -> torch.Tensor:
    """Solves ``M u = b`` for a batch of SPD systems (rows of ``b``), from ``u = 0``."""
    u = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = (r * r).sum(-1, keepdim=True)
    for _ in range(iterations):
        mp = matvec(p)
        alpha = rr / (p * mp).sum(-1, keepdim=True).clamp_min(1e-30)
        u = u + alpha * p
        r = r - alpha * mp
        rr_new = (r * r).sum(-1, keepdim=True)
        p = r + rr_new / rr.clamp_min(1e-30) * p
        rr = rr_new
    return u


class MMPSGuidance(Guidance):
    name = "mmps"

    def __init__(self, obs, iterations: int = 3):
        super().__init__(obs)
        self.iterations = int(iterations)

    def __call__(self, model, x, t):
        mu, sigma = model.schedule(t)
        with torch.enable_grad():
            x, x_hat, eps = self._denoise_with_graph(model, x, t)
            x_hat_d = x_hat.detach()
            y_hat, a_vjp = torch.func.vjp(self.obs, x_hat_d)

            def a_jvp(v):
                return torch.func.jvp(self.obs, (x_hat_d,), (v,))[1]

            def jac_x_hat(v):  # (∂x̂/∂x)ᵀ v, standing in for ∂x̂/∂x v
                return torch.autograd.grad(x_hat, x, v, retain_graph=True)[0]

            def matvec(v):
                return self.obs.var_y * v + (sigma ** 2 / mu) * a_jvp(jac_x_hat(a_vjp(v)[0]))

            u = conjugate_gradient(matvec, (self.obs.y - y_hat).detach(), self.iterations)
            score = torch.autograd.grad(x_hat, x, a_vjp(u)[0])[0]
        return eps.detach() - sigma * score
