"""A guidance records the autograd graph of the observed states' windows only.

The gradient of a likelihood that reads only observed states is the same with and
without the split; the split must name exactly the windows whose used outputs are
observed, and fall back to every window when all are needed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sda_gui.core.diffusion.guidance import ObservationModel, make_guidance
from sda_gui.core.diffusion.local_score import LocalScoreModel, fold_windows, unfold_windows, window_split
from sda_gui.core.diffusion.networks import ResMLP
from sda_gui.core.diffusion.unet import UNet2d
from sda_gui.core.observation import Observation, every_nth_state_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise(net):
    # a fresh network may start near zero; random weights make the test see it
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return net


def _vector_model(k=2, n=6, seed=0):
    torch.manual_seed(seed)
    net = _randomise(ResMLP(2 * k + 1, (n,), width=32, depth=2))
    return LocalScoreModel(net, k, (n,), torch.linspace(-1, 1, n), torch.linspace(0.5, 2.0, n))


def _field_model(k=1, seed=0):
    torch.manual_seed(seed)
    net = _randomise(UNet2d(2 * k + 1, (2, 8, 8), channels=(8, 16), blocks=1))
    return LocalScoreModel(net, k, (2, 8, 8), torch.zeros(2, 1, 1), torch.ones(2, 1, 1))


def _which_windows_are_read(length, k, states, fold="centre"):
    """Brute force: the windows whose outputs reach the folded outputs of ``states``."""
    m = length - 2 * k
    used = []
    for j in range(m):
        e = torch.zeros(1, m, 2 * k + 1)
        e[0, j] = 1.0
        if fold_windows(e, k, fold)[0, list(states)].any():
            used.append(j)
    return used


@pytest.mark.parametrize("fold", ["centre", "mean", "interior"])
@pytest.mark.parametrize("length,k,states", [
    (29, 2, range(0, 29, 4)),      # the paper's Kolmogorov case: 8 of 25 windows
    (65, 1, range(0, 65, 8)),
    (10, 2, [0, 1]),               # both from the first window
    (10, 2, [9]),
    (7, 3, [3]),                   # a single window
    (12, 1, [5, 6, 7]),
])
def test_split_names_exactly_the_windows_that_observed_outputs_come_from(length, k, states, fold):
    split = window_split(length, k, list(states), fold=fold)
    expected = _which_windows_are_read(length, k, states, fold)
    if len(expected) == length - 2 * k:
        assert split is None
        return
    assert split.grad.tolist() == expected
    assert sorted(split.grad.tolist() + split.rest.tolist()) == list(range(length - 2 * k))
    order = torch.cat((split.grad, split.rest)).index_select(0, split.order)
    assert order.tolist() == list(range(length - 2 * k))


@pytest.mark.parametrize("length,k", [(11, 2), (9, 4), (30, 4), (65, 13), (7, 1)])
def test_the_mean_folds_average_the_windows_holding_a_state(length, k):
    e = torch.randn(2, length - 2 * k, 2 * k + 1, 3, generator=torch.Generator().manual_seed(length))
    mean, interior = torch.zeros(2, length, 3), torch.zeros(2, length, 3)
    for i in range(length):
        windows = [m for m in range(length - 2 * k) if 0 <= i - m <= 2 * k]
        mean[:, i] = torch.stack([e[:, m, i - m] for m in windows]).mean(0)
        inner = [e[:, m, i - m] for m in windows if 0 < i - m < 2 * k]
        # the trajectory's first and last states lie on a window's edge only
        assert bool(inner) == (0 < i < length - 1)
        interior[:, i] = torch.stack(inner).mean(0) if inner else e[:, windows[0], i - windows[0]]
    torch.testing.assert_close(fold_windows(e, k, "mean"), mean)
    torch.testing.assert_close(fold_windows(e, k, "interior"), interior)
    # a trajectory's own windows fold back to it with every fold
    x = torch.randn(2, length, 3)
    for fold in ("mean", "interior"):
        torch.testing.assert_close(fold_windows(unfold_windows(x, k), k, fold), x)
    with pytest.raises(ValueError, match="fold"):
        fold_windows(e, k, "edge")


def test_paper_case_differentiates_8_of_25_windows():
    split = window_split(29, 2, range(0, 29, 4))
    assert split.grad.tolist() == [0, 2, 6, 10, 14, 18, 22, 24]
    assert window_split(29, 2, range(29)) is None   # every state observed: nothing to save


def test_split_forward_gives_the_same_noise_estimate():
    model = _vector_model()
    x = torch.randn(3, 17, 6, generator=torch.Generator().manual_seed(1))
    split = window_split(17, model.k, [0, 8, 16])
    t = torch.tensor(0.4)
    with torch.enable_grad():
        torch.testing.assert_close(model(x, t, split), model(x, t), rtol=1e-6, atol=1e-6)
    # per-trajectory times reach each window of either part
    t = torch.tensor([0.2, 0.5, 0.9])
    with torch.enable_grad():
        torch.testing.assert_close(model(x, t, split), model(x, t), rtol=1e-6, atol=1e-6)


def test_split_records_a_graph_for_the_observed_windows_only():
    model = _vector_model()
    x = torch.randn(2, 17, 6, requires_grad=True)
    split = window_split(17, model.k, [8])
    eps = model(x, torch.tensor(0.5), split)
    (g_obs,) = torch.autograd.grad(eps[:, 8].sum(), x, retain_graph=True)
    assert g_obs.abs().sum() > 0
    # outputs of unobserved windows carry no graph: their gradient is not taken
    (g_other,) = torch.autograd.grad(eps[:, 3].sum(), x, allow_unused=True)
    assert g_other is None or g_other.abs().sum() == 0


def _observation(length, state_shape, every, seed=0, operator=None, coarse_shape=None):
    rng = np.random.default_rng(seed)
    shape = (length, *(coarse_shape or state_shape))
    mask = every_nth_state_mask(length, coarse_shape or state_shape, every=every)
    return Observation(mask, rng.standard_normal(shape), 0.3, operator=operator)


@pytest.mark.parametrize("fold,windows", [("centre", 4), ("mean", 14), ("interior", 9)])
@pytest.mark.parametrize("guidance", ["sda", "dps", "mmps"])
def test_guided_eps_is_unchanged_by_the_split_on_vectors(guidance, fold, windows):
    model = _vector_model()
    model.fold = fold
    obs = _observation(21, (6,), every=6)
    g = make_guidance(guidance, obs, model)
    # states 0, 6, 12, 18 of 17 windows: their centred windows, or every window holding one of them
    assert g.obs.split is not None and len(g.obs.split.grad) == windows
    x = torch.randn(4, 21, 6, generator=torch.Generator().manual_seed(2))
    t = torch.tensor(0.3)   # σ/μ < 1: MMPS takes its Jacobian path
    split_eps = g(model, x, t)
    g.obs.split = None
    torch.testing.assert_close(split_eps, g(model, x, t), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("guidance", ["sda", "mmps"])
def test_guided_eps_is_unchanged_by_the_split_on_coarsened_fields(guidance):
    model = _field_model()
    obs = _observation(9, (2, 8, 8), every=4, operator="coarsen:4", coarse_shape=(2, 2, 2))
    g = make_guidance(guidance, obs, model)
    assert g.obs.split.grad.tolist() == [0, 3, 6]
    x = torch.randn(2, 9, 2, 8, 8, generator=torch.Generator().manual_seed(3))
    t = torch.tensor(0.2)
    split_eps = g(model, x, t)
    g.obs.split = None
    torch.testing.assert_close(split_eps, g(model, x, t), rtol=1e-5, atol=1e-5)


def test_a_dense_observation_keeps_every_window():
    model = _vector_model()
    obs = _observation(12, (6,), every=1)
    assert ObservationModel(obs, model).split is None


def test_unfold_fold_round_trip_still_holds():
    x = torch.randn(2, 11, 3)
    windows = unfold_windows(x, 2)
    torch.testing.assert_close(fold_windows(windows, 2), x)


@pytest.mark.parametrize("fold", ["centre", "mean", "interior"])
def test_assimilate_draws_the_same_samples_with_and_without_the_split(fold):
    from sda_gui.core.assimilation import assimilate

    model = _vector_model()
    obs = _observation(21, (6,), every=6, seed=4)     # a split with either fold (see above)
    run = dict(steps=12, corrections=1, seed=2, fold=fold)
    split = assimilate(model, obs, 8, **run)
    assert model.fold == fold
    full = assimilate(model, obs, 8, window_split=False, **run)
    assert torch.isfinite(split).all()
    np.testing.assert_allclose(split.numpy(), full.numpy(), rtol=1e-4, atol=1e-4)


def test_assimilate_applies_the_fold_it_is_given():
    from sda_gui.core.assimilation import assimilate

    model = _vector_model()
    obs = _observation(21, (6,), every=4, seed=4)
    run = dict(steps=12, corrections=1, seed=2)
    centre = assimilate(model, obs, 4, fold="centre", **run)
    mean = assimilate(model, obs, 4, fold="mean", **run)
    assert (mean - centre).abs().max() > 1e-3        # the same noise, another score
    with pytest.raises(ValueError, match="fold"):
        assimilate(model, obs, 4, fold="edge", **run)
    assert model.fold == "mean"                          # a refused call changes nothing


def test_the_sda_method_folds_by_the_centre_unless_told(tiny_model_path):
    from types import SimpleNamespace

    from sda_gui.core.diffusion.checkpoint import load_checkpoint
    from sda_gui.core.methods import MethodError, get_method, run_method, settings_from
    from sda_gui.core.observation import synthesize
    from sda_gui.core.systems import make_system

    sda = get_method("sda")
    from sda_gui.cli.parser import FOLDS as CLI_FOLDS
    from sda_gui.core.diffusion.local_score import FOLDS

    assert CLI_FOLDS == FOLDS          # the CLI's copy (kept to spare --help a torch import)
    assert sda.Settings().fold == "centre"
    for system in (make_system("lorenz96"), make_system("lorenz63"), SimpleNamespace(name="kolmogorov")):
        assert settings_from(sda, system).fold == "centre"
    assert settings_from(sda, make_system("lorenz96"), {"fold": "mean"}).fold == "mean"     # a choice wins
    with pytest.raises(MethodError, match="fold"):
        settings_from(sda, make_system("lorenz96"), {"fold": "edge"})
    # a run hands its fold to the model before sampling
    system, model = make_system("lorenz96"), load_checkpoint(tiny_model_path)
    obs = synthesize(system.simulate(1, 12, seed=1)[0].numpy(), np.ones((12, 40), bool), 1.0, seed=0)
    for fold in ("centre", "mean", "interior"):
        run = run_method("sda", system, obs, 2, {"steps": 2, "fold": fold}, model=model, seed=0)
        assert run.settings["fold"] == model.fold == fold and torch.isfinite(run.members).all()
