"""Reference posteriors: the RTS smoother against exact Gaussian conditioning, and the
bootstrap particle filter against the RTS smoother on a linear-Gaussian chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sda_gui.core import metrics
from sda_gui.core.baselines import bootstrap_particle_filter, kalman_smoother, systematic_resample
from sda_gui.core.observation import Observation
from sda_gui.core.systems import make_system


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _direct_posterior(F, Q, m0, P0, obs):
    """Posterior means and marginal covariances by conditioning the joint Gaussian of the chain."""
    length, d = obs.mask.shape
    means, covs = [np.asarray(m0, float)], [np.asarray(P0, float)]
    for _ in range(length - 1):
        means.append(F @ means[-1])
        covs.append(F @ covs[-1] @ F.T + Q)
    joint = np.zeros((length * d, length * d))
    for i in range(length):
        for j in range(i + 1):
            block = np.linalg.matrix_power(F, i - j) @ covs[j]          # Cov(x_i, x_j), i ≥ j
            joint[i * d:(i + 1) * d, j * d:(j + 1) * d] = block
            joint[j * d:(j + 1) * d, i * d:(i + 1) * d] = block.T
    mean = np.concatenate(means)
    sel = obs.mask.reshape(-1)
    H = np.eye(length * d)[sel]
    R = np.diag(obs.std_array().reshape(-1)[sel] ** 2)
    S = H @ joint @ H.T + R
    K = joint @ H.T @ np.linalg.inv(S)
    post_mean = mean + K @ (obs.values.reshape(-1)[sel] - H @ mean)
    post_cov = joint - K @ H @ joint
    marg = np.stack([post_cov[i * d:(i + 1) * d, i * d:(i + 1) * d] for i in range(length)])
    return post_mean.reshape(length, d), marg


def test_rts_smoother_equals_direct_gaussian_conditioning():
    rng = np.random.default_rng(0)
    length, d = 7, 2
    F = np.array([[0.9, 0.2], [-0.3, 0.7]])
    Q = np.array([[0.3, 0.1], [0.1, 0.2]])
    m0 = np.array([1.0, -0.5])
    P0 = np.array([[1.0, 0.3], [0.3, 0.8]])
    mask = np.zeros((length, d), dtype=bool)
    mask[1, 0] = mask[3] = mask[6, 1] = True                        # partial and full observations
    values = np.where(mask, rng.normal(size=(length, d)), np.nan)
    std = rng.uniform(0.2, 0.8, size=(length, d))                    # per-entry std
    obs = Observation(mask, values, std)

    mean, cov = kalman_smoother(F, Q, m0, P0, obs)
    ref_mean, ref_cov = _direct_posterior(F, Q, m0, P0, obs)
    assert mean.shape == (length, d) and cov.shape == (length, d, d)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-8, rtol=0)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-8, rtol=0)


def test_rts_smoother_without_observations_is_the_prior():
    a = 0.7
    obs = Observation(np.zeros((5, 1), dtype=bool), np.zeros((5, 1)), 1.0)
    mean, cov = kalman_smoother([[a]], [[1 - a * a]], [0.5], [[1.0]], obs)
    np.testing.assert_allclose(mean[:, 0], 0.5 * a ** np.arange(5), atol=1e-12)
    np.testing.assert_allclose(cov[:, 0, 0], 1.0, atol=1e-12)


A = 0.8
L = 10


def _initial(n, gen):
    return torch.randn(n, 1, generator=gen, dtype=torch.float64)


def _transition(x, gen):
    return A * x + np.sqrt(1 - A * A) * torch.randn(x.shape, generator=gen, dtype=x.dtype)


@pytest.mark.parametrize("observed", [[2, 5, 9], list(range(L))], ids=["sparse", "every-state"])
def test_particle_filter_matches_the_kalman_smoother(observed):
    mask = np.zeros((L, 1), dtype=bool)
    mask[observed] = True
    values = np.zeros((L, 1))
    values[observed, 0] = np.linspace(-1.0, 1.5, len(observed))
    obs = Observation(mask, values, 0.5)
    mean, cov = kalman_smoother([[A]], [[1 - A * A]], [0.0], [[1.0]], obs)
    mean, std = mean[:, 0], np.sqrt(cov[:, 0, 0])

    x = bootstrap_particle_filter(_initial, _transition, obs, n_particles=8192, n_samples=8192, seed=0)
    assert x.shape == (8192, L, 1) and x.dtype == torch.float32
    x = x[..., 0].double().numpy()
    # the last state is observed: its smoothing marginal is the filter's, with no path degeneracy
    assert abs(x[:, -1].mean() - mean[-1]) < 0.04
    assert abs(x[:, -1].std() - std[-1]) < 0.03
    # earlier states share fewer distinct ancestors after resampling: looser
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 0.1)
    np.testing.assert_array_less(np.abs(x.std(0) - std), 0.06)


def test_particle_filter_is_reproducible_and_seeded():
    obs = Observation(np.ones((4, 1), dtype=bool), np.ones((4, 1)), 0.5)
    a = bootstrap_particle_filter(_initial, _transition, obs, n_particles=256, n_samples=32, seed=3)
    b = bootstrap_particle_filter(_initial, _transition, obs, n_particles=256, n_samples=32, seed=3)
    c = bootstrap_particle_filter(_initial, _transition, obs, n_particles=256, n_samples=32, seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_systematic_resample_keeps_proportions():
    gen = torch.Generator().manual_seed(0)
    w = torch.tensor([0.5, 0.25, 0.0, 0.25], dtype=torch.float64)
    idx = systematic_resample(w, gen)
    counts = torch.bincount(idx, minlength=4)
    assert counts.tolist() == [2, 1, 0, 1]              # systematic: exact for weights in multiples of 1/n
    big = systematic_resample(torch.full((1000,), 1e-3, dtype=torch.float64), gen)
    assert sorted(big.tolist()) == list(range(1000))


# ------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------



def _points(n=40, shape=(5, 3), seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape))


def test_w1_of_a_set_with_itself_is_zero_and_permutation_invariant():
    a = _points()
    assert metrics.w1(a, a) == pytest.approx(0.0, abs=1e-6)    # √ of rounding in ‖a‖² + ‖b‖² − 2ab
    perm = np.random.default_rng(1).permutation(len(a))
    assert metrics.w1(a, a[perm]) == pytest.approx(0.0, abs=1e-6)
    assert metrics.w1(torch.as_tensor(a), torch.as_tensor(a[perm])) == pytest.approx(0.0, abs=1e-6)


def test_w1_of_a_shifted_set_is_the_shift_norm():
    a = _points()
    shift = np.random.default_rng(2).normal(size=(5, 3))
    b = a[np.random.default_rng(3).permutation(len(a))] + shift
    assert metrics.w1(a, b) == pytest.approx(np.linalg.norm(shift), rel=1e-9)


def test_w1_is_symmetric_and_exact_in_one_dimension():
    a, b = _points(30, (1,), 4), 0.5 * _points(30, (1,), 5) + 1.0
    assert metrics.w1(a, b) == pytest.approx(metrics.w1(b, a), rel=1e-12)
    # 1-D optimal transport between equal-size sets matches sorted points
    expected = np.abs(np.sort(a[:, 0]) - np.sort(b[:, 0])).mean()
    assert metrics.w1(a, b) == pytest.approx(expected, rel=1e-9)
    assert metrics.w1(a, b) > 0.5


def test_w1_handles_unequal_sizes():
    p, q = np.array([1.0, 2.0, 2.0]), np.array([-1.0, 0.0, 4.0])
    a = np.broadcast_to(p, (10, 3))
    b = np.broadcast_to(q, (25, 3))                     # every point of each set is the same
    assert metrics.w1(a, b) == pytest.approx(np.linalg.norm(p - q), rel=1e-9)
    assert metrics.w1(b, a) == pytest.approx(np.linalg.norm(p - q), rel=1e-9)
    # a set against a larger set containing it twice: a subsample, so W1 is small but defined
    c = _points(20, (2,), 6)
    assert np.isfinite(metrics.w1(c, np.concatenate([c, c])))


def test_rmse_and_spread_exact():
    truth = np.random.default_rng(0).normal(size=(6, 3))
    d = 0.3
    samples = np.stack([truth + d, truth - d, truth + d, truth - d])
    assert metrics.rmse(samples, truth) == pytest.approx(0.0, abs=1e-12)
    assert metrics.rmse(samples + 0.7, truth) == pytest.approx(0.7, rel=1e-12)
    # unbiased variance over 4 samples at ±d: 4 d² / 3
    assert metrics.spread(samples) == pytest.approx(np.sqrt(4 * d * d / 3), rel=1e-12)
    assert metrics.spread(samples[:1]) == 0.0
    assert metrics.spread(torch.as_tensor(samples)) == pytest.approx(metrics.spread(samples))


def test_residual_std_exact_and_statistical():
    from sda_gui.core.observation import synthesize

    rng = np.random.default_rng(0)
    truth = rng.normal(size=(8, 3))
    mask = np.zeros((8, 3), dtype=bool)
    mask[::2, 0] = mask[1::3, 2] = True
    sigma = 0.4
    signs = np.where(rng.random(mask.sum()) < 0.5, -1.0, 1.0)
    values = np.zeros((8, 3))
    values[mask] = truth[mask] + sigma * signs               # residuals of exactly ±σ
    obs = Observation(mask, values, sigma)
    assert metrics.residual_std(truth[None], obs) == pytest.approx(sigma, rel=1e-12)
    assert metrics.residual_std(np.stack([truth, truth]), obs) == pytest.approx(sigma, rel=1e-12)

    # samples = truth exactly, observations = truth + N(0, σ²): the residual std is σ
    big = rng.normal(size=(200, 4))
    obs2 = synthesize(big, np.ones((200, 4), dtype=bool), sigma, seed=1)
    assert metrics.residual_std(big[None], obs2) == pytest.approx(sigma, rel=0.05)

    # through an operator: a coarse observation of a 1-D state
    field = rng.normal(size=(3, 8))
    coarse = field.reshape(3, 4, 2).mean(-1)
    obs3 = Observation(np.ones((3, 4), dtype=bool), coarse + sigma, sigma, operator="coarsen:2")
    assert metrics.residual_std(field[None], obs3) == pytest.approx(sigma, rel=1e-6)


def test_physical_residual_of_true_trajectories_is_the_transition_noise():
    system = make_system("lorenz63", burn_in=64)
    x = system.simulate(32, 48, seed=0)
    expected = system.transition_std()
    assert expected == pytest.approx(np.sqrt(0.025))
    assert metrics.physical_residual(x, system) == pytest.approx(expected, rel=0.05)
    quiet = make_system("lorenz63", burn_in=64, noise=0.0)
    assert metrics.physical_residual(quiet.simulate(4, 16, seed=0), quiet) < 1e-4
    # a shuffled trajectory is physically wrong
    assert metrics.physical_residual(x[:, torch.randperm(48)], system) > 10 * expected


def test_summary_collects_the_metrics():
    truth = np.zeros((5, 3))
    obs = Observation(np.ones((5, 3), dtype=bool), np.full((5, 3), 0.5), 0.5)
    out = metrics.summary(np.stack([truth + 0.1, truth - 0.1]), truth=truth, observation=obs)
    assert set(out) == {"spread", "rmse", "residual_std", "obs_std"}
    assert out["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert out["obs_std"] == pytest.approx(0.5)
