"""Dynamics consistency: the system's own transition as a second likelihood of x̂.

The score network knows the dynamics only as far as its training taught it; on dense
observations its samples keep a one-step error x_{i+1} − f(x_i) of about 0.04 per entry
on Lorenz-96 where the true trajectories have none (``docs/benchmarks.md``). When the
system's transition f is known and differentiable, SDA's guidance can also ask the
denoised estimate x̂ (physical units) to follow it:

    log p_dyn(x(t)) ≈ −½ Σ_i ‖x̂_{i+1} − f(x̂_i)‖² / (q² + s_f² + (σ/μ)² G s²)

``q`` is the model error allowed per step (the user's ``dynamics_std``), ``s_f`` the
system's own transition noise (so a stochastic system is not asked to be
deterministic), ``s`` the normalisation scale and ``(σ/μ)² G s²`` the uncertainty of x̂
at diffusion time t — the same construction as SDA's Σ_y + (σ²/μ²) Γ for the
observations, so the term is weak at high noise (x̂ is a blurred mean there) and firm
near t = 0. The residual couples every pair of neighbouring states, so the gradient
needs the backward pass of every window, not only of the observed states'.

The term is an approximation twice over: it treats the residuals of x̂ as independent
Gaussians, and it counts the dynamics a second time where the prior already holds
them; ``q`` too small (or ``G`` too small) makes the guidance stiff and the samples
rough (measured in ``docs/benchmarks.md``).

The stiffness also depends on the sampler's step: with S steps each one moves x(t)
about 1/S of the way, and a term firm enough to help a 32- or 64-step run overshoots
when a step moves further. With G = 0.3 fixed, on dense observations every Lorenz-96
model tried diverged to the clamp below at 8 steps, and the small shipped one turned
rough at 16.
``gamma_for_steps`` makes the G of a run with fewer than 32 steps G · (32/S)³ (2.4 at
16 steps, 19.2 at 8), which kept every model tried finite and, but for one tie within
1 %, better than without the term (the table in ``docs/benchmarks.md``).

The same argument runs the other way: with more steps each one moves x(t) less, so a
firmer term stays stable and follows the dynamics more closely. G as given is the G of
32 to 64 steps; above 64 it falls as G · (64/S)^p with p = log 6 / log 4 ≈ 1.29, so
that the default 0.3 becomes 0.122 at 128 steps and 0.05 at 256, the values measured
best there (at 256 steps G = 0.05 beat 0.3 on every window of all four Lorenz-96 rows;
at 64 steps G = 0.1 was already rough). Beyond 256 steps G stays at G/6: smaller
values are not measured.
"""

from __future__ import annotations

import math

import torch

__all__ = ["DynamicsConsistency", "gamma_for_steps"]

#: the fewest steps that follow G as given; fewer steps get a larger G
REFERENCE_STEPS = 32
#: the most steps that follow G as given; more steps get a smaller G, down to G/6 at FIRMEST_STEPS
LOOSEST_STEPS, FIRMEST_STEPS = 64, 256
#: G falls sixfold from 64 to 256 steps, as a power of S: G · (64/S)^FIRMING, FIRMING = log 6 / log 4
FIRMING = math.log(6.0) / math.log(FIRMEST_STEPS / LOOSEST_STEPS)


def gamma_for_steps(gamma: float, steps: int) -> float:
    """G of a run of ``steps`` sampler steps: G · (32/S)³ below 32 steps, G from 32 to 64,
    G · (64/S)^(log 6/log 4) from 64 to 256 (G/6 there) and G/6 beyond."""
    steps = max(int(steps), 1)
    if steps < REFERENCE_STEPS:
        return float(gamma) * (REFERENCE_STEPS / steps) ** 3
    return float(gamma) * (LOOSEST_STEPS / min(max(steps, LOOSEST_STEPS), FIRMEST_STEPS)) ** FIRMING


class DynamicsConsistency:
    """``log_p(x̂_n, σ, μ)``: the dynamics term above for normalised estimates ``(N, L, *s)``."""

    CLAMP = 10.0

    def __init__(self, system, mean: torch.Tensor, scale: torch.Tensor, std: float, gamma: float = 0.3):
        if std <= 0:
            raise ValueError("the dynamics' model error std must be > 0")
        if gamma < 0:
            raise ValueError("the dynamics' γ must be ≥ 0")
        self.system = system
        self.state_shape = tuple(system.state_shape)
        self.mean, self.scale = mean, scale
        noise = float(getattr(system, "transition_std", lambda: 0.0)())
        self.var_step = float(std) ** 2 + noise ** 2
        self.gamma = float(gamma)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """``x_{i+1} − f(x_i)`` of physical trajectories ``(N, L, *s)`` → ``(N, L − 1, *s)``."""
        n, length = x.shape[:2]
        prev = x[:, :-1].reshape(-1, *self.state_shape)
        return x[:, 1:] - self.system.transition(prev).reshape(n, length - 1, *self.state_shape)

    def log_p(self, x_hat_n: torch.Tensor, sigma: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        # At high noise x̂ = (x − σε)/μ can lie far off the attractor (1/μ(1) = 1000 times an
        # error of ε), where a nonlinear step overflows and its NaN would poison the whole
        # score, though the term's weight there is ~μ²/σ². Within CLAMP normalised units of
        # the mean (the attractors span a few), nothing is clipped when it matters.
        x_hat_n = x_hat_n.clamp(-self.CLAMP, self.CLAMP)
        r = self.residual(x_hat_n * self.scale + self.mean)
        var = self.var_step + (sigma / mu) ** 2 * self.gamma * self.scale ** 2
        return -0.5 * (r ** 2 / var).sum()
