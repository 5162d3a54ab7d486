"""Ensemble Kalman filters and smoothers behind the method interface (EnKF, LETKF, EnKS, iEnKS).

Exactness checks on a linear-Gaussian chain against ``baselines.kalman_smoother``
(the Kalman filter at state ``i`` is the smoother of the observations up to ``i``),
localisation limits, operators on a small field, and the interface contract
(shapes, seeds, progress, cancel, errors).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sda_gui.core.baselines import kalman_smoother
from sda_gui.core.methods import Cancelled, MethodError, method_names, run_method
from sda_gui.core.methods.local import _Grid, _obs_coords, gaspari_cohn, periodic_distance
from sda_gui.core.observation import Observation, parse_operator, synthesize
from sda_gui.core.systems import Lorenz96
from sda_gui.core.systems.base import DynamicalSystem

KALMAN = ("enkf", "letkf", "enks", "ienks")

# small tensors on a shared 2-core machine: one intra-op thread is several times faster
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LinearChain(DynamicalSystem):
    """``x_{i+1} = F x_i + w``, ``w ~ N(0, Q)``, ``x_0 ~ N(m0, P0)``; no burn-in."""

    name = "linear-test"

    def __init__(self, F, Q, m0, P0, field_shape=None):
        self.F, self.Q, self.m0, self.P0 = (torch.as_tensor(a, dtype=torch.float64) for a in (F, Q, m0, P0))
        self.shape = tuple(field_shape) if field_shape else (self.F.shape[0],)

    @property
    def state_shape(self):
        return self.shape

    @property
    def variable_names(self):
        return [f"x{i}" for i in range(self.shape[0])]

    @property
    def params(self):
        return {}

    def normalization(self):
        return torch.zeros(self.shape), torch.ones(self.shape)

    def prior(self, n, generator, device="cpu"):
        z = torch.randn((n, self.F.shape[0]), generator=generator, device=device, dtype=torch.float64)
        x = self.m0.to(device) + z @ torch.linalg.cholesky(self.P0).T.to(device)
        return x.reshape(n, *self.shape)

    def transition(self, x, generator=None):
        flat = x.reshape(x.shape[0], -1)
        out = flat @ self.F.T.to(x)
        if generator is not None and bool(self.Q.abs().max() > 0):
            z = torch.randn(flat.shape, generator=generator, device=x.device, dtype=x.dtype)
            out = out + z @ torch.linalg.cholesky(self.Q).T.to(x)
        return out.reshape(x.shape)


def _chain(noise=0.1):
    F = np.array([[0.9, 0.3, 0.0], [-0.3, 0.9, 0.1], [0.0, 0.0, 0.8]])
    return LinearChain(F, noise * np.eye(3), np.array([1.0, -1.0, 0.5]), np.diag([2.0, 1.5, 1.0]))


def _chain_problem(system, length=8, seed=0):
    truth = system.simulate(1, length, seed=seed)[0].numpy()
    mask = np.zeros((length, 3), dtype=bool)
    mask[::2, 0] = True      # x0 every second state
    mask[1::3, 2] = True     # x2 at states 1, 4, 7
    mask[5] = True           # everything once
    return synthesize(truth, mask, 0.5, seed=seed + 1)


def _moments(members):
    m = members.double().numpy()
    return m.mean(0), m.var(0, ddof=1)


def _kalman(system, obs, upto=None):
    sub = obs if upto is None else Observation(obs.mask[: upto + 1], obs.values[: upto + 1], obs.std)
    ms, ps = kalman_smoother(system.F.numpy(), system.Q.numpy(), system.m0.numpy(), system.P0.numpy(), sub)
    return ms, np.stack([np.diag(p) for p in ps])


def _l96_problem(length=10, seed=0, every=1):
    system = Lorenz96(burn_in=64)
    truth = system.simulate(1, length, seed=seed)[0].numpy()
    mask = np.zeros(truth.shape, dtype=bool)
    mask[::every, ::2] = True
    return system, truth, synthesize(truth, mask, 1.0, seed=seed)


def test_methods_are_registered():
    assert set(KALMAN) <= set(method_names())


@pytest.mark.parametrize("name,settings", [("enkf", {}), ("enkf", {"variant": "perturbed"}), ("letkf", {}),
                                           ("enks", {}), ("ienks", {}), ("ienks", {"lag": 2})])
def test_shapes_determinism_and_progress(name, settings):
    system, truth, obs = _l96_problem()
    calls = []
    a = run_method(name, system, obs, 6, settings, seed=3, progress=lambda d, t, e: calls.append((d, t)))
    b = run_method(name, system, obs, 6, settings, seed=3)
    c = run_method(name, system, obs, 6, settings, seed=4)
    assert a.members.shape == (6, 10, 40) and a.members.dtype == torch.float32
    assert torch.equal(a.members, b.members)
    assert not torch.equal(a.members, c.members)
    total = 10 + (len(obs.observed_states()) if name == "ienks" else 0)
    assert [d for d, _ in calls] == list(range(1, total + 1)) and {t for _, t in calls} == {total}
    assert a.method == name and a.settings and "seconds" in a.diagnostics


@pytest.mark.parametrize("name", KALMAN)
def test_cancel_within_one_step(name):
    system, _, obs = _l96_problem()
    calls = []

    def progress(done, total, estimate):
        calls.append(done)

    with pytest.raises(Cancelled):
        run_method(name, system, obs, 5, None, progress=progress, should_stop=lambda: len(calls) >= 3)
    assert len(calls) == 3


@pytest.mark.parametrize("name", KALMAN)
def test_errors_are_one_line(name):
    system, _, obs = _l96_problem(length=4)
    with pytest.raises(MethodError, match="at least 2 members"):
        run_method(name, system, obs, 1)
    with pytest.raises(MethodError, match="inflation"):
        run_method(name, system, obs, 4, {"inflation": 0.0})
    with pytest.raises(MethodError, match="variant"):
        run_method("enkf", system, obs, 4, {"variant": "sideways"})


@pytest.mark.parametrize("variant", ["sqrt", "perturbed"])
def test_enkf_matches_the_kalman_filter(variant):
    system = _chain()
    obs = _chain_problem(system)
    members = run_method("enkf", system, obs, 4000, {"variant": variant, "inflation": 1.0}, seed=1).members
    mean, var = _moments(members)
    for i in range(obs.length):
        kf_mean, kf_var = (a[-1] for a in _kalman(system, obs, upto=i))
        assert np.abs(mean[i] - kf_mean).max() < 0.08, (i, mean[i], kf_mean)
        assert np.abs(var[i] / kf_var - 1).max() < 0.12, (i, var[i], kf_var)


def test_enks_matches_the_rts_smoother():
    system = _chain()
    obs = _chain_problem(system)
    mean, var = _moments(run_method("enks", system, obs, 4000, {"inflation": 1.0}, seed=2).members)
    rts_mean, rts_var = _kalman(system, obs)
    assert np.abs(mean - rts_mean).max() < 0.08
    assert np.abs(var / rts_var - 1).max() < 0.12
    # and it is a smoother: the early states know the later observations
    filt_var = _moments(run_method("enkf", system, obs, 4000, {"inflation": 1.0}, seed=2).members)[1]
    assert (var[:-1].sum(-1) < filt_var[:-1].sum(-1)).all()


@pytest.mark.parametrize("lag", [0, 2])
def test_ienks_on_a_deterministic_linear_chain_is_the_rts_smoother(lag):
    # strong constraint is exact when the model is (Q = 0), and one Gauss–Newton step when it is linear
    system = _chain(noise=0.0)
    obs = _chain_problem(system)
    result = run_method("ienks", system, obs, 3000, {"inflation": 1.0, "iterations": 3, "lag": lag}, seed=3)
    mean, var = _moments(result.members)
    assert result.diagnostics["iterations_max"] <= 2  # the second step only confirms convergence
    times = list(obs.observed_states())
    for i in range(obs.length):
        # a state between observed states t_{c-1} ≤ i < t_c is smoothed with the observations up to t_{c+lag-1}
        c = sum(t <= i for t in times)
        last = len(times) - 1 if lag == 0 else min(c + lag - 1, len(times) - 1)
        ks_mean, ks_var = (a[i] for a in _kalman(system, obs, upto=times[last]))
        assert np.abs(mean[i] - ks_mean).max() < 0.08, (i, mean[i], ks_mean)
        assert np.abs(var[i] / ks_var - 1).max() < 0.12, (i, var[i], ks_var)


def test_huge_localisation_radius_is_the_global_etkf():
    system, _, obs = _l96_problem(length=12)
    etkf = run_method("enkf", system, obs, 10, {"inflation": 1.03}, seed=5).members
    wide = run_method("letkf", system, obs, 10, {"inflation": 1.03, "localization": 1e7}, seed=5)
    none = run_method("letkf", system, obs, 10, {"inflation": 1.03, "localization": 0.0}, seed=5).members
    assert torch.allclose(wide.members, etkf, atol=1e-4)
    assert torch.allclose(none, etkf, atol=1e-5)
    assert wide.diagnostics["local_observations"] == 20.0
    local = run_method("letkf", system, obs, 10, {"inflation": 1.03, "localization": 3.0}, seed=5)
    assert not torch.allclose(local.members, etkf, atol=1e-2)
    assert local.diagnostics["local_observations"] < 20.0


def test_lorenz63_letkf_is_global():
    from sda_gui.core.systems import Lorenz63

    system = Lorenz63(burn_in=32)
    truth = system.simulate(1, 6, seed=0)[0].numpy()
    obs = synthesize(truth, np.ones(truth.shape, bool), 1.0, seed=0)
    a = run_method("letkf", system, obs, 8, {"localization": 2.0}, seed=1)
    b = run_method("enkf", system, obs, 8, {"inflation": a.settings["inflation"]}, seed=1)
    assert a.diagnostics["localization"] == "none"
    assert torch.allclose(a.members, b.members, atol=1e-5)


def test_gaspari_cohn_and_distances():
    d = torch.linspace(0, 10, 1001, dtype=torch.float64)
    rho = gaspari_cohn(d, 2.0)
    assert rho[0] == 1.0 and (rho[d >= 4.0] == 0).all()
    assert (rho.diff() <= 1e-12).all()  # non-increasing
    near = gaspari_cohn(torch.tensor([2.0 - 1e-9, 2.0 + 1e-9], dtype=torch.float64), 2.0)
    assert abs(float(near[0] - near[1])) < 1e-6  # continuous where the pieces meet
    ring = periodic_distance(torch.tensor([[0.0]]), torch.tensor([[1.0], [39.0], [20.0]]), (40,))
    assert ring.tolist() == [[1.0, 1.0, 20.0]]
    plane = periodic_distance(torch.tensor([[0.0, 0.0]]), torch.tensor([[7.0, 7.0]]), (8, 8))
    assert torch.allclose(plane, torch.tensor([[2 ** 0.5]], dtype=plane.dtype))


def test_observed_entries_sit_at_block_centres_and_sample_points():
    grid = _Grid.of((2, 8, 8), "cpu")
    positions = np.array([[0, 0, 0], [1, 3, 1]])

    def coords(spec):
        return _obs_coords(positions, parse_operator(spec), grid, (2, 8, 8)).tolist()

    assert coords("coarsen:2") == [[0.5, 0.5], [6.5, 2.5]]
    assert coords("subsample:2") == [[0.0, 0.0], [6.0, 2.0]]
    assert coords("coarsen:2+saturate") == coords("coarsen:2")          # saturation keeps the grid
    assert coords("subsample:2+coarsen:2") == [[1.0, 1.0], [13.0, 5.0]]  # 2·(2i + ½)
    assert _Grid.of((3,), "cpu") is None and _Grid.of((40,), "cpu").points == 40


def _field_problem(length=6, seed=0):
    # a linear, damped advection of two channels on a periodic 8 × 8 grid, observed coarsened 2×2
    c, h, w = 2, 8, 8
    d = c * h * w
    shift = np.roll(np.eye(h * w).reshape(h, w, h, w), 1, axis=1).reshape(h * w, h * w)
    F = np.kron(np.eye(c), 0.95 * shift)
    system = LinearChain(F, 0.05 * np.eye(d), np.zeros(d), np.eye(d), field_shape=(c, h, w))
    truth = system.simulate(1, length, seed=seed)[0].numpy()
    mask = np.ones((length, c, h // 2, w // 2), dtype=bool)
    return system, truth, synthesize(truth, mask, 0.3, seed=seed, operator="coarsen:2")


@pytest.mark.parametrize("name,settings", [("enkf", {}), ("letkf", {"localization": 3.0}), ("enks", {}),
                                           ("ienks", {"lag": 1})])
def test_field_through_a_coarsen_operator(name, settings):
    system, truth, obs = _field_problem()
    result = run_method(name, system, obs, 24, {"inflation": 1.0, **settings}, seed=0)
    assert result.members.shape == (24, 6, 2, 8, 8)
    mean = result.members.double().numpy().mean(0)
    # the coarse observations (σ = 0.3) pin the block means, whose prior std is 0.5
    err = torch.as_tensor(mean - truth)
    coarse = parse_operator("coarsen:2")
    assert float(coarse(err[1:], 3).square().mean().sqrt()) < 0.3
    assert np.isfinite(mean).all()


def test_field_letkf_huge_radius_is_the_global_etkf():
    system, _, obs = _field_problem()
    etkf = run_method("enkf", system, obs, 12, {"inflation": 1.0}, seed=1).members
    wide = run_method("letkf", system, obs, 12, {"inflation": 1.0, "localization": 1e7}, seed=1).members
    assert torch.allclose(wide, etkf, atol=1e-4)
