"""The fast paths of sampling compute the same function as the plain ones.

``ResMLP`` folds its modulated layer norms into the weights when every window shares
one time (``fuse_shared_time``); the windows run in chunks (``plan_chunks``). Both are
exact rewrites: outputs, input gradients, weight gradients and whole sampler runs
agree with the unoptimised path to float rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sda_gui.core.assimilation import assimilate
from sda_gui.core.diffusion.local_score import LocalScoreModel
from sda_gui.core.diffusion.networks import ResMLP
from sda_gui.core.observation import Observation, every_nth_state_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(seed=0, window=5, n=3, width=32, depth=2):
    torch.manual_seed(seed)
    net = ResMLP(window, (n,), width=width, depth=depth)
    with torch.no_grad():   # a fresh ResMLP starts near zero (its last layers are zero): make every term count
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


@pytest.fixture
def plain_path():
    """Switches the fused path off (for the reference) and back on afterwards."""
    def switch(on: bool):
        ResMLP.fuse_shared_time = on
    yield switch
    ResMLP.fuse_shared_time = True


def test_fused_shared_time_gives_the_plain_outputs_and_gradients(plain_path):
    net = _net()
    x = torch.randn(64, 5, 3, generator=torch.Generator().manual_seed(1)) * 2
    t = torch.tensor([0.37])
    with torch.no_grad():
        fused = net(x, t)
        plain_path(False)
        plain = net(x, t)
        plain_path(True)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    assert plain.abs().max() > 0.1

    def grads(on):
        plain_path(on)
        net.zero_grad()
        xg = x.clone().requires_grad_(True)
        out = net(xg, t)
        (gx,) = torch.autograd.grad(out.square().sum(), xg, retain_graph=True)
        out.square().sum().backward()
        return gx, [p.grad.clone() for p in net.parameters()]

    gx_fused, gw_fused = grads(True)
    gx_plain, gw_plain = grads(False)
    torch.testing.assert_close(gx_fused, gx_plain, rtol=1e-4, atol=1e-4)
    for a, b in zip(gw_fused, gw_plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)


def test_per_window_times_take_the_plain_path_and_agree_with_shared_ones():
    net = _net(seed=2)
    x = torch.randn(6, 5, 3)
    with torch.no_grad():
        per_window = net(x, torch.full((6,), 0.6))     # e has one row per window: plain path
        shared = net(x, torch.tensor([0.6]))           # one row: fused path
    torch.testing.assert_close(per_window, shared, rtol=1e-5, atol=1e-5)


def _model(seed=0):
    net = _net(seed, window=5, n=3, width=32, depth=2)
    return LocalScoreModel(net, 2, (3,), torch.tensor([0.5, -1.0, 2.0]), torch.tensor([1.0, 2.0, 0.5]))


def _obs(length=24, seed=3):
    rng = np.random.default_rng(seed)
    mask = every_nth_state_mask(length, (3,), 4, [0])
    return Observation(mask, rng.standard_normal((length, 3)), 0.4)


@pytest.fixture
def float64():
    """Float64 throughout: at high noise the sampler divides ε by μ(1) = 1e-3, so float32
    rounding (which any reordering of a sum changes) reaches the samples as ~1e-3; in float64
    the same amplification leaves ~1e-12, and only a different function could differ more."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize("guidance", ["sda", "dps"])
def test_a_sampler_run_draws_the_samples_of_the_unoptimised_path(plain_path, float64, guidance):
    model = _model().double()
    obs = _obs()
    run = dict(steps=10, corrections=1, seed=5, guidance=guidance)
    fast = assimilate(model, obs, 12, memory_budget_bytes=40 * model.activation_bytes()[0], **run)
    assert model.max_windows == 40                 # assimilate planned chunks: 12 × 20 windows in 6 of them
    # the unoptimised path: no fusion, one batch of windows
    plain_path(False)
    model.plan_chunks = lambda *a, **k: None       # keep the single batch this time
    model.max_windows = model.max_graph_windows = None
    plain = assimilate(model, obs, 12, **run)
    assert torch.isfinite(fast).all() and fast.std() > 0.5
    np.testing.assert_allclose(fast.numpy(), plain.numpy(), rtol=1e-5, atol=1e-5)


def test_autocast_takes_the_plain_path():
    net = _net(seed=4)
    x = torch.randn(10, 5, 3)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, torch.tensor([0.5]))
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
