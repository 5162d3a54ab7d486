"""MMPS likelihood score (Rozet et al. 2024): Tweedie's covariance instead of ``γ I``.

    V = Cov[x | x(t)] ≈ (σ²/μ) ∂x̂/∂x(t)
    p(y | x(t)) ≈ N(y | A(x̂), Σ_y + A V Aᵀ)
    ∇_{x(t)} log p(y | x(t)) = (∂x̂/∂x(t))ᵀ Aᵀ u,   (Σ_y + A V Aᵀ) u = y − A(x̂)

The linear system is solved per sample by a few conjugate-gradient steps; each
step costs one vector–Jacobian product through the network (``∂x̂/∂x(t)`` is
symmetric for a true score, so its transpose stands in for it). No γ to tune.
A learned ε-network's Jacobian, divided by μ, is too noisy at high noise
(σ/μ > 1 by default) to be a covariance — it is often indefinite there; those
steps use the covariance of a unit Gaussian prior in normalised units instead,
``V = σ²/(μ² + σ²) I``, and the CG stops at any direction of non-positive curvature.
"""

from __future__ import annotations

import torch

from .base import Guidance

__all__ = ["MMPSGuidance", "conjugate_gradient"]


def conjugate_gradient(matvec, b: torch.Tensor, iterations: int) -> torch.Tensor:
    """Solves ``M u = b`` for a batch of SPD systems (rows of ``b``), from ``u = 0``.

    A learned Jacobian can make ``M`` indefinite at high noise; a row stops updating
    at its first direction of non-positive curvature (as in Steihaug's CG), so ``u``
    stays the last well-defined iterate (zero if it happens at once).
    """
    u = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = (r * r).sum(-1, keepdim=True)
    active = torch.ones_like(rr, dtype=torch.bool)
    for _ in range(iterations):
        mp = matvec(p)
        curvature = (p * mp).sum(-1, keepdim=True)
        active = active & (curvature > 0) & (rr > 0)
        alpha = torch.where(active, rr / curvature.clamp_min(1e-30), torch.zeros_like(rr))
        u = u + alpha * p
        r = r - alpha * mp
        rr_new = (r * r).sum(-1, keepdim=True)
        p = r + torch.where(active, rr_new / rr.clamp_min(1e-30), torch.zeros_like(rr)) * p
        rr = rr_new
    return u


class MMPSGuidance(Guidance):
    name = "mmps"

    def __init__(self, obs, iterations: int = 3, max_noise_ratio: float = 1.0):
        super().__init__(obs)
        self.iterations = int(iterations)
        #: above this σ/μ the ε-network's Jacobian (divided by μ) is too noisy to be a covariance
        self.max_noise_ratio = float(max_noise_ratio)

    def __call__(self, model, x, t):
        mu, sigma = model.schedule(t)
        if sigma / mu > self.max_noise_ratio:
            return self._prior_covariance(model, x, t, mu, sigma)
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

            r = (self.obs.y - y_hat).detach()
            u = conjugate_gradient(matvec, r, self.iterations)
            # rows where the Jacobian showed no positive curvature: unit-prior covariance
            stuck = (u == 0).all(-1, keepdim=True)
            if stuck.any():
                u = torch.where(stuck, self._prior_solve(r, mu, sigma, x_hat_d), u)
            score = torch.autograd.grad(x_hat, x, a_vjp(u)[0])[0]
        return eps.detach() - sigma * score

    def _prior_covariance(self, model, x, t, mu, sigma):
        """High noise: ``V = σ²/(μ² + σ²) I`` (a unit Gaussian prior in normalised units),
        and ``∇ log p(y | x(t)) = (μ/σ²) V Aᵀ u`` by the same Gaussian identity."""
        with torch.no_grad():
            eps = model(x, t)
            x_hat = (x - sigma * eps) / mu
        y_hat, a_vjp = torch.func.vjp(self.obs, x_hat)
        u = self._prior_solve(self.obs.y - y_hat, mu, sigma, x_hat)
        score = mu / (mu ** 2 + sigma ** 2) * a_vjp(u)[0]   # (μ/σ²) V Aᵀ u
        return eps - sigma * score

    def _prior_solve(self, r, mu, sigma, x_hat):
        """``(Σ_y + A V Aᵀ)⁻¹ r`` with ``V = σ²/(μ² + σ²) I`` (diagonal through ``gain``, linearised
        at ``x̂`` for a nonlinear operator)."""
        return r / (self.obs.var_y + sigma ** 2 / (mu ** 2 + sigma ** 2) * self.obs.gain_at(x_hat))
