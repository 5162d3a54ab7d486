"""The one method interface: registry, settings, SDA and the particle filters behind it."""

import numpy as np
import pytest
import torch

from sda_gui.core import metrics
from sda_gui.core.methods import Cancelled, MethodError, get_method, method_names, run_method, settings_from
from sda_gui.core.observation import ObservationError, every_nth_state_mask, synthesize
from sda_gui.core.systems import make_system


@pytest.fixture(scope="module")
def l63_problem():
    system = make_system("lorenz63")
    truth = system.simulate(1, 32, seed=3)[0].numpy()
    obs = synthesize(truth, every_nth_state_mask(32, (3,), 4, [0]), 0.4, seed=1)
    return system, truth, obs


def test_registry_lists_sda_first_and_refuses_unknown_names():
    names = method_names()
    assert names[0] == "sda"
    assert {"bpf", "rpf"} <= set(names)
    with pytest.raises(MethodError, match="unknown method 'nope'"):
        get_method("nope")


def test_settings_are_checked_by_name_type_and_range(l63_problem):
    system = l63_problem[0]
    sda = get_method("sda")
    s = settings_from(sda, system, {"steps": 16, "corrections": None, "gamma": "0.02"})
    assert (s.steps, s.corrections, s.gamma) == (16, sda.Settings().corrections, 0.02)
    assert settings_from(sda, system, {"final_corrections": "4"}).final_corrections == 4
    assert sda.Settings().final_corrections == -1       # as many as the other steps
    for bad in ({"steps": 0}, {"steps": 2.5}, {"tau": float("nan")}, {"guidance": "foo"}, {"inflation": 1.1},
                {"final_corrections": -2}):
        with pytest.raises(MethodError):
            settings_from(sda, system, bad)


def test_particle_filter_fits_the_observations(l63_problem):
    system, truth, obs = l63_problem
    seen = []
    res = run_method("bpf", system, obs, 64, {"particles": 2048}, progress=lambda d, t, e: seen.append((d, t)))
    assert res.members.shape == (64, 32, 3) and res.members.dtype == torch.float32
    assert seen[-1] == (32, 32) and len(seen) == 32
    assert res.method == "bpf" and res.settings["particles"] == 2048 and res.diagnostics["seconds"] >= 0
    clim = float(np.sqrt(np.mean((truth - truth.mean(0)) ** 2)))
    assert metrics.rmse(res.members, truth) < 0.5 * clim
    again = run_method("bpf", system, obs, 64, {"particles": 2048})
    assert torch.equal(res.members, again.members)  # same seed, same members


def test_regularised_filter_keeps_more_distinct_paths(l63_problem):
    system, _, obs = l63_problem
    boot = run_method("bpf", system, obs, 256, {"particles": 512}).members
    reg = run_method("rpf", system, obs, 256, {"particles": 512}).members
    distinct = lambda m: len(np.unique(m[:, 0].numpy().round(6), axis=0))
    assert distinct(reg) > distinct(boot)


def test_cancel_stops_within_one_step(l63_problem):
    system, _, obs = l63_problem
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        run_method("bpf", system, obs, 8, {"particles": 256}, should_stop=stop)
    assert len(calls) == 4


def test_sda_needs_a_model_and_runs_through_the_registry(l63_problem):
    from sda_gui.core.diffusion.checkpoint import default_model_path, load_checkpoint

    system, truth, obs = l63_problem
    with pytest.raises(MethodError, match="needs a trained score model"):
        run_method("sda", system, obs, 4)
    model = load_checkpoint(default_model_path("lorenz63"))
    steps = []
    res = run_method("sda", system, obs, 4, {"steps": 4, "corrections": 0}, model=model,
                     progress=lambda d, t, e: steps.append((d, t, tuple(e.shape))))
    assert res.members.shape == (4, 32, 3)
    assert steps[-1] == (4, 4, (4, 32, 3))
    assert res.settings["steps"] == 4 and res.diagnostics["k"] == model.k


def test_bad_problems_are_refused_before_any_work(l63_problem):
    system, _, obs = l63_problem
    with pytest.raises(MethodError, match="≥ 1"):
        run_method("bpf", system, obs, 0)
    wrong = synthesize(np.zeros((8, 5)), np.ones((8, 5), bool), 1.0)
    with pytest.raises(ObservationError):
        run_method("bpf", system, wrong, 4)
