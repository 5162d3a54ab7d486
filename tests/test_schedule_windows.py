import math

import pytest
import torch

from sda_gui.core.diffusion.gaussian import GaussianWindowDenoiser, ar1_covariance
from sda_gui.core.diffusion.local_score import LocalScoreModel, fold_windows, unfold_windows
from sda_gui.core.diffusion.schedule import VPSchedule


def test_schedule_identities():
    s = VPSchedule(1e-3)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    mu, sigma = s(t)
    assert torch.allclose(mu[0], torch.tensor(1.0, dtype=torch.float64))
    assert math.isclose(mu[-1].item(), 1e-3, rel_tol=1e-9)       # μ(1) = η
    assert math.isclose(sigma[0].item(), 1e-3, rel_tol=1e-9)     # σ(0) = η
    assert torch.allclose(sigma ** 2, 1 - mu ** 2 + 1e-6)
    assert (mu[1:] < mu[:-1]).all() and (sigma[1:] > sigma[:-1]).all()
    assert s.config() == {"name": "vp_cosine", "eta": 1e-3}


def test_unfold_fold_round_trip_and_edges():
    x = torch.arange(2 * 9 * 3, dtype=torch.float32).view(2, 9, 3)
    w = unfold_windows(x, 2)
    assert w.shape == (2, 5, 5, 3)
    assert torch.equal(w[:, 1, 2], x[:, 3])                 # window 1 is centred on state 3
    assert torch.equal(fold_windows(w, 2), x)               # centres + edges rebuild the trajectory
    with pytest.raises(ValueError, match="2k\\+1"):
        unfold_windows(x[:, :4], 2)


def _exact_trajectory_eps(x, cov, t, schedule):
    mu, sigma = schedule(torch.tensor(t, dtype=torch.float64))
    n = cov.shape[0]
    prec = torch.linalg.inv(mu ** 2 * cov + sigma ** 2 * torch.eye(n, dtype=torch.float64))
    return sigma * x.reshape(x.shape[0], -1) @ prec.T


def _composed_error(k, t, length=16, a=0.9):
    schedule = VPSchedule()
    w = 2 * k + 1
    model = LocalScoreModel(GaussianWindowDenoiser(ar1_covariance(w, a)), k, (1,), torch.zeros(1), torch.ones(1))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, length, 1, generator=gen, dtype=torch.float64)
    exact = _exact_trajectory_eps(x, ar1_covariance(length, a), t, schedule)
    with torch.no_grad():
        composed = model(x, torch.tensor(t, dtype=torch.float64)).reshape(64, -1)
    return ((composed - exact).norm() / exact.norm()).item()


def test_composition_exact_at_zero_noise():
    # A first-order chain: ∇_{x_i} log p(x_{1:L}) depends on x_{i-1}, x_i, x_{i+1} only.
    for k in (1, 2, 3):
        assert _composed_error(k, 0.0) < 1e-4  # t = 0 still has σ = η = 1e-3


def test_composition_error_shrinks_with_k_at_positive_noise():
    errors = [_composed_error(k, 0.5) for k in (1, 2, 3, 4)]
    assert errors[0] > 1e-3                               # the approximation is not exact at t > 0 ...
    assert all(b < a for a, b in zip(errors, errors[1:]))  # ... but improves with a wider blanket
    assert errors[-1] < errors[0] / 3
