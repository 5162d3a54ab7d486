"""Strong-constraint 4D-Var and its EDA (core/methods/variational.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sda_gui.core import calibration as cal
from sda_gui.core.baselines import kalman_smoother
from sda_gui.core.methods import Cancelled, MethodError, method_names, run_method
from sda_gui.core.methods.common import ObservedStates
from sda_gui.core.methods.variational import Background, FourDVarCost, minimise
from sda_gui.core.observation import Observation, every_nth_state_mask, synthesize
from sda_gui.core.systems import Lorenz96, make_system
from sda_gui.core.systems.base import DynamicalSystem

pytestmark = pytest.mark.usefixtures("one_torch_thread")

F = np.array([[0.9, 0.3], [-0.2, 0.95]])
M0 = np.array([1.0, -0.5])
P0 = np.array([[2.0, 0.6], [0.6, 1.0]])


class LinearChain(DynamicalSystem):
    """``x_{i+1} = F x_i`` with ``x_1 ~ N(M0, P0)``; a non-trivial normalisation."""

    name = "linear-chain"
    state_shape = (2,)
    variable_names = ["a", "b"]
    params = {}

    def normalization(self):
        return torch.tensor([0.5, 0.0]), torch.tensor([2.0, 0.5])

    def prior(self, n, generator, device="cpu"):
        z = torch.randn((n, 2), generator=generator, device=device, dtype=torch.float64)
        return torch.as_tensor(M0) + z @ torch.as_tensor(np.linalg.cholesky(P0)).T

    def transition(self, x, generator=None):
        return x @ torch.as_tensor(F, dtype=x.dtype).T


class ShiftField(DynamicalSystem):
    """A field ``(1, 4, 4)`` that moves one cell along its last axis per state."""

    name = "shift-field"
    state_shape = (1, 4, 4)
    variable_names = ["q"]
    params = {}

    def normalization(self):
        return torch.zeros(1, 1, 1), torch.ones(1, 1, 1)

    def prior(self, n, generator, device="cpu"):
        return torch.randn((n, 1, 4, 4), generator=generator, device=device)

    def transition(self, x, generator=None):
        return torch.roll(x, 1, -1)


def _linear_problem():
    length = 6
    mask = np.zeros((length, 2), bool)
    mask[1, 0] = mask[3, 1] = mask[5, :] = True
    values = np.where(mask, np.random.default_rng(0).normal(size=mask.shape), 0.0)
    return Observation(mask, values, std=np.where(mask, 0.5, 1.0))


def _exact_cost(system, obs):
    mean, scale = (v.double().numpy() for v in system.normalization())
    chol = np.linalg.cholesky(P0 / np.outer(scale, scale))
    background = Background(torch.as_tensor((M0 - mean) / scale), torch.as_tensor(chol))
    observed = ObservedStates(obs, 1, torch.device("cpu"))
    ys = {i: observed.y(i)[None] for i in observed.indices}
    return FourDVarCost(system, observed, background, background.mean[None].clone(), ys), chol, scale


def test_gradient_and_minimum_match_the_linear_gaussian_solution():
    system, obs = LinearChain(), _linear_problem()
    cost, chol, scale = _exact_cost(system, obs)
    observed = cost.obs.indices

    # autograd gradient against the adjoint written out: v + (S L)ᵀ Σ_i Fⁱᵀ Hᵢᵀ Rᵢ⁻¹ (Hᵢ Fⁱ x₁ − yᵢ)
    v = torch.tensor([[0.3, -0.7]], dtype=torch.float64, requires_grad=True)
    cost(v, observed).sum().backward()
    x1 = cost.initial_state(v.detach())[0].numpy()
    adjoint = np.zeros(2)
    std = obs.std_array()
    for i in observed:
        h = np.eye(2)[obs.mask[i]]
        fi = np.linalg.matrix_power(F, i)
        r = (h @ fi @ x1 - obs.values[i][obs.mask[i]]) / std[i][obs.mask[i]] ** 2
        adjoint += fi.T @ h.T @ r
    expected = v.detach()[0].numpy() + (np.diag(scale) @ chol).T @ adjoint
    assert np.allclose(v.grad[0].numpy(), expected, rtol=1e-10, atol=1e-12)

    # the minimiser is the RTS smoother's mean (no transition noise: the strong constraint is exact),
    # by either optimiser
    means, _ = kalman_smoother(F, np.zeros((2, 2)), M0, P0, obs)
    for optimizer in ("batched", "torch"):
        v = torch.zeros((1, 2), dtype=torch.float64)
        counts = minimise(cost, v, observed, iterations=20, optimizer=optimizer)
        assert counts["evaluations"] > 1
        trajectory = cost.trajectory(v, obs.length)[0].numpy()
        assert np.allclose(trajectory, means, atol=1e-7), optimizer


def test_the_batched_optimiser_solves_each_member_independently():
    # two members with observations 40× apart: each lands on its own smoother mean
    system, obs = LinearChain(), _linear_problem()
    far = Observation(obs.mask, 40.0 * obs.values, obs.std)
    cost, _, _ = _exact_cost(system, obs)
    cost.backgrounds = cost.backgrounds.expand(2, -1).clone()
    cost.ys = {i: torch.cat([y, 40.0 * y]) for i, y in cost.ys.items()}
    v = torch.zeros((2, 2), dtype=torch.float64)
    minimise(cost, v, cost.obs.indices, iterations=20)
    trajectory = cost.trajectory(v, obs.length).numpy()
    for k, problem in enumerate((obs, far)):
        means, _ = kalman_smoother(F, np.zeros((2, 2)), M0, P0, problem)
        assert np.allclose(trajectory[k], means, atol=1e-6), k


def test_eda_samples_the_linear_gaussian_posterior():
    system, obs = LinearChain(), _linear_problem()
    means, covs = kalman_smoother(F, np.zeros((2, 2)), M0, P0, obs)
    sd = np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
    n = 400
    result = run_method("4dvar", system, obs, n, {"background": 20000}, seed=1)
    x = result.members.double().numpy()
    assert result.diagnostics["eda"] and result.diagnostics["background_covariance"] == "full"
    assert np.all(np.abs(x.mean(0) - means) < 4 * sd / np.sqrt(n))
    assert np.allclose(x.std(0, ddof=1), sd, rtol=0.15)
    # a single unperturbed 4D-Var lands on the smoother's mean (up to B's sampling error)
    single = run_method("4dvar", system, obs, 1, {"background": 20000}, seed=1)
    assert np.allclose(single.members[0].double().numpy(), means, atol=0.05)


def test_dense_lorenz63_recovers_the_truth_better_than_the_climatology():
    system = make_system("lorenz63")
    length = 16
    truth = system.simulate(1, length, seed=5)[0].double().numpy()
    obs = synthesize(truth, every_nth_state_mask(length, (3,), 2), 1.0, seed=6)
    result = run_method("4dvar", system, obs, 8, {"iterations": 5, "stages": 1}, seed=0)
    climatology = system.initial_states(8, torch.Generator().manual_seed(0)).double()
    clim_rmse = cal.rmse_per_state(climatology[:, None].expand(8, length, 3), truth)
    rmse = cal.rmse_per_state(result.members, truth)
    assert rmse < 1.0 and rmse < 0.2 * clim_rmse
    assert cal.spread_per_state(result.members) > 0.05  # EDA members differ
    assert result.diagnostics["cost_per_observation"] < 4


def test_shapes_progress_and_determinism():
    system = Lorenz96(n=8)
    length = 6
    truth = system.simulate(1, length, seed=2)[0].numpy()
    mask = np.zeros((length, 8), bool)
    mask[:, ::2] = True
    obs = synthesize(truth, mask, 1.0, seed=3)
    calls = []
    settings = {"iterations": 3, "stages": 2}
    result = run_method("4dvar", system, obs, 3, settings, seed=4,
                        progress=lambda done, total, est: calls.append((done, total, None if est is None else est.shape)))
    assert result.members.shape == (3, length, 8) and result.members.dtype == torch.float32
    assert result.method == "4dvar" and result.settings["stages"] == 2
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[-1] == calls[-1][1] == 6
    assert all(shape in (None, (3, length, 8)) for _, _, shape in calls)
    again = run_method("4dvar", system, obs, 3, settings, seed=4)
    assert torch.equal(result.members, again.members)
    # without EDA every member is the one analysis
    single = run_method("4dvar", system, obs, 3, dict(settings, eda=False), seed=4)
    assert not single.diagnostics["eda"] and torch.equal(single.members[0], single.members[2])
    assert run_method("4dvar", system, obs, 1, settings, seed=4).members.shape == (1, length, 8)
    # restarts keep each member's lowest cost: never worse than one start
    best = run_method("4dvar", system, obs, 3, dict(settings, restarts=3), seed=4)
    assert best.members.shape == (3, length, 8)


def test_a_field_through_an_operator_uses_a_diagonal_background():
    system = ShiftField()
    length = 4
    truth = system.simulate(1, length, seed=1)[0].numpy()
    obs = synthesize(truth, np.ones((length, 1, 2, 2), bool), 0.1, seed=2, operator="coarsen:2")
    result = run_method("4dvar", system, obs, 4, {"iterations": 5, "background": 64}, seed=0)
    assert result.members.shape == (4, length, 1, 4, 4)
    assert result.diagnostics["background_covariance"] == "diagonal"
    # the coarse observations are fitted far better than by climatology draws
    fitted = obs.apply(result.members.double(), 3) - torch.as_tensor(obs.observed_values())
    assert float(fitted.square().mean().sqrt()) < 0.3


def test_cancel_and_settings():
    assert "4dvar" in method_names()
    system = make_system("lorenz63")
    truth = system.simulate(1, 16, seed=5)[0].numpy()
    obs = synthesize(truth, every_nth_state_mask(16, (3,), 4), 1.0, seed=6)
    calls = []
    with pytest.raises(Cancelled):
        run_method("4dvar", system, obs, 4, {"iterations": 50}, progress=lambda *a: calls.append(a),
                   should_stop=lambda: len(calls) >= 1)
    assert len(calls) == 1
    for bad in ({"start": "nowhere"}, {"iterations": 0}, {"stages": 0}, {"restarts": 0}, {"background": 1},
                {"optimizer": "adam"}):
        with pytest.raises(MethodError, match="4dvar"):
            run_method("4dvar", system, obs, 4, bad)
