"""Weak-constraint 4D-Var and its RML ensemble (core/methods/weak_constraint.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sda_gui.core.baselines import kalman_smoother
from sda_gui.core.methods import Cancelled, MethodError, method_names, run_method
from sda_gui.core.methods.common import ObservedStates
from sda_gui.core.methods.variational import Background, minimise
from sda_gui.core.methods.weak_constraint import WeakConstraintCost
from sda_gui.core.observation import Observation, synthesize
from sda_gui.core.systems import Lorenz96, make_system
from sda_gui.core.systems.base import DynamicalSystem

from test_core_variational import ShiftField   # a (1, 4, 4) field moved one cell per state

pytestmark = pytest.mark.usefixtures("one_torch_thread")

F = np.array([[0.9, 0.3], [-0.2, 0.95]])
M0 = np.array([1.0, -0.5])
P0 = np.array([[2.0, 0.6], [0.6, 1.0]])
S_F = 0.4   # the chain's transition noise std per entry


class NoisyLinearChain(DynamicalSystem):
    """``x_{i+1} = F x_i + w_i``, ``w_i ~ N(0, S_F² I)``, ``x_1 ~ N(M0, P0)``; a non-trivial normalisation."""

    name = "noisy-linear-chain"
    state_shape = (2,)
    variable_names = ["a", "b"]
    params = {}

    def normalization(self):
        return torch.tensor([0.5, 0.0]), torch.tensor([2.0, 0.5])

    def prior(self, n, generator, device="cpu"):
        z = torch.randn((n, 2), generator=generator, device=device, dtype=torch.float64)
        return torch.as_tensor(M0) + z @ torch.as_tensor(np.linalg.cholesky(P0)).T

    def transition(self, x, generator=None):
        x = x @ torch.as_tensor(F, dtype=x.dtype).T
        if generator is not None:
            x = x + S_F * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x

    def transition_std(self):
        return S_F


def _linear_problem(length=6):
    mask = np.zeros((length, 2), bool)
    mask[1, 0] = mask[3, 1] = mask[5, :] = True
    values = np.where(mask, np.random.default_rng(0).normal(size=mask.shape), 0.0)
    return Observation(mask, values, std=np.where(mask, 0.5, 1.0))


def _exact_cost(system, obs, n=1):
    mean, scale = (v.double().numpy() for v in system.normalization())
    chol = np.linalg.cholesky(P0 / np.outer(scale, scale))
    background = Background(torch.as_tensor((M0 - mean) / scale), torch.as_tensor(chol))
    observed = ObservedStates(obs, 1, torch.device("cpu"))
    ys = {i: observed.y(i)[None].expand(n, -1).clone() for i in observed.indices}
    noise = torch.zeros((n, obs.length - 1, 2), dtype=torch.float64)
    return WeakConstraintCost(system, observed, background, background.mean[None].expand(n, -1).clone(), ys,
                              noise, S_F, obs.length)


def test_the_minimiser_is_the_kalman_smoothers_mean():
    # linear-Gaussian with transition noise: the weak-constraint MAP is the RTS smoother's mean
    system, obs = NoisyLinearChain(), _linear_problem()
    cost = _exact_cost(system, obs)
    v = torch.zeros((1, obs.length * 2), dtype=torch.float64)
    counts = minimise(cost, v, cost.obs.indices, iterations=50)
    assert counts["evaluations"] > 1
    means, _ = kalman_smoother(F, S_F ** 2 * np.eye(2), M0, P0, obs)
    assert np.allclose(cost.states(v)[0].numpy(), means, atol=2e-5)


def test_each_member_minimises_its_own_perturbed_cost():
    # member 1's observations and model steps are shifted: its minimiser moves by the exact linear response
    system, obs = NoisyLinearChain(), _linear_problem()
    cost = _exact_cost(system, obs, n=2)
    cost.ys = {i: torch.cat([y[:1], y[1:] + 3.0]) for i, y in cost.ys.items()}
    cost.step_noise[1] = 0.5 / S_F   # in units of the model's std
    v = torch.zeros((2, obs.length * 2), dtype=torch.float64)
    minimise(cost, v, cost.obs.indices, iterations=50)
    x = cost.states(v).numpy()
    shifted = Observation(obs.mask, np.where(obs.mask, obs.values + 3.0, 0.0), obs.std)
    # a constant model-noise shift b: x_{i+1} = F x_i + b + w_i, i.e. the smoother of the augmented chain
    F_aug = np.block([[F, np.eye(2)], [np.zeros((2, 2)), np.eye(2)]])
    Q_aug = np.diag([S_F ** 2, S_F ** 2, 0.0, 0.0])
    m0_aug, p0_aug = np.concatenate([M0, [0.5, 0.5]]), np.block([[P0, np.zeros((2, 2))], [np.zeros((2, 2)), 1e-12 * np.eye(2)]])
    aug = Observation(np.concatenate([shifted.mask, np.zeros_like(shifted.mask)], 1),
                      np.concatenate([shifted.values, np.zeros_like(shifted.values)], 1),
                      np.concatenate([shifted.std_array(), np.ones_like(shifted.std_array())], 1))
    means, _ = kalman_smoother(F_aug, Q_aug, m0_aug, p0_aug, aug)
    assert np.allclose(x[1], means[:, :2], atol=2e-5)
    assert np.allclose(x[0], kalman_smoother(F, S_F ** 2 * np.eye(2), M0, P0, obs)[0], atol=2e-5)


def test_the_rml_ensemble_samples_the_linear_gaussian_posterior():
    system, obs = NoisyLinearChain(), _linear_problem()
    means, covs = kalman_smoother(F, S_F ** 2 * np.eye(2), M0, P0, obs)
    sd = np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
    n = 400
    # model_error 0: the chain's own transition noise is the whole model error
    result = run_method("wc4dvar", system, obs, n, {"background": 20000, "model_error": 0.0}, seed=1)
    x = result.members.double().numpy()
    assert result.diagnostics["model_error_std"] == pytest.approx(S_F)
    assert np.all(np.abs(x.mean(0) - means) < 4 * sd / np.sqrt(n))
    assert np.allclose(x.std(0, ddof=1), sd, rtol=0.15)
    # without the perturbations every member lands on the smoother's mean (up to B's sampling error)
    single = run_method("wc4dvar", system, obs, 4, {"background": 20000, "model_error": 0.0, "rml": False}, seed=1)
    assert np.allclose(single.members.double().numpy(), means[None], atol=0.03)
    # an extra model error adds in variance: the posterior it samples is a wider one
    wide = run_method("wc4dvar", system, obs, n, {"background": 20000, "model_error": 0.3}, seed=1)
    assert wide.diagnostics["model_error_std"] == pytest.approx(0.5)
    _, wide_covs = kalman_smoother(F, 0.25 * np.eye(2), M0, P0, obs)
    wide_sd = np.sqrt(np.diagonal(wide_covs, axis1=1, axis2=2))
    assert np.allclose(wide.members.double().numpy().std(0, ddof=1), wide_sd, rtol=0.15)


def test_the_continuation_ends_on_the_final_costs_minimiser():
    # the linear-Gaussian cost is convex at every q, so the stages change the path, not the end:
    # each member keeps its draws, scaled per stage, and lands on the one-stage RML minimiser
    system, obs = NoisyLinearChain(), _linear_problem()
    one = run_method("wc4dvar", system, obs, 8, {"background": 2000, "model_error": 0.3, "stages": 1}, seed=4)
    three = run_method("wc4dvar", system, obs, 8, {"background": 2000, "model_error": 0.3, "stages": 3}, seed=4)
    assert three.diagnostics["stages"] == 3 and one.diagnostics["stages"] == 1
    assert three.diagnostics["model_error_std"] == pytest.approx(0.5)
    assert three.diagnostics["outer_iterations"] > one.diagnostics["outer_iterations"]
    assert np.allclose(three.members.numpy(), one.members.numpy(), atol=1e-4)
    # q = 0 on a noisy system: halving it changes nothing, so there is one stage
    plain = run_method("wc4dvar", system, obs, 8, {"background": 2000, "model_error": 0.0, "stages": 3}, seed=4)
    assert plain.diagnostics["stages"] == 1


def _lorenz96_window(length=16, seed=3):
    system = Lorenz96(n=8)
    truth = system.simulate(1, length, seed=seed)[0].double().numpy()
    return system, truth, synthesize(truth, np.ones(truth.shape, bool), 1.0, seed=seed)


def test_dense_lorenz96_beats_the_filter_it_starts_from():
    system, truth, obs = _lorenz96_window()
    rmse = {}
    for name in ("letkf", "wc4dvar"):
        members = run_method(name, system, obs, 16, seed=0).members.double().numpy()
        rmse[name] = float(np.sqrt(((members.mean(0) - truth) ** 2).mean(-1)).mean())
    # dense σ = 1 observations: the smoother gathers the whole window through the dynamics
    assert rmse["wc4dvar"] < 0.8 * rmse["letkf"]
    assert rmse["wc4dvar"] < 0.4


def test_settings_are_checked_before_any_work():
    system, _, obs = _lorenz96_window()
    assert "wc4dvar" in method_names()
    for bad, match in (({"model_error": -0.1}, "model_error"), ({"iterations": 0}, "iterations"),
                       ({"background": 1}, "background"), ({"model_error": 0.0}, "deterministic"),
                       ({"stages": 0}, "stages")):
        with pytest.raises(MethodError, match=match):
            run_method("wc4dvar", system, obs, 4, bad)
    with pytest.raises(MethodError, match="2 members"):
        run_method("wc4dvar", system, obs, 1)
    # a noisy system may run with no extra model error
    l63 = make_system("lorenz63")
    truth = l63.simulate(1, 8, seed=0)[0].double().numpy()
    result = run_method("wc4dvar", l63, synthesize(truth, np.ones(truth.shape, bool), 1.0, seed=0), 4,
                        {"model_error": 0.0, "iterations": 2}, seed=0)
    assert result.members.shape == (4, 8, 3)
    assert result.diagnostics["model_error_std"] == pytest.approx(l63.transition_std())


def test_progress_counts_up_and_a_cancel_stops_within_one_step():
    system, _, obs = _lorenz96_window()
    calls = []
    result = run_method("wc4dvar", system, obs, 4, {"iterations": 5}, progress=lambda *a: calls.append(a))
    # Lorenz-96 is deterministic: the continuation's 4 stages of 5 iterations each, down to q = 0.005
    assert result.diagnostics["stages"] == 4 and result.diagnostics["model_error_std"] == pytest.approx(0.005)
    done = [c[0] for c in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1] == obs.length + 4 * 5
    assert {c[1] for c in calls} == {obs.length + 4 * 5}
    assert any(c[2] is not None and tuple(c[2].shape) == (4, obs.length, 8) for c in calls)
    assert result.diagnostics["outer_iterations"] <= 4 * 5

    seen = []
    with pytest.raises(Cancelled):
        run_method("wc4dvar", system, obs, 4, {"iterations": 50}, progress=lambda *a: seen.append(a),
                   should_stop=lambda: len(seen) >= obs.length + 2)
    assert len(seen) == obs.length + 2


def test_sda_samples_refined_by_the_weak_constraint_cost(tiny_model_path):
    from sda_gui.core.diffusion.checkpoint import load_checkpoint

    system = make_system("lorenz96")
    truth = system.simulate(1, 16, seed=5)[0].double().numpy()
    obs = synthesize(truth, np.ones(truth.shape, bool), 1.0, seed=5)
    model = load_checkpoint(tiny_model_path)
    base = {"steps": 16}
    calls = []
    plain = run_method("sda", system, obs, 6, base, model=model, seed=2)
    refined = run_method("sda", system, obs, 6, dict(base, refine_iterations=10), model=model, seed=2,
                         progress=lambda *a: calls.append(a[:2]))

    def scores(members):
        m = members.double().numpy()
        rmse = float(np.sqrt(((m.mean(0) - truth) ** 2).mean(-1)).mean())
        step = system.transition(torch.as_tensor(m[:, :-1]).reshape(-1, 40)).reshape(m[:, 1:].shape).numpy()
        return rmse, float(np.sqrt(((m[:, 1:] - step) ** 2).mean()))

    (rmse0, residual0), (rmse1, residual1) = scores(plain.members), scores(refined.members)
    # the tiny model's samples stray from the dynamics; refined (Lorenz-96's default: q = 0.005
    # reached in 4 stages), they follow it to within a few q
    assert residual1 < 0.05 < residual0
    assert rmse1 < 0.7 * rmse0
    assert refined.diagnostics["refine_model_error_std"] == pytest.approx(0.005)
    assert refined.diagnostics["refine_stages"] == 4
    assert 0 <= refined.diagnostics["refine_kept_alternative"] <= 6   # members started from the LETKF
    # progress: the sampler's 16 steps, then the refinement's 4 stages of 10 iterations, of one total
    assert {t for _, t in calls} == {16 + 4 * 10} and calls[-1][0] == 16 + 4 * 10
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    for bad in ({"refine_iterations": -1}, {"refine_model_error": -1.0}, {"refine_stages": 0},
                {"refine_iterations": 5, "refine_model_error": 0.0}):
        with pytest.raises(MethodError):
            run_method("sda", system, obs, 2, dict(base, **bad), model=model)


def test_refine_keeps_the_lower_of_two_minima_per_member():
    from sda_gui.core.methods import RunContext
    from sda_gui.core.methods.weak_constraint import refine

    system, truth, obs = _lorenz96_window(length=12)
    good = run_method("letkf", system, obs, 4, seed=0).members
    far = torch.full_like(good, 30.0)   # far off the attractor: its minimum (if any) costs more

    def ctx():
        return RunContext(system=system, observation=obs, n_members=4, device=torch.device("cpu"), seed=7)

    alone, _ = refine(ctx(), good, 0.05, 20)
    both, diag = refine(ctx(), far, 0.05, 20, alternative=good)
    assert diag["kept_alternative"] == 4
    assert torch.allclose(both, alone, atol=1e-5)
    swapped, diag = refine(ctx(), good, 0.05, 20, alternative=far)
    assert diag["kept_alternative"] == 0 and torch.allclose(swapped, alone, atol=1e-5)


def test_a_field_runs_with_the_field_defaults():
    system = ShiftField()
    truth = system.simulate(1, 6, seed=0)[0].double().numpy()
    mask = np.zeros(truth.shape, bool)
    mask[:, :, :, ::2] = True                    # half the columns: the shift carries them to the others
    obs = synthesize(truth, mask, 0.1, seed=0)
    result = run_method("wc4dvar", system, obs, 3, seed=0)
    assert result.settings["background"] == 32 and result.settings["iterations"] == 10
    members = result.members.double().numpy()
    assert members.shape == (3, 6, 1, 4, 4)
    # every entry is observed at some state and carried exactly: the mean is close to the truth
    assert np.sqrt(((members.mean(0) - truth) ** 2).mean()) < 0.2
