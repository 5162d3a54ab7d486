"""Scores of posterior samples (all in physical units).

- ``w1``: exact Wasserstein-1 between two equally weighted sample sets of whole
  trajectories (Euclidean cost on flattened trajectories, optimal assignment).
- ``rmse``: RMSE of the posterior mean against the truth.
- ``spread``: RMS over entries of the sample standard deviation.
- ``residual_std``: RMS of ``A(x) − y`` over samples and observed entries; near the
  observation std when samples explain the data as well as the truth does.
- ``physical_residual``: RMS one-step transition error ``x_{i+1} − f(x_i)``
  (deterministic ``f``); true trajectories score the transition-noise level. A
  system without dynamics (a data system: no ``f``) has none: NaN, and ``summary``
  leaves it out.

Calibration scores of members ``(N, L, *state_shape)`` against a truth, defined
in ``core.calibration`` and re-exported here: ``crps`` (fair ensemble CRPS),
``rank_histogram`` and ``rank_flatness`` (``χ²/dof``), ``spread_skill``,
``coverage`` (central intervals), ``rmse_time`` / ``spread_time`` (per state),
``rmse_per_state`` / ``spread_per_state`` (DAPPER's time averages of those; the
global ``rmse`` above is the RMS over every entry at once, never smaller) and
``scores`` (all of them in one dict).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .calibration import (coverage, crps, rank_flatness, rank_histogram, rmse_per_state, rmse_time, scores,
                          spread_per_state, spread_skill, spread_time)

__all__ = ["w1", "rmse", "spread", "residual_std", "physical_residual", "summary",
           "crps", "rank_histogram", "rank_flatness", "spread_skill", "coverage", "rmse_time", "spread_time",
           "rmse_per_state", "spread_per_state", "scores"]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def w1(a, b, seed: int = 0) -> float:
    """Exact W1 between sample sets ``(n, ...)`` and ``(m, ...)``.

    With ``n ≠ m`` the larger set is subsampled (seeded) to the smaller size so
    that the optimal transport is an assignment.
    """
    a = _np(a).reshape(len(a), -1).astype(np.float64)
    b = _np(b).reshape(len(b), -1).astype(np.float64)
    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    if len(a) > n:
        a = a[rng.choice(len(a), n, replace=False)]
    if len(b) > n:
        b = b[rng.choice(len(b), n, replace=False)]
    cost = np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0.0))
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def rmse(samples, truth) -> float:
    mean = _np(samples).mean(0)
    return float(np.sqrt(np.mean((mean - _np(truth)) ** 2)))


def spread(samples) -> float:
    s = _np(samples)
    return float(np.sqrt(np.mean(s.var(0, ddof=1 if len(s) > 1 else 0))))


def residual_std(samples, observation) -> float:
    x = torch.as_tensor(_np(samples), dtype=torch.float64)
    pred = observation.apply(x, x.ndim - 2).numpy()
    return float(np.sqrt(np.mean((pred - observation.observed_values()) ** 2)))


def physical_residual(samples, system) -> float:
    if not getattr(system, "has_dynamics", True):
        return float("nan")          # trajectories from a file: there is no f to step
    x = torch.as_tensor(_np(samples), dtype=torch.float32)
    n, length = x.shape[:2]
    with torch.no_grad():
        pred = system.transition(x[:, :-1].reshape(n * (length - 1), *x.shape[2:]))
    return float((x[:, 1:].reshape(pred.shape) - pred).square().mean().sqrt())


def summary(samples, truth=None, observation=None, system=None) -> dict:
    out = {"spread": spread(samples)}
    if truth is not None:
        out["rmse"] = rmse(samples, truth)
    if observation is not None:
        out["residual_std"] = residual_std(samples, observation)
        out["obs_std"] = float(np.mean(observation.observed_std()))
    if system is not None and getattr(system, "has_dynamics", True):
        out["physical_residual"] = physical_residual(samples, system)
    return out
