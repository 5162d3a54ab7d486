"""Window evaluation in chunks within a memory budget (``LocalScoreModel.plan_chunks``).

The chunk size comes from the activations the network keeps per window (a probe);
past the budget, chunks with an autograd graph are checkpointed so the graph keeps
only their inputs. Chunked, checkpointed and single-batch calls give the same noise
estimate and the same guided score.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch

from sda_gui.core.assimilation import assimilate, reuse_freed_memory
from sda_gui.core.diffusion.guidance import make_guidance
from sda_gui.core.diffusion.local_score import (CPU_CHUNK_BYTES, DEFAULT_MEMORY_BUDGET, LocalScoreModel,
                                                default_memory_budget, window_split)
from sda_gui.core.diffusion.networks import ResMLP, RingConv
from sda_gui.core.observation import Observation, every_nth_state_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise(net):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return net


def _mlp_model(width=32, seed=0):
    torch.manual_seed(seed)
    net = _randomise(ResMLP(5, (3,), width=width, depth=2))
    return LocalScoreModel(net, 2, (3,), torch.zeros(3), torch.ones(3))


def _ring_model(seed=0):
    torch.manual_seed(seed)
    net = _randomise(RingConv(3, (8,), width=8, depth=1, kernel=3))
    return LocalScoreModel(net, 1, (8,), torch.zeros(8), torch.ones(8))


def _saved_bytes(fn):
    """Bytes autograd saves for backward while ``fn`` runs (outside any checkpoint)."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, total[0]


def test_probe_measures_the_activations_of_one_window():
    small, wide = _mlp_model(width=16), _mlp_model(width=64)
    a16, w16 = small.activation_bytes()
    a64, w64 = wide.activation_bytes()
    assert w16 == 16 * 4 and w64 == 64 * 4           # the widest activation: one hidden layer of floats
    assert a64 > 3 * a16                              # the graph of a wider network keeps more per window
    # a real graph keeps the probe's share for every further window (weights are saved once per call)
    saved = {}
    for b in (20, 60):
        x = torch.randn(b, 5, 3, requires_grad=True)
        out, saved[b] = _saved_bytes(lambda: wide._net(x, torch.full((1,), 0.5)))
        saved[b] += out.numel() * out.element_size()
    assert saved[60] - saved[20] == 40 * a64


def test_chunk_sizes_follow_the_budget_and_the_cache():
    model = _mlp_model(width=64)
    a, w = model.activation_bytes()
    assert model.plan_chunks(threads=1) == min(DEFAULT_MEMORY_BUDGET // a, CPU_CHUNK_BYTES // w)
    assert model.max_graph_windows == DEFAULT_MEMORY_BUDGET // a
    assert model.plan_chunks(threads=2) == min(DEFAULT_MEMORY_BUDGET // a, 2 * CPU_CHUNK_BYTES // w)
    assert model.plan_chunks(memory_budget_bytes=10 * a) == 10 and model.max_graph_windows == 10
    assert model.plan_chunks(memory_budget_bytes=1) == 1
    with pytest.raises(ValueError, match="budget"):
        model.plan_chunks(memory_budget_bytes=0)
    assert default_memory_budget("cpu") == DEFAULT_MEMORY_BUDGET


@pytest.mark.parametrize("make", [_mlp_model, _ring_model])
def test_chunked_and_checkpointed_calls_give_the_single_batch_score(make):
    model = make()
    n, length = 4, 23
    x = torch.randn(n, length, *model.state_shape, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(0.4)
    mask = every_nth_state_mask(length, model.state_shape, 3, [0])
    obs = Observation(mask, np.random.default_rng(2).standard_normal((length, *model.state_shape)), 0.3)
    guide = make_guidance("sda", obs, model)
    with torch.no_grad():
        eps_one = model(x, t)
    score_one = guide(model, x, t)
    a, _ = model.activation_bytes()
    for budget in (7 * a, a):            # chunks of 7 windows, then of one; both past the budget: checkpointed
        model.plan_chunks(memory_budget_bytes=budget)
        with torch.no_grad():
            torch.testing.assert_close(model(x, t), eps_one, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(guide(model, x, t), score_one, rtol=1e-5, atol=1e-5)


def test_a_checkpointed_graph_keeps_only_the_inputs_of_its_chunks():
    model = _mlp_model(width=64)
    n, length = 32, 41
    x = torch.randn(n, length, 3, requires_grad=True)
    split = window_split(length, model.k, range(0, length, 2))       # most windows with a graph
    t = torch.tensor(0.5)
    a, _ = model.activation_bytes()
    _, unbounded = _saved_bytes(lambda: model(x, t, split))
    graph_windows = n * len(split.grad)
    assert unbounded > 0.8 * graph_windows * a
    model.plan_chunks(memory_budget_bytes=50 * a)                      # far fewer than the graph's windows
    eps, bounded = _saved_bytes(lambda: model(x, t, split))
    assert bounded < 0.2 * unbounded
    # and the gradient through the recomputed chunks is the single batch's
    (g,) = torch.autograd.grad(eps[:, ::2].square().sum(), x)
    model.max_windows = model.max_graph_windows = None
    (g_one,) = torch.autograd.grad(model(x, t, split)[:, ::2].square().sum(), x)
    torch.testing.assert_close(g, g_one, rtol=1e-5, atol=1e-5)


def test_assimilate_within_a_tiny_budget_draws_the_same_samples():
    model = _mlp_model()
    length = 20
    mask = every_nth_state_mask(length, (3,), 4, [0])
    obs = Observation(mask, np.random.default_rng(3).standard_normal((length, 3)), 0.4)
    run = dict(steps=6, corrections=1, seed=1)
    default = assimilate(model, obs, 6, **run)
    assert model.max_windows >= 6 * (length - 4)                        # one chunk holds the whole call here
    a, _ = model.activation_bytes()
    tiny = assimilate(model, obs, 6, memory_budget_bytes=5 * a, **run)
    assert model.max_windows == 5 and model.max_graph_windows == 5
    np.testing.assert_allclose(tiny.numpy(), default.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_memory_is_kept_for_the_next_call_on_glibc():
    assert reuse_freed_memory() is True
    assert reuse_freed_memory() is True          # once per process; a second call changes nothing
