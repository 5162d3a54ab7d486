"""Likelihood guidance (SDA, DPS, MMPS) against closed-form Gaussian answers.

The prior is a stationary AR(1) chain ``x_{i+1} = a x_i + √(1 − a²) w`` with unit
marginal variance. Its exact denoiser (``GaussianWindowDenoiser``) over a window
that spans the whole trajectory (``k = (L − 1)/2``) makes every quantity the
guidance methods approximate available in closed form:

    C_t = μ² Σ + σ² I,   ε = σ C_t⁻¹ x,   x̂ = M x with M = μ Σ C_t⁻¹,
    Cov[x | x(t)] = (σ²/μ) M,

so the single-call tests compare each guidance with its defining formula, and
the sampler tests compare MMPS with the Kalman (RTS) smoother, the exact posterior.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sda_gui.core.baselines import kalman_smoother
from sda_gui.core.diffusion.gaussian import GaussianWindowDenoiser, ar1_covariance
from sda_gui.core.diffusion.guidance import (DPSGuidance, MMPSGuidance, ObservationModel, SDAGuidance,
                                             conjugate_gradient, make_guidance)
from sda_gui.core.diffusion.local_score import LocalScoreModel
from sda_gui.core.diffusion.networks import ResMLP
from sda_gui.core.diffusion.sampler import Sampler
from sda_gui.core.observation import Observation


pytestmark = pytest.mark.usefixtures("one_torch_thread")


L = 9
A = 0.8
OBSERVED = [1, 4, 7]


def _close(actual, expected, rtol=1e-5, atol=1e-6):
    """``torch.testing.assert_close`` costs seconds on its first call; numpy's does not."""
    np.testing.assert_allclose(torch.as_tensor(actual).detach().numpy(), torch.as_tensor(expected).detach().numpy(),
                               rtol=rtol, atol=atol)


def gaussian_model(length=L, a=A, mean=0.0, scale=1.0, state=1):
    cov = ar1_covariance(length, a, dims=state)
    return LocalScoreModel(GaussianWindowDenoiser(cov), (length - 1) // 2, (state,),
                           torch.full((state,), float(mean)), torch.full((state,), float(scale)))


def masked_observation(values=(1.0, -0.5, 1.5), std=0.3, length=L):
    mask = np.zeros((length, 1), dtype=bool)
    mask[OBSERVED] = True
    vals = np.full((length, 1), np.nan)          # NaN where unobserved must be harmless
    vals[OBSERVED, 0] = values
    return Observation(mask, vals, std)


def tweedie_mmps(obs, model):
    """MMPS on its Tweedie-covariance path at every noise level.

    ``MMPSGuidance`` may fall back to a unit-prior covariance above ``σ/μ > max_noise_ratio``
    (meant for learned networks); with an exact denoiser Tweedie's covariance is exact,
    so the fallback is turned off here when it exists.
    """
    guide = MMPSGuidance(ObservationModel(obs, model), iterations=3)
    if hasattr(guide, "max_noise_ratio"):
        guide.max_noise_ratio = float("inf")
    return guide


def smoother(obs, a=A):
    mean, cov = kalman_smoother([[a]], [[1 - a * a]], [0.0], [[1.0]], obs)
    return mean[:, 0], np.sqrt(cov[:, 0, 0])


# ------------------------------------------------------------------------------------------
# single guided calls against their closed forms (physical units: mean 2, scale 3)
# ------------------------------------------------------------------------------------------
MEAN, SCALE = 2.0, 3.0


def _closed_form(t, x, obs, a=A):
    """Exact prior ε, the matrix M (x̂ = M x) and the pieces of the observation model."""
    from sda_gui.core.diffusion.schedule import VPSchedule

    mu, sigma = VPSchedule()(torch.tensor(t, dtype=torch.float64))
    mu, sigma = mu.item(), sigma.item()
    cov = ar1_covariance(L, a).numpy()
    ct = mu ** 2 * cov + sigma ** 2 * np.eye(L)
    ct_inv = np.linalg.inv(ct)
    xf = x.reshape(x.shape[0], -1).numpy()
    eps = sigma * xf @ ct_inv.T
    m = mu * cov @ ct_inv
    x_hat = xf @ m.T
    h = np.eye(L)[OBSERVED] * SCALE                     # A_n = H diag(scale)
    y = obs.observed_values()
    y_hat = x_hat @ h.T + MEAN
    var_y = obs.observed_std() ** 2
    return mu, sigma, eps, m, h, y, y_hat, var_y


@pytest.mark.parametrize("t", [0.05, 0.4, 0.8])
def test_mmps_single_call_is_the_exact_gaussian_likelihood_score(t):
    model = gaussian_model(mean=MEAN, scale=SCALE)
    obs = masked_observation(values=(4.0, 0.5, 6.5), std=0.9)
    x = torch.randn(5, L, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    guide = tweedie_mmps(obs, model)
    got = guide(model, x, torch.tensor(t, dtype=torch.float64)).reshape(5, L).detach().numpy()

    mu, sigma, eps, m, h, y, y_hat, var_y = _closed_form(t, x, obs)
    v = sigma ** 2 / mu * m                              # Tweedie covariance, exact here
    s_mat = np.diag(var_y) + h @ v @ h.T
    u = np.linalg.solve(s_mat, (y - y_hat).T).T
    expected = eps - sigma * u @ h @ m                   # ε − σ Mᵀ A_nᵀ u
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("t", [0.05, 0.4, 0.8])
def test_default_mmps_single_call_is_exact_for_a_white_noise_prior(t):
    # With Σ = I (a = 0) every covariance MMPS may use, Tweedie's or a unit-prior one, is exact.
    model = gaussian_model(a=0.0, mean=MEAN, scale=SCALE)
    obs = masked_observation(values=(4.0, 0.5, 6.5), std=0.9)
    x = torch.randn(5, L, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    guide = make_guidance("mmps", obs, model)
    assert isinstance(guide, MMPSGuidance)
    got = guide(model, x, torch.tensor(t, dtype=torch.float64)).reshape(5, L).detach().numpy()

    mu, sigma, eps, m, h, y, y_hat, var_y = _closed_form(t, x, obs, a=0.0)
    v = sigma ** 2 / mu * m
    u = np.linalg.solve(np.diag(var_y) + h @ v @ h.T, (y - y_hat).T).T
    expected = eps - sigma * u @ h @ m
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("t", [0.05, 0.4, 0.8])
def test_sda_single_call_matches_its_formula(t):
    gamma = 0.02
    model = gaussian_model(mean=MEAN, scale=SCALE)
    obs = masked_observation(values=(4.0, 0.5, 6.5), std=0.9)
    x = torch.randn(5, L, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    guide = make_guidance("sda", obs, model, gamma=gamma)
    assert isinstance(guide, SDAGuidance)
    got = guide(model, x, torch.tensor(t, dtype=torch.float64)).reshape(5, L).detach().numpy()

    mu, sigma, eps, m, h, y, y_hat, var_y = _closed_form(t, x, obs)
    var = var_y + (sigma / mu) ** 2 * gamma * SCALE ** 2   # Σ_y + (σ²/μ²) γ diag(A_n A_nᵀ)
    expected = eps - sigma * ((y - y_hat) / var) @ h @ m
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_dps_single_call_matches_its_formula():
    t, zeta = 0.4, 0.7
    model = gaussian_model(mean=MEAN, scale=SCALE)
    obs = masked_observation(values=(4.0, 0.5, 6.5), std=0.9)
    x = torch.randn(5, L, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    guide = make_guidance("dps", obs, model, zeta=zeta)
    assert isinstance(guide, DPSGuidance)
    got = guide(model, x, torch.tensor(t, dtype=torch.float64)).reshape(5, L).detach().numpy()

    mu, sigma, eps, m, h, y, y_hat, var_y = _closed_form(t, x, obs)
    r = (y - y_hat) / np.sqrt(var_y)
    grad_norm = -((r / np.sqrt(var_y)) @ h @ m) / np.linalg.norm(r, axis=1, keepdims=True)   # ∇_x ‖r‖
    expected = eps + sigma * zeta * grad_norm
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_make_guidance_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown guidance"):
        make_guidance("kalman", masked_observation(), gaussian_model())


# ------------------------------------------------------------------------------------------
# the observation model in physical units
# ------------------------------------------------------------------------------------------
def _toy_model(state_shape, mean, scale):
    net = ResMLP(3, state_shape, width=8, depth=1)
    return LocalScoreModel(net, 1, state_shape, mean, scale)


def test_observation_model_mask_gain_and_units():
    n = 8
    mean = torch.linspace(-1.0, 2.0, n)
    scale = torch.linspace(0.5, 4.0, n)
    model = _toy_model((n,), mean, scale)
    mask = np.zeros((6, n), dtype=bool)
    mask[::2, 1::3] = True
    obs = Observation(mask, np.ones((6, n)), 0.5)
    om = ObservationModel(obs, model)
    expected_gain = (scale ** 2).expand(6, n)[torch.as_tensor(mask)]
    _close(om.gain, expected_gain)
    # A_n(x_n) = A(x_n · scale + mean): the network's units never leak to the user
    x_n = torch.randn(3, 6, n, generator=torch.Generator().manual_seed(0))
    _close(om(x_n), (x_n * scale + mean)[:, torch.as_tensor(mask)])
    _close(om.var_y, torch.full((int(mask.sum()),), 0.25))
    # the gain is diag(J Jᵀ) of x_n ↦ A_n(x_n)
    jac = torch.autograd.functional.jacobian(lambda v: om(v[None])[0], x_n[0])
    _close(om.gain, jac.reshape(jac.shape[0], -1).square().sum(1))


def test_observation_model_subsample_gain():
    n = 12
    scale = torch.linspace(0.5, 4.0, n)
    model = _toy_model((n,), torch.zeros(n), scale)
    obs = Observation(np.ones((4, 3), dtype=bool), np.zeros((4, 3)), 1.0, operator="subsample:4")
    om = ObservationModel(obs, model)
    _close(om.gain, (scale[::4] ** 2).expand(4, 3).reshape(-1))


@pytest.mark.parametrize("state_shape, factor", [((12,), 4), ((1, 8, 8), 2), ((2, 16, 16), 8)])
def test_observation_model_coarsen_gain(state_shape, factor):
    torch.manual_seed(0)
    scale = 0.5 + torch.rand(state_shape) * 3
    model = _toy_model(state_shape, torch.zeros(state_shape), scale)
    d = 1 if len(state_shape) == 1 else 2
    out_shape = state_shape[:-d] + tuple(n // factor for n in state_shape[-d:])
    obs = Observation(np.ones((4, *out_shape), dtype=bool), np.zeros((4, *out_shape)), 1.0,
                      operator=f"coarsen:{factor}")
    om = ObservationModel(obs, model)
    s2 = (scale ** 2).numpy()
    if d == 1:
        block_mean = s2.reshape(-1, factor).mean(1)
    else:
        c, h, w = state_shape
        block_mean = s2.reshape(c, h // factor, factor, w // factor, factor).mean((2, 4))
    expected = np.broadcast_to(block_mean / factor ** d, (4, *out_shape)).reshape(-1)
    # diag(J Jᵀ) by autograd, independent of both formulas
    x0 = torch.zeros(1, 4, *state_shape)
    jac = torch.autograd.functional.jacobian(lambda v: om(v)[0], x0)
    np.testing.assert_allclose(jac.reshape(jac.shape[0], -1).square().sum(1).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(om.gain.numpy(), expected, rtol=1e-5)


# ------------------------------------------------------------------------------------------
# conjugate gradient
# ------------------------------------------------------------------------------------------
def test_conjugate_gradient_solves_batch_of_spd_systems():
    gen = torch.Generator().manual_seed(0)
    batch, n = 16, 6
    q = torch.randn(batch, n, n, generator=gen, dtype=torch.float64)
    mats = q @ q.transpose(1, 2) + 0.5 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(batch, n, generator=gen, dtype=torch.float64)

    def matvec(v):
        return torch.einsum("bij,bj->bi", mats, v)

    u = conjugate_gradient(matvec, b, iterations=3 * n)
    _close(u, torch.linalg.solve(mats, b), rtol=1e-8, atol=1e-8)
    # n iterations suffice in exact arithmetic
    u_n = conjugate_gradient(matvec, b, iterations=n)
    assert (u_n - torch.linalg.solve(mats, b)).abs().max() < 1e-6
    # one iteration is the steepest-descent step, not the solution
    u1 = conjugate_gradient(matvec, b, iterations=1)
    assert (u1 - torch.linalg.solve(mats, b)).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------
# whole samplers against the exact posterior
# ------------------------------------------------------------------------------------------
N_SAMPLES = 2048


def _sample(guide, model, steps, corrections=0, seed=0, n=N_SAMPLES):
    sampler = Sampler(model, guide, steps=steps, corrections=corrections)
    x = sampler.sample((n, L, 1), generator=torch.Generator().manual_seed(seed))
    assert x.shape == (n, L, 1) and torch.isfinite(x).all()
    return x[..., 0].double().numpy()


def test_mmps_sampler_reproduces_the_kalman_smoother():
    model = gaussian_model()
    obs = masked_observation()
    mean, std = smoother(obs)
    n = 4096
    x = _sample(tweedie_mmps(obs, model), model, steps=128, n=n)
    # Monte-Carlo error of the mean is std/√N (≤ 0.01 here); allow 4 of them
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 4 * std / np.sqrt(n) + 0.01)
    # sampling error of the std ≈ 0.007, plus a small time-discretisation bias (≈ 0.02 at the far end)
    np.testing.assert_array_less(np.abs(x.std(0) - std), 0.04)


def test_sda_sampler_posterior_mean_is_close():
    model = gaussian_model()
    obs = masked_observation()
    mean, std = smoother(obs)
    x = _sample(make_guidance("sda", obs, model, gamma=0.1), model, steps=32, n=1024)
    assert np.abs(x.mean(0) - mean).max() < 0.25
    # observed states are pinned down: far below the prior std of 1
    assert (x.std(0)[OBSERVED] < 0.5).all()


def test_dps_sampler_runs_and_moves_toward_the_observations():
    model = gaussian_model()
    obs = masked_observation()
    x = _sample(make_guidance("dps", obs, model), model, steps=32, n=1024)
    y = obs.observed_values()
    prior_error = np.abs(y).sum()                     # the prior mean is 0
    assert np.abs(x.mean(0)[OBSERVED] - y).sum() < 0.5 * prior_error
    assert np.sign(x.mean(0)[OBSERVED]).tolist() == np.sign(y).tolist()


def test_unguided_sampler_draws_the_prior():
    model = gaussian_model()
    n = N_SAMPLES
    x = _sample(None, model, steps=64, n=n)
    assert np.abs(x.mean(0)).max() < 4 / np.sqrt(n)
    assert np.abs(x.std(0) - 1).max() < 0.08       # sampling error 0.016 plus a small step bias
    lag1 = (x[:, 1:] * x[:, :-1]).mean()
    assert abs(lag1 - A) < 0.05


def test_sampler_is_reproducible_from_a_seed_and_reports_steps():
    model = gaussian_model()
    guide = make_guidance("mmps", masked_observation(), model)
    seen = []
    a = Sampler(model, guide, steps=4, corrections=1).sample((8, L, 1), generator=torch.Generator().manual_seed(5),
                                                              callback=lambda s: seen.append((s.step, s.total)))
    b = Sampler(model, guide, steps=4, corrections=1).sample((8, L, 1), generator=torch.Generator().manual_seed(5))
    c = Sampler(model, guide, steps=4, corrections=1).sample((8, L, 1), generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


class _CountingSampler(Sampler):
    """Counts the (guided) network calls of a run."""
    calls = 0

    def eps(self, x, t):
        self.calls += 1
        return super().eps(x, t)


def test_final_corrections_replace_c_only_on_the_steps_that_end_below_the_span():
    model = gaussian_model()
    guide = make_guidance("sda", masked_observation(), model)
    runs = {}
    for final, span in ((None, 0.125), (1, 0.125), (3, 0.125), (3, 0.5), (0, 0.5)):
        sampler = _CountingSampler(model, guide, steps=8, corrections=1, final_corrections=final, final_span=span)
        x = sampler.sample((4, L, 1), generator=torch.Generator().manual_seed(2))
        assert sampler.calls == sampler.network_calls()
        runs[final, span] = (sampler.calls, x)
    # 8 steps end at s = 7/8 … 1/8, 0: only s = 0 is below 0.125 (s = 0.125 itself is not), four are below 0.5
    assert [runs[key][0] for key in ((None, 0.125), (3, 0.125), (3, 0.5), (0, 0.5))] == [16, 18, 24, 12]
    # final corrections equal to C are the plain sampler; others change the samples
    assert torch.equal(runs[None, 0.125][1], runs[1, 0.125][1])
    assert not torch.allclose(runs[None, 0.125][1], runs[3, 0.125][1])
    with pytest.raises(ValueError, match="final corrections"):
        Sampler(model, guide, final_corrections=-1)
    with pytest.raises(ValueError, match="final span"):
        Sampler(model, guide, final_span=1.5)


def test_final_corrections_keep_the_mmps_sampler_near_the_kalman_smoother():
    # The corrections target the same (smoothed) posterior, so the mean stays exact. Unadjusted
    # Langevin widens the posterior by O(τ): one correction on every step does it too (≈ +0.10
    # at τ = 0.25 here), four on the last steps alike (≈ +0.11); far off would be a wrong σ or target.
    model = gaussian_model()
    obs = masked_observation()
    mean, std = smoother(obs)
    n = 4096
    sampler = Sampler(model, tweedie_mmps(obs, model), steps=128, final_corrections=4)
    x = sampler.sample((n, L, 1), generator=torch.Generator().manual_seed(3))[..., 0].double().numpy()
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 4 * std / np.sqrt(n) + 0.01)
    np.testing.assert_array_less(np.abs(x.std(0) - std), 0.15)


def test_assimilate_reports_progress_in_physical_units_and_stops_on_request():
    from sda_gui.core.assimilation import Cancelled, assimilate
    from sda_gui.core.observation import ObservationError

    model = gaussian_model(mean=MEAN, scale=SCALE)
    obs = masked_observation(values=(4.0, 0.5, 6.5), std=0.9)
    seen = []
    x = assimilate(model, obs, 64, steps=6, corrections=1, guidance="mmps", seed=0,
                   progress=lambda step, total, est: seen.append((step, total, est)))
    assert x.shape == (64, L, 1) and x.dtype == torch.float32
    assert [s[:2] for s in seen] == [(i, 6) for i in range(1, 7)]
    # physical units: samples sit around the prior mean 2 with the prior scale 3, pulled to the data
    assert abs(float(x.mean()) - MEAN) < 3.0 and float(x[:, OBSERVED].mean()) > MEAN
    assert abs(float(seen[-1][2].mean()) - float(x.mean())) < 1.0
    calls = [0]

    def stop():
        calls[0] += 1
        return calls[0] > 3

    with pytest.raises(Cancelled):
        assimilate(model, obs, 8, steps=6, corrections=1, should_stop=stop)
    assert calls[0] == 4                                  # checked before every network call
    short = Observation(np.ones((3, 1), dtype=bool), np.ones((3, 1)), 0.5)
    with pytest.raises(ObservationError, match="2k\\+1"):
        assimilate(gaussian_model(length=5), short, 4, steps=2)


def test_assimilate_reports_a_diverged_sampler():
    from sda_gui.core.assimilation import SamplingDiverged, assimilate

    class Broken(torch.nn.Module):
        def forward(self, x, t):
            return torch.full_like(x, float("nan"))

    model = LocalScoreModel(Broken(), 1, (1,), torch.zeros(1), torch.ones(1))
    obs = Observation(np.ones((5, 1), dtype=bool), np.zeros((5, 1)), 1.0)
    with pytest.raises(SamplingDiverged, match="diverged"):
        assimilate(model, obs, 2, steps=2, corrections=0)


def test_bounded_estimate_keeps_few_step_runs_finite_and_leaves_gaussians_alone():
    class Sloppy(torch.nn.Module):  # ε off by half: x̂ = (x − σ ε)/μ is wild at high noise
        def forward(self, x, t):
            return 0.5 * x

    model = LocalScoreModel(Sloppy(), 1, (1,), torch.zeros(1), torch.ones(1))
    gen = torch.Generator().manual_seed(0)
    raw = Sampler(model, None, steps=4, clip=None).sample((64, 5, 1), generator=gen)
    bounded = Sampler(model, None, steps=4).sample((64, 5, 1), generator=gen)
    assert raw.abs().max() > 100 and bounded.abs().max() <= 10 + 1e-4
    exact = gaussian_model()
    a = Sampler(exact, None, steps=16, clip=None).sample((256, L, 1), generator=torch.Generator().manual_seed(1))
    b = Sampler(exact, None, steps=16).sample((256, L, 1), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, b, atol=1e-5)
