"""Particle filters over whole trajectories: bootstrap (BPF) and regularised (RPF).

Bootstrap particle filter: ``P`` particles start from the climatology, move with
the system's stochastic transition, are weighted by
``w ∝ Π_j N(y_{i,j} | h_i(x)_j, σ_{i,j}²)`` at each observed state and
resampled (systematic) there, carrying their paths along; ``N`` members are
drawn from the final weighted paths (``core.baselines``). With enough particles
(16384 for Lorenz-63) it is the exact posterior, the ground truth SDA is scored
against.

Regularised particle filter: after each resampling the duplicated particles are
jittered by a Gaussian kernel ``x ← x + h_opt · L z`` with ``L Lᵀ`` the
weighted particle covariance and ``h_opt = bandwidth · (4 / (P (d + 2)))^{1/(d+4)}``
(Silverman's rule), which keeps diversity where the transition is nearly
deterministic (Lorenz-96).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..baselines import systematic_resample
from .base import Method, MethodError, MethodResult, RunContext
from .common import climatology, observed_states
from .registry import register_method

__all__ = ["BootstrapPF", "RegularisedPF"]


@dataclass
class _PFSettings:
    #: particles; members are drawn from them (0: 16 members' worth, at least 1024)
    particles: int = 0
    #: kernel bandwidth as a multiple of Silverman's rule (RPF only; 0 = bootstrap)
    bandwidth: float = 0.0


class _ParticleFilter(Method):
    family = "particle"
    Settings = _PFSettings

    @classmethod
    def check_settings(cls, s, system) -> None:
        if s.particles < 0:
            raise MethodError(f"{cls.name}: particles must be ≥ 0 (0: automatic)")
        if s.bandwidth < 0:
            raise MethodError(f"{cls.name}: bandwidth must be ≥ 0")

    def run(self, ctx: RunContext) -> MethodResult:
        s = self.settings
        n_particles = s.particles or max(1024, 16 * ctx.n_members)
        obs = observed_states(ctx)
        x = climatology(ctx, n_particles)
        d = x[0].numel()
        gen = ctx.generator
        paths = torch.empty((ctx.length, *x.shape), dtype=x.dtype, device=x.device)
        logw = torch.zeros(n_particles, dtype=x.dtype, device=x.device)
        ess_min = float(n_particles)
        for i in range(ctx.length):
            if i > 0:
                x = ctx.system.transition(x, gen)
            paths[i] = x
            if obs.is_observed(i):
                r = (obs.h(i, x) - obs.y(i)) / obs.std(i)
                logw = logw - 0.5 * r.square().sum(-1)
                w = torch.softmax(logw, 0)
                ess_min = min(ess_min, float(1.0 / w.square().sum()))
                idx = systematic_resample(w, gen)
                paths[: i + 1] = paths[: i + 1, idx]
                if s.bandwidth > 0:
                    flat = paths[i].reshape(n_particles, d)
                    cov = torch.cov(flat.T).reshape(d, d) + 1e-9 * torch.eye(d, dtype=x.dtype, device=x.device)
                    chol = torch.linalg.cholesky(cov)
                    h = s.bandwidth * (4.0 / (n_particles * (d + 2))) ** (1.0 / (d + 4))
                    z = torch.randn((n_particles, d), generator=gen, device=x.device, dtype=x.dtype)
                    paths[i] = (flat + h * z @ chol.T).reshape(paths[i].shape)
                x = paths[i]
                logw = torch.zeros_like(logw)
            ctx.step(i + 1, ctx.length)
        pick = torch.multinomial(torch.softmax(logw, 0), ctx.n_members, replacement=True, generator=gen)
        members = paths[:, pick].transpose(0, 1)
        return MethodResult(members.float().cpu(), {"particles": n_particles, "min_ess": ess_min})


@register_method
class BootstrapPF(_ParticleFilter):
    name = "bpf"
    title = "Particle filter"


@register_method
class RegularisedPF(_ParticleFilter):
    name = "rpf"
    title = "Regularised PF"

    @classmethod
    def default_settings(cls, system):
        return _PFSettings(bandwidth=1.0)
