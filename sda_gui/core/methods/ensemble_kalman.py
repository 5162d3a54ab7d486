"""Ensemble Kalman filter (EnKF): the square-root (ETKF) and perturbed-observation analyses.

An ensemble ``E = (x_1, …, x_N)`` of ``N`` states has mean ``x̄`` and anomalies
``A_n = x_n − x̄``. At an observed state with ``h(x)``, values ``y`` and stds ``σ``
(``common.observed_states``: identity, masks, coarsening, subsampling — all linear),
the observation ensemble ``h(x_n)`` has mean ``ȳ`` and normalised anomalies
``Ŷ_n = (h(x_n) − ȳ) / σ``; the normalised innovation is ``d = (y − ȳ) / σ``.
Everything below lives in the ``N``-dimensional ensemble space, with

    C = Ŷ Ŷᵀ + (N − 1) I                                   (N × N, symmetric, ≥ N − 1)

* **Square root (ETKF, Hunt et al. 2007; DAPPER's ``EnKF('Sqrt')``)**:
  ``w = C⁻¹ Ŷ d`` and the symmetric ``T = √(N − 1) C^{−1/2}``; the analysis is
  deterministic, ``x_n^a = x̄ + Σ_m (w_m + T_{nm}) A_m``.
* **Perturbed observations (Burgers et al. 1998; DAPPER's ``EnKF('PertObs')``)**:
  each member sees ``y − σ ε_n`` with ``ε`` standard normal, centred over the
  members; the gain ``K = Aᵀ Ŷ (ŶᵀŶ + (N−1) I)⁻¹ σ⁻¹ = Aᵀ C⁻¹ Ŷ σ⁻¹`` (push-through
  identity) is applied in ensemble space, ``x_n^a = x_n + Σ_m W_{mn} A_m`` with
  ``W = C⁻¹ Ŷ Δᵀ`` and the per-member innovations ``Δ_n = (y − h(x_n)) / σ − ε_n``.

Both analyses are a linear map of the members, ``E^a = G E`` with an ``N × N``
matrix ``G = I + L Rᵀ Π`` (``Π = I − 11ᵀ/N``) whose update ``L Rᵀ`` has rank at most
``min(N, m) + 1``: ``analysis_transform`` builds ``L`` and ``R`` from a decomposition
of ``Ŷ Ŷᵀ`` and never forms ``G``, so thousands of members stay cheap. The ensemble smoother
(``smoothers.EnKS``) applies the same ``G`` to the window's past states. After an analysis the anomalies
are inflated, ``x_n ← x̄ + λ (x_n − x̄)`` (multiplicative inflation ``λ``, as DAPPER's
``post_process``).

Filter over the window: the members start from the climatology (cold start),
move with the system's own stochastic transition, and are analysed at each
observed state. The members returned at state ``i`` are the filter's ensemble
there: the (inflated) analysis where ``i`` is observed, the forecast elsewhere.
Computations are float64 on ``ctx.device``; members come back float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .base import Method, MethodError, MethodResult, RunContext
from .common import climatology, observed_states
from .registry import register_method

__all__ = ["EnKF", "EnKFSettings", "VARIANTS", "Transform", "etkf_weights", "analysis_transform",
           "inflate", "check_members", "filter_defaults"]

VARIANTS = ("sqrt", "perturbed")


def etkf_weights(y_anom: torch.Tensor, innovation: torch.Tensor):
    """ETKF mean weights ``w`` ``(..., N)`` and symmetric transform ``T`` ``(..., N, N)``.

    ``y_anom`` ``(..., N, m)`` are the normalised observation anomalies ``Ŷ``,
    ``innovation`` ``(..., m)`` the normalised innovation ``d``; leading dimensions
    batch independent (local) analyses, solved by one batched eigendecomposition.
    """
    n = y_anom.shape[-2]
    c = y_anom @ y_anom.transpose(-1, -2)
    c.diagonal(dim1=-2, dim2=-1).add_(n - 1.0)
    evals, evecs = torch.linalg.eigh(c)
    # eigenvalues are ≥ N − 1 > 0 in exact arithmetic; the clamp guards round-off only
    evals = evals.clamp_min(n - 1.0)
    rhs = (y_anom @ innovation.unsqueeze(-1)).squeeze(-1)                      # Ŷ d
    w = (evecs * evals.reciprocal().unsqueeze(-2)) @ (evecs.transpose(-1, -2) @ rhs.unsqueeze(-1))
    t = (evecs * (evals.rsqrt() * (n - 1.0) ** 0.5).unsqueeze(-2)) @ evecs.transpose(-1, -2)
    return w.squeeze(-1), t


@dataclass
class Transform:
    """One analysis as a low-rank map of the members: ``E^a = E + L Rᵀ (E − Ē)``.

    ``L`` and ``R`` are ``(N, k)`` with ``k ≤ min(N, m) + 1``, so an analysis costs
    ``O(N k d)`` even with thousands of members (the ``N × N`` matrix ``G`` of the
    module docstring is ``I + L Rᵀ Π`` and is never formed).
    """

    left: torch.Tensor
    right: torch.Tensor

    def apply(self, ens: torch.Tensor) -> torch.Tensor:
        """For members ``(N, *shape)`` (or ``(N, K, *shape)``: the same map for every state)."""
        flat = ens.reshape(ens.shape[0], -1)
        anom = flat - flat.mean(0)
        return (flat + self.left @ (self.right.T @ anom)).reshape(ens.shape)


def _decompose(y_anom: torch.Tensor):
    """``(U, s²)`` with ``Ŷ Ŷᵀ = U diag(s²) Uᵀ``: an ``N × N`` eigendecomposition when ``m ≥ N``
    (cheaper for small ensembles, as DAPPER's default), the thin SVD of ``Ŷ`` otherwise."""
    n, m = y_anom.shape
    if m >= n:
        evals, evecs = torch.linalg.eigh(y_anom @ y_anom.T)
        return evecs, evals.clamp_min(0.0)
    u, sv, _ = torch.linalg.svd(y_anom, full_matrices=False)
    return u, sv.square()


def analysis_transform(obs_ens: torch.Tensor, y: torch.Tensor, std: torch.Tensor, variant: str = "sqrt",
                       generator: Optional[torch.Generator] = None) -> Transform:
    """The ensemble-space map of one analysis (see the module docstring).

    ``obs_ens`` ``(N, m)`` holds ``h(x_n)``; ``y`` and ``std`` ``(m,)``. With
    ``Ŷ Ŷᵀ = U diag(s²) Uᵀ``: ``C⁻¹ = U diag(1 / (s² + N − 1)) Uᵀ`` on the span of ``U``
    (where ``Ŷ`` lives) and ``T − I = U diag(√((N − 1) / (s² + N − 1)) − 1) Uᵀ``.
    """
    n1 = obs_ens.shape[0] - 1.0
    y_mean = obs_ens.mean(0)
    y_anom = (obs_ens - y_mean) / std
    u, s2 = _decompose(y_anom)
    if variant == "sqrt":
        w = u @ ((u.T @ (y_anom @ ((y - y_mean) / std))) / (s2 + n1))
        shrink = (n1 / (s2 + n1)).sqrt() - 1.0
        ones = torch.ones((obs_ens.shape[0], 1), dtype=obs_ens.dtype, device=obs_ens.device)
        return Transform(torch.cat((ones, u * shrink), 1), torch.cat((w[:, None], u), 1))
    if variant == "perturbed":
        eps = torch.randn(obs_ens.shape, generator=generator, device=obs_ens.device, dtype=obs_ens.dtype)
        eps = eps - eps.mean(0)                                                # DAPPER's mean0
        innov = (y - obs_ens) / std - eps                                      # Δ_n, normalised
        return Transform(((innov @ y_anom.T) @ u) / (s2 + n1), u)             # Wᵀ = Δ Ŷᵀ C⁻¹
    raise MethodError(f"unknown EnKF variant '{variant}' (known: {', '.join(VARIANTS)})")


def inflate(ens: torch.Tensor, factor: float) -> torch.Tensor:
    if factor == 1.0:
        return ens
    mean = ens.mean(0, keepdim=True)
    return mean + factor * (ens - mean)


def check_members(name: str, n_members: int) -> None:
    if n_members < 2:
        raise MethodError(f"{name} needs at least 2 members (an ensemble has no spread with one)")


def filter_defaults(system) -> dict:
    """Per-system inflation of the global EnKF/EnKS with 40 members started cold from the climatology.

    Measured on the benchmark windows of ``sda_gui.bench_classical.PROBLEMS``
    (RMSE averaged over the window, 4–6 windows): on Lorenz-96 1.05 is within 3 %
    of the best of 1.0–1.2 for L = 32 and L = 128 (short cold-started windows want
    more than the 1.02 of long runs); on Lorenz-63, whose transition is noisy,
    1.0–1.02 are best. Kolmogorov: not measured, a moderate default.
    """
    name = getattr(system, "name", "")
    if name == "lorenz96":
        return {"inflation": 1.05}
    if name == "lorenz63":
        return {"inflation": 1.02}
    return {"inflation": 1.05}


@dataclass
class EnKFSettings:
    #: "sqrt" (ETKF, deterministic) or "perturbed" (perturbed observations)
    variant: str = "sqrt"
    #: multiplicative inflation of the analysis anomalies (1 = none)
    inflation: float = 1.0


@register_method
class EnKF(Method):
    name = "enkf"
    title = "EnKF"
    family = "filter"
    Settings = EnKFSettings

    @classmethod
    def default_settings(cls, system):
        return EnKFSettings(**filter_defaults(system))

    @classmethod
    def check_settings(cls, s, system) -> None:
        s.variant = str(s.variant).strip().lower()
        if s.variant not in VARIANTS:
            raise MethodError(f"{cls.name}: variant must be one of {', '.join(VARIANTS)}, got '{s.variant}'")
        if not s.inflation > 0:
            raise MethodError(f"{cls.name}: inflation must be > 0 (1 = none)")

    def run(self, ctx: RunContext) -> MethodResult:
        members, diag = run_filter(ctx, self.settings.variant, self.settings.inflation, smooth=False)
        return MethodResult(members, diag)


def run_filter(ctx: RunContext, variant: str, inflation: float, smooth: bool):
    """EnKF (``smooth=False``) or EnKS (``smooth=True``: every ``G`` also updates the past states).

    Returns members ``(N, L, *state_shape)`` float32 on the CPU and diagnostics.
    """
    check_members("the ensemble Kalman filter", ctx.n_members)
    obs = observed_states(ctx)
    gen = ctx.generator
    ens = climatology(ctx)
    length = ctx.length
    traj = torch.empty((length, *ens.shape), dtype=ens.dtype, device=ens.device)
    analyses = 0
    for i in range(length):
        if i > 0:
            ens = ctx.system.transition(ens, gen)
        if obs.is_observed(i):
            g = analysis_transform(obs.h(i, ens), obs.y(i), obs.std(i), variant, gen)
            ens = g.apply(ens)
            if smooth and i > 0:
                # the past states move with the same ensemble-space map (EnKS, the lag is the window)
                traj[:i] = g.apply(traj[:i].transpose(0, 1)).transpose(0, 1)
            ens = inflate(ens, inflation)
            analyses += 1
        traj[i] = ens
        ctx.step(i + 1, length)
    members = traj.transpose(0, 1).float().cpu()
    return members, {"variant": variant, "inflation": float(inflation), "analyses": analyses}
