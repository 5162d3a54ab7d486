"""Dynamics consistency in the SDA guidance (``guidance.dynamics``).

The single guided call is checked against its closed form on the Gaussian AR(1) prior
with a linear transition f(x) = a x; a short run of a small Lorenz-96 model must
follow the system's transition more closely with the term than without; and the
settings that cannot work are refused before any work.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sda_gui.core import metrics
from sda_gui.core.diffusion.guidance import DynamicsConsistency, gamma_for_steps, make_guidance
from sda_gui.core.methods import MethodError, run_method, settings_from, get_method
from sda_gui.core.observation import synthesize
from sda_gui.core.systems import make_system

from test_core_guidance import A, L, MEAN, SCALE, _closed_form, gaussian_model, masked_observation

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LinearChain:
    """x_{i+1} = a x_i + noise of std 0.2: the AR(1) chain of the Gaussian prior, in physical units."""

    state_shape = (1,)
    has_dynamics = True

    def transition(self, x, generator=None):
        return A * x

    def transition_std(self):
        return 0.2


@pytest.mark.parametrize("t", [0.05, 0.4, 0.8])
def test_single_call_matches_its_formula(t):
    gamma, q, big_g = 0.02, 0.3, 0.5
    model = gaussian_model(mean=MEAN, scale=SCALE)
    obs = masked_observation(values=(4.0, 0.5, 6.5), std=0.9)
    x = torch.randn(5, L, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    guide = make_guidance("sda", obs, model, gamma=gamma, dynamics=(LinearChain(), q, big_g))
    assert guide.obs.split is None          # every window's gradient
    got = guide(model, x, torch.tensor(t, dtype=torch.float64)).reshape(5, L).detach().numpy()

    mu, sigma, eps, m, h, y, y_hat, var_y = _closed_form(t, x, obs)
    var = var_y + (sigma / mu) ** 2 * gamma * SCALE ** 2
    d = np.zeros((L - 1, L))                # r = D x_phys, x_phys = SCALE x̂ + MEAN
    d[np.arange(L - 1), np.arange(1, L)] = 1.0
    d[np.arange(L - 1), np.arange(L - 1)] = -A
    x_hat = x.reshape(5, L).numpy() @ m.T
    r = (SCALE * x_hat + MEAN) @ d.T
    v = q ** 2 + 0.2 ** 2 + (sigma / mu) ** 2 * big_g * SCALE ** 2
    score = ((y - y_hat) / var) @ h @ m - (r / v) @ d @ m * SCALE
    expected = eps - sigma * score
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_the_residual_of_a_true_trajectory_is_its_noise():
    system = make_system("lorenz96")
    truth = system.simulate(2, 12, seed=0)
    term = DynamicsConsistency(system, torch.zeros(40), torch.ones(40), std=0.1)
    assert term.residual(truth).shape == (2, 11, 40)
    assert float(term.residual(truth).abs().max()) < 1e-4     # deterministic Lorenz-96
    assert float(term.residual(truth + 0.5 * torch.randn_like(truth)).abs().mean()) > 0.1
    for bad in ({"std": 0.0}, {"std": 0.1, "gamma": -1.0}):
        with pytest.raises(ValueError):
            DynamicsConsistency(system, torch.zeros(40), torch.ones(40), **bad)


def test_a_run_follows_the_transition_more_closely(tiny_model_path):
    from sda_gui.core.diffusion.checkpoint import load_checkpoint

    system = make_system("lorenz96")
    truth = system.simulate(1, 16, seed=1)[0].numpy()
    obs = synthesize(truth, np.ones(truth.shape, bool), 1.0, seed=0)     # dense, σ = 1
    model = load_checkpoint(tiny_model_path)
    # Lorenz-96's default term (q = 0.05; at 16 steps its G is 8 × 0.3, see gamma_for_steps)
    base = {"steps": 16, "corrections": 0}
    off = run_method("sda", system, obs, 4, {**base, "dynamics_std": 0.0}, model=model, seed=0).members
    on = run_method("sda", system, obs, 4, base, model=model, seed=0)
    assert on.settings["dynamics_std"] == 0.05 and torch.isfinite(on.members).all()
    assert metrics.physical_residual(on.members, system) < 0.8 * metrics.physical_residual(off, system)


def test_more_steps_get_a_firmer_term():
    # G falls from 64 to 256 steps as G · (64/S)^(log 6 / log 4): 0.3 → 0.122 at 128, 0.05 at 256
    # (the values measured best there, docs/benchmarks.md), and stays at G/6 beyond 256
    g = [gamma_for_steps(0.3, s) for s in (48, 64, 65, 96, 128, 200, 256, 512, 4096)]
    assert g[:2] == pytest.approx([0.3, 0.3])
    assert g[4] == pytest.approx(0.3 / 6 ** 0.5) and g[6:] == pytest.approx([0.05] * 3)
    assert all(a > b for a, b in zip(g[1:6], g[2:7]))      # strictly falling from 64 to 256
    assert gamma_for_steps(1.2, 128) == pytest.approx(4 * g[4])   # proportional to the given G


@pytest.mark.parametrize("steps, expected", [(256, 0.05), (64, 0.3), (16, 2.4)])
def test_a_run_builds_its_term_with_the_g_of_its_step_count(tiny_model_path, monkeypatch, steps, expected):
    import sda_gui.core.assimilation as assimilation
    from sda_gui.core.diffusion.checkpoint import load_checkpoint

    built = {}

    def spy(*args, dynamics=None, **kwargs):
        built["dynamics"] = dynamics
        raise RuntimeError("stop before sampling")

    monkeypatch.setattr(assimilation, "make_guidance", spy)
    system = make_system("lorenz96")
    obs = synthesize(system.simulate(1, 16, seed=1)[0].numpy(), np.ones((16, 40), bool), 1.0, seed=0)
    with pytest.raises(RuntimeError, match="stop before sampling"):
        run_method("sda", system, obs, 2, {"steps": steps}, model=load_checkpoint(tiny_model_path))
    _, std, gamma = built["dynamics"]      # Lorenz-96's default term, G = 0.3 given
    assert std == 0.05 and gamma == pytest.approx(expected)


def test_fewer_steps_get_a_looser_term(tiny_model_path):
    from sda_gui.core.diffusion.checkpoint import load_checkpoint

    assert [gamma_for_steps(0.3, s) for s in (64, 32, 16, 8)] == pytest.approx([0.3, 0.3, 2.4, 19.2])
    # 16 steps of the tiny model on dense observations with Lorenz-96's default term: G fixed at
    # 0.3 drives the samples to the clamp (RMSE ≈ 7.6, |x| ≈ 38); the looser G keeps them on the attractor
    system, model = make_system("lorenz96"), load_checkpoint(tiny_model_path)
    truth = system.simulate(1, 16, seed=1)[0]
    obs = synthesize(truth.numpy(), np.ones(truth.shape, bool), 1.0, seed=0)
    run = run_method("sda", system, obs, 4, {"steps": 16, "corrections": 0}, model=model, seed=0)
    assert run.settings["dynamics_std"] == 0.05
    members = run.members
    assert torch.isfinite(members).all() and float(members.abs().max()) < 20
    assert float(((members.mean(0) - truth) ** 2).mean().sqrt()) < 1.5


def test_lorenz96_defaults_to_the_term_unless_another_guidance_is_chosen():
    sda = get_method("sda")
    assert settings_from(sda, make_system("lorenz96"), {}).dynamics_std == 0.05
    assert settings_from(sda, make_system("lorenz63"), {}).dynamics_std == 0.0
    for guidance in ("dps", "mmps"):       # the default gives way; the user's own q is refused
        assert settings_from(sda, make_system("lorenz96"), {"guidance": guidance}).dynamics_std == 0.0
        with pytest.raises(MethodError, match="SDA guidance only"):
            settings_from(sda, make_system("lorenz96"), {"guidance": guidance, "dynamics_std": 0.05})
    assert settings_from(sda, make_system("lorenz96"), {"dynamics_std": None}).dynamics_std == 0.05
    assert settings_from(sda, make_system("lorenz96"), {"dynamics_std": 0}).dynamics_std == 0.0


def test_settings_that_cannot_work_are_refused():
    sda, system = get_method("sda"), make_system("lorenz96")
    assert sda.Settings().dynamics_std == 0.0                # off by default
    assert settings_from(sda, system, {"dynamics_std": "0.05"}).dynamics_std == 0.05
    for bad in ({"dynamics_std": -0.1}, {"dynamics_gamma": -1}, {"dynamics_std": 0.1, "guidance": "mmps"},
                {"dynamics_std": 0.1, "guidance": "dps"}):
        with pytest.raises(MethodError):
            settings_from(sda, system, bad)

    class FromData:
        has_dynamics = False
        name = "data"
        state_shape = (40,)

    with pytest.raises(MethodError, match="has none"):
        sda.check_settings(sda.Settings(dynamics_std=0.1), FromData())
    with pytest.raises(ValueError, match="SDA guidance only"):
        make_guidance("dps", masked_observation(), gaussian_model(), dynamics=(LinearChain(), 0.1, 0.3))
