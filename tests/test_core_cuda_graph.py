"""Sampling through CUDA graphs gives the samples of plain calls.

The capture itself needs a CUDA GPU (those tests skip without one, and run on the
lent GPU machine); what makes a call capturable — a gather instead of a boolean
index, guidance that says whether it is graph-safe — is checked everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sda_gui.core.assimilation import assimilate
from sda_gui.core.diffusion.guidance import ObservationModel, make_guidance
from sda_gui.core.diffusion.local_score import LocalScoreModel
from sda_gui.core.diffusion.networks import ResMLP
from sda_gui.core.diffusion.sampler import Sampler
from sda_gui.core.observation import Observation

pytestmark = pytest.mark.usefixtures("one_torch_thread")

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _model(state_shape=(6,), k=1, seed=0):
    torch.manual_seed(seed)
    net = ResMLP(2 * k + 1, state_shape, width=32, depth=2)
    # a fresh ResMLP may start near zero; random weights make the test see the network
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return LocalScoreModel(net, k, state_shape, torch.linspace(-1, 1, state_shape[-1]),
                           torch.linspace(0.5, 2.0, state_shape[-1]))


def _observation(length=10, n=6, operator=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (length, n) if operator is None else (length, n // 2)
    mask = rng.random(shape) < 0.4
    mask[0, 0] = True
    return Observation(mask, rng.standard_normal(shape), 0.3, operator=operator)


@pytest.mark.parametrize("operator", [None, "coarsen:2", "subsample:2"])
def test_observation_model_gathers_what_the_boolean_mask_selects(operator):
    model = _model()
    obs = _observation(operator=operator)
    om = ObservationModel(obs, model)
    x_n = torch.randn(3, obs.length, 6, generator=torch.Generator().manual_seed(1))
    expected = obs.apply(x_n * model.scale + model.mean, 1)
    np.testing.assert_allclose(om(x_n).numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)
    assert om(x_n).shape == (3, obs.count) == (3, om.y.shape[0])


def test_graph_safety_of_each_guidance():
    model = _model()
    obs = _observation()
    assert Sampler(model, None).graph_safe()
    assert Sampler(model, make_guidance("sda", obs, model)).graph_safe()
    assert Sampler(model, make_guidance("dps", obs, model)).graph_safe()
    # MMPS branches on the noise level and on its CG result in Python: it syncs
    assert not Sampler(model, make_guidance("mmps", obs, model)).graph_safe()
    assert not Sampler(model, make_guidance("sda", obs, model), cuda_graph=False).graph_safe()


@cuda
@pytest.mark.parametrize("guidance", ["sda", "dps", "mmps"])
def test_cuda_graph_samples_equal_plain_samples(guidance):
    model = _model()
    obs = _observation()
    run = dict(steps=16, corrections=2, guidance=guidance, device="cuda", seed=3)
    graphed = assimilate(model, obs, 64, cuda_graph=True, **run)
    plain = assimilate(model, obs, 64, cuda_graph=False, **run)
    assert torch.isfinite(graphed).all()
    np.testing.assert_allclose(graphed.numpy(), plain.numpy(), rtol=1e-4, atol=1e-4)


@cuda
def test_cuda_graph_captures_the_window_split():
    """Every 4th state observed: the captured call differentiates 3 of 8 windows."""
    from sda_gui.core.observation import every_nth_state_mask

    model = _model()
    mask = every_nth_state_mask(10, (6,), every=4)
    obs = Observation(mask, np.random.default_rng(0).standard_normal(mask.shape), 0.3)
    assert ObservationModel(obs, model, "cuda").split is not None
    run = dict(steps=16, corrections=1, device="cuda", seed=5, cuda_graph=True)
    split = assimilate(model, obs, 64, **run)
    full = assimilate(model, obs, 64, window_split=False, **run)
    assert torch.isfinite(split).all()
    np.testing.assert_allclose(split.numpy(), full.numpy(), rtol=1e-4, atol=1e-4)


@cuda
def test_cuda_graph_is_captured_once_and_replayed(monkeypatch):
    from sda_gui.core.diffusion import cuda_graph, sampler as sampler_module

    made = []
    real = cuda_graph.CapturedCall

    def counting(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cuda_graph, "CapturedCall", counting)
    model = _model().cuda()
    obs = _observation()
    guide = make_guidance("sda", obs, model, device="cuda")
    s = sampler_module.Sampler(model, guide, steps=8, corrections=1)
    x = s.sample((4, obs.length, 6), generator=torch.Generator("cuda").manual_seed(0), device="cuda")
    assert made == [1] and torch.isfinite(x).all()


@cuda
def test_cancel_still_stops_between_graph_replays():
    from sda_gui.core.diffusion.sampler import Cancelled

    model = _model()
    obs = _observation()
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Cancelled):
        assimilate(model, obs, 8, steps=32, corrections=1, device="cuda", should_stop=stop)
    assert len(calls) == 6
