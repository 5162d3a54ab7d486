"""Reference posteriors: a bootstrap particle filter and a Kalman (RTS) smoother.

Bootstrap particle filter (BPF) over whole trajectories: particles start from the
system's stationary distribution, move with the stochastic transition, are
weighted by ``N(y_i | A(x_i), σ_y²)`` at observed times and resampled
(systematic) right after, carrying their paths along. Trajectory samples are
drawn from the final weighted paths. With many particles (16384 for Lorenz-63)
it is the ground truth the paper compares to.

The RTS smoother gives the exact posterior marginals of a linear-Gaussian chain
``x_{i+1} = F x_i + w``, ``w ~ N(0, Q)``, ``x_1 ~ N(m0, P0)`` with masked
observations of the state; it checks the BPF and the guidance methods.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from .observation import Observation

__all__ = ["bootstrap_particle_filter", "systematic_resample", "kalman_smoother"]


def systematic_resample(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = weights.shape[0]
    u = (torch.rand((), generator=generator, device=weights.device) + torch.arange(n, device=weights.device)) / n
    cdf = torch.cumsum(weights, 0)
    cdf[-1] = 1.0
    return torch.searchsorted(cdf, u).clamp_max(n - 1)


def bootstrap_particle_filter(initial: Callable[[int, torch.Generator], torch.Tensor],
                              transition: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
                              observation: Observation, n_particles: int = 16384, n_samples: int = 1024,
                              seed: int = 0, device="cpu", state_ndim: Optional[int] = None) -> torch.Tensor:
    """Posterior trajectory samples ``(n_samples, L, *state_shape)`` (float32, CPU)."""
    gen = torch.Generator(device=device).manual_seed(int(seed))
    x = initial(n_particles, gen).to(device=device, dtype=torch.float64)
    state_ndim = x.ndim - 1 if state_ndim is None else state_ndim
    length = observation.length
    op = observation.op
    mask = torch.as_tensor(observation.mask, device=device)
    values = torch.as_tensor(observation.values, device=device, dtype=torch.float64)
    std = torch.as_tensor(observation.std_array(), device=device, dtype=torch.float64)
    paths = torch.empty((length, *x.shape), dtype=x.dtype, device=device)
    logw = torch.zeros(n_particles, dtype=x.dtype, device=device)
    for i in range(length):
        if i > 0:
            x = transition(x, gen)
        paths[i] = x
        if mask[i].any():
            pred = op(x[:, None], state_ndim)[:, 0][:, mask[i]]
            logw = logw - 0.5 * (((pred - values[i][mask[i]]) / std[i][mask[i]]) ** 2).sum(-1)
            idx = systematic_resample(torch.softmax(logw, 0), gen)
            paths[: i + 1] = paths[: i + 1, idx]
            x = paths[i]
            logw = torch.zeros_like(logw)
    pick = torch.multinomial(torch.softmax(logw, 0), n_samples, replacement=True, generator=gen)
    return paths[:, pick].transpose(0, 1).float().cpu()


def kalman_smoother(F: np.ndarray, Q: np.ndarray, m0: np.ndarray, P0: np.ndarray, observation: Observation):
    """Posterior means ``(L, d)`` and marginal covariances ``(L, d, d)`` of a linear-Gaussian chain."""
    F, Q, m0, P0 = (np.asarray(a, dtype=np.float64) for a in (F, Q, m0, P0))
    length, d = observation.mask.shape
    std = observation.std_array()
    mf, pf, mp, pp = [], [], [], []
    m, p = m0, P0
    for i in range(length):
        if i > 0:
            m, p = F @ m, F @ p @ F.T + Q
        mp.append(m)
        pp.append(p)
        obs = observation.mask[i]
        if obs.any():
            H = np.eye(d)[obs]
            R = np.diag(std[i][obs] ** 2)
            S = H @ p @ H.T + R
            K = np.linalg.solve(S, H @ p).T
            m = m + K @ (observation.values[i][obs] - H @ m)
            p = (np.eye(d) - K @ H) @ p
        mf.append(m)
        pf.append(p)
    ms, ps = [mf[-1]], [pf[-1]]
    for i in range(length - 2, -1, -1):
        G = pf[i] @ F.T @ np.linalg.inv(pp[i + 1])
        ms.insert(0, mf[i] + G @ (ms[0] - mp[i + 1]))
        ps.insert(0, pf[i] + G @ (ps[0] - pp[i + 1]) @ G.T)
    return np.stack(ms), np.stack(ps)
