"""Networks, window composition, training and checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sda_gui.core.diffusion.checkpoint import (FORMAT, CheckpointError, build_model, check_model_for_system,
                                               load_checkpoint, read_checkpoint, save_checkpoint)
from sda_gui.core.diffusion.local_score import LocalScoreModel
from sda_gui.core.diffusion.networks import ResMLP, RingConv, build_network
from sda_gui.core.diffusion.training import TrainConfig, default_arch, train_model, window_batches
from sda_gui.core.systems import make_system


pytestmark = pytest.mark.usefixtures("one_torch_thread")


ARCH = {"name": "resmlp", "width": 32, "depth": 1}


@pytest.fixture(scope="module")
def lorenz63():
    return make_system("lorenz63")


@pytest.fixture(scope="module")
def data(lorenz63):
    return lorenz63.simulate(8, 64, seed=0)


def _config(**kw):
    base = dict(k=2, arch=dict(ARCH), steps=30, batch_size=64, val_every=10, seed=0)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(lorenz63, data):
    seen = []
    model, history = train_model(lorenz63, data, _config(), progress=lambda *a: seen.append(a))
    return model, history, seen


# ------------------------------------------------------------------------------------------
# networks and composition
# ------------------------------------------------------------------------------------------


def test_resmlp_shapes_and_time_broadcast():
    net = ResMLP(5, (3,), width=16, depth=2)
    x = torch.randn(7, 5, 3)
    out_per_sample = net(x, torch.full((7,), 0.3))
    out_shared = net(x, torch.tensor([0.3]))
    assert out_per_sample.shape == x.shape
    np.testing.assert_allclose(out_per_sample.detach().numpy(), out_shared.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_ringconv_shapes_and_any_ring_size():
    net = RingConv(5, (40,), width=8, depth=2, kernel=3)
    for n in (40, 12):                                  # the same weights serve any ring size
        x = torch.randn(4, 5, n)
        assert net(x, torch.rand(4)).shape == x.shape
    # circular padding: rolling the ring rolls the output
    x = torch.randn(2, 5, 40)
    t = torch.rand(2)
    np.testing.assert_allclose(net(torch.roll(x, 3, -1), t).detach().numpy(),
                               torch.roll(net(x, t), 3, -1).detach().numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="ring"):
        RingConv(5, (2, 8, 8))


def test_build_network_and_default_arch():
    assert isinstance(build_network({"name": "resmlp", "width": 8, "depth": 1}, 5, (3,)), ResMLP)
    assert isinstance(build_network({"name": "ringconv", "width": 8, "depth": 1}, 5, (40,)), RingConv)
    with pytest.raises(ValueError, match="unknown network architecture"):
        build_network({"name": "transformer"}, 5, (3,))
    assert default_arch(make_system("lorenz63"))["name"] == "resmlp"
    assert default_arch(make_system("lorenz96"))["name"] == "ringconv"


@pytest.mark.parametrize("length", [5, 7, 20])
def test_local_score_model_any_length_shared_and_per_sample_time(length):
    torch.manual_seed(0)
    model = LocalScoreModel(ResMLP(5, (3,), width=16, depth=1), 2, (3,), torch.zeros(3), torch.ones(3))
    x = torch.randn(3, length, 3)
    with torch.no_grad():
        shared = model(x, torch.tensor(0.4))
        assert shared.shape == x.shape
        times = torch.tensor([0.1, 0.4, 0.9])
        per_sample = model(x, times)
        assert per_sample.shape == x.shape
        for i in range(3):                                      # per-sample t = each sample alone
            alone = model(x[i:i + 1], times[i])
            np.testing.assert_allclose(per_sample[i].numpy(), alone[0].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(per_sample[1].numpy(), shared[1].numpy(), rtol=1e-5, atol=1e-6)
        # the window of state i ≥ k, i < L-k is centred on it: changing a far state leaves it alone
        if length >= 7:
            y = x.clone()
            y[:, -1] += 10.0
            changed = (model(y, torch.tensor(0.4)) - shared).abs().amax((0, 2))
            assert changed[: length - 3].max() < 1e-6 and changed[-1] > 0
        # chunking the windows changes nothing
        model.max_windows = 4
        np.testing.assert_allclose(model(x, times).numpy(), per_sample.numpy(), rtol=1e-5, atol=1e-6)
        model.max_windows = None
    with pytest.raises(ValueError, match="2k\\+1"):
        model(torch.randn(2, 4, 3), torch.tensor(0.5))


def test_window_batches_are_consecutive_states():
    data = torch.arange(3 * 10, dtype=torch.float32).view(3, 10, 1)
    w = window_batches(data, 2, 50, torch.Generator().manual_seed(0))
    assert w.shape == (50, 5, 1)
    assert torch.equal(w[:, 1:] - w[:, :-1], torch.ones(50, 4, 1))


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------


def test_train_model_returns_a_model_and_finite_history(trained, lorenz63):
    model, history, seen = trained
    assert isinstance(model, LocalScoreModel) and model.k == 2 and model.state_shape == (3,)
    assert history["step"] == list(range(1, 31))
    assert all(math.isfinite(v) for v in history["train"])
    vals = [v for v in history["val"] if v is not None]
    assert len(vals) == 3 and all(math.isfinite(v) and v > 0 for v in vals)     # steps 10, 20, 30
    assert history["stopped"] is False and history["seconds"] > 0
    assert [s[0] for s in seen] == history["step"] and seen[-1][1] == 30
    info = model.training_info
    assert info["steps_done"] == 30 and info["arch"] == ARCH and info["trajectories"] == [8, 64, 3]
    assert model.system == lorenz63.config()
    np.testing.assert_allclose(model.mean.numpy(), [0.0, 0.0, 25.0])
    np.testing.assert_allclose(model.scale.numpy(), [8.0, 9.0, 8.6], rtol=1e-6)
    with torch.no_grad():
        out = model(torch.randn(2, 9, 3), torch.tensor(0.5))
    assert out.shape == (2, 9, 3) and torch.isfinite(out).all()


def test_training_reduces_the_loss(trained):
    history = trained[1]
    # an untrained ε-network predicts ≈ 0, a loss of ≈ 1; even 30 small steps beat that
    assert history["train"][-1] < history["train"][0]
    vals = [v for v in history["val"] if v is not None]
    assert vals[-1] < vals[0]


@pytest.mark.parametrize("bad,match", [
    ("nan", "NaN"),
    ("shape", "trajectories must have shape"),
    ("ndim", "trajectories must have shape"),
    ("short", "shorter than a window"),
])
def test_train_model_rejects_bad_trajectories(lorenz63, data, bad, match):
    x = data.clone()
    if bad == "nan":
        x[2, 5, 1] = float("nan")
    elif bad == "shape":
        x = x[..., :2]
    elif bad == "ndim":
        x = x[0]
    elif bad == "short":
        x = x[:, :4]
    with pytest.raises(ValueError, match=match):
        train_model(lorenz63, x, _config(steps=2))


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, lorenz63, data):
    """Training stopped after 15 of 30 steps (checkpoint every 10), then resumed to the end."""
    path = tmp_path_factory.mktemp("resume") / "resumable.pt"
    done = [0]

    def stop_after_15():  # asked before each step and between validation batches
        return done[0] >= 15

    _, history = train_model(lorenz63, data, _config(save_every=10), should_stop=stop_after_15, checkpoint_path=path,
                             progress=lambda step, total, loss, val: done.__setitem__(0, step))
    saved = read_checkpoint(path)
    model, history2 = train_model(lorenz63, data, _config(save_every=10), checkpoint_path=path, resume_from=path)
    return history, saved, model, history2, read_checkpoint(path)


def test_training_can_be_stopped_and_resumed(resumed, trained):
    history, saved, model, history2, _ = resumed
    assert history["stopped"] is True and history["step"][-1] == 15
    assert saved["train_state"]["step"] == 15
    assert saved["training"]["steps_done"] == 15
    assert history2["step"] == list(range(1, 31))                # continues at 16, no step twice
    assert model.training_info["steps_done"] == 30
    # the resumed run started from the saved weights and optimiser: it is a trained model, and its
    # last steps drew other batches than the uninterrupted run (the generator is reseeded at 15)
    uninterrupted = trained[0]
    diff = sum((a - b).abs().sum().item() for a, b in zip(model.net.parameters(), uninterrupted.net.parameters()))
    assert diff > 0
    assert abs(history2["train"][-1] - trained[1]["train"][-1]) < 0.5 * trained[1]["train"][-1]


def test_a_resumed_run_that_finishes_is_final(resumed):
    _, _, _, history2, final = resumed
    assert history2["stopped"] is False
    assert "train_state" not in final and final["training"]["steps_done"] == 30


def test_resume_needs_a_resumable_checkpoint(tmp_path, trained, lorenz63, data):
    path = tmp_path / "final.pt"
    save_checkpoint(trained[0], path)
    with pytest.raises(CheckpointError, match="cannot resume"):
        train_model(lorenz63, data, _config(), resume_from=path)


# ------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------


def _outputs(model, seed=0):
    x = torch.randn(3, 11, 3, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x, torch.tensor([0.2, 0.5, 0.8])).numpy()


def test_checkpoint_round_trip(tmp_path, trained):
    model = trained[0]
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(model, path, training=model.training_info)
    back = load_checkpoint(path)
    np.testing.assert_array_equal(_outputs(back), _outputs(model))
    assert back.k == model.k and back.state_shape == model.state_shape and back.arch == model.arch
    assert back.system == model.system and back.schedule.eta == model.schedule.eta
    np.testing.assert_array_equal(back.mean.numpy(), model.mean.numpy())
    np.testing.assert_array_equal(back.scale.numpy(), model.scale.numpy())
    assert back.training_info["steps_done"] == 30
    assert not back.training                                     # ready for inference
    raw = read_checkpoint(path)
    assert raw["format"] == FORMAT and raw["k"] == 2 and raw["state_shape"] == [3]
    assert not list(tmp_path.glob("sub/*.tmp"))                   # written atomically


def test_half_precision_checkpoint_is_close_and_smaller(tmp_path, trained):
    model = trained[0]
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    save_checkpoint(model, full)
    save_checkpoint(model, half, half=True)
    assert half.stat().st_size < full.stat().st_size
    assert all(v.dtype == torch.float16 for v in read_checkpoint(half)["weights"].values() if v.is_floating_point())
    a, b = _outputs(model), _outputs(load_checkpoint(half))
    assert np.abs(a - b).max() < 2e-2 * max(1.0, np.abs(a).max())
    assert not np.array_equal(a, b)


def test_check_model_for_system(tmp_path, trained):
    model = trained[0]
    path = tmp_path / "m.pt"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path)
    check_model_for_system(loaded, make_system("lorenz63"))
    with pytest.raises(CheckpointError, match="trained for lorenz63, not for lorenz96"):
        check_model_for_system(loaded, make_system("lorenz96"))
    ring = build_model(make_system("lorenz96", n=40), 1, {"name": "ringconv", "width": 4, "depth": 1, "kernel": 3})
    with pytest.raises(CheckpointError, match="shape"):
        check_model_for_system(ring, make_system("lorenz96", n=20))


def test_bad_checkpoint_files(tmp_path, trained):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x02 definitely not a torch file" * 10)
    with pytest.raises(CheckpointError, match="cannot read model file") as info:
        load_checkpoint(corrupt)
    assert "\n" not in str(info.value)
    other = tmp_path / "other.pt"
    torch.save({"weights": {}, "k": 2}, other)
    with pytest.raises(CheckpointError, match="not an SDA Studio model checkpoint"):
        load_checkpoint(other)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(CheckpointError, match="not an SDA Studio model checkpoint"):
        load_checkpoint(tensor)
    # right format, weights of another architecture
    good = tmp_path / "good.pt"
    save_checkpoint(trained[0], good)
    payload = torch.load(good, weights_only=True)
    payload["arch"] = {"name": "resmlp", "width": 64, "depth": 1}
    torch.save(payload, tmp_path / "inconsistent.pt")
    with pytest.raises(CheckpointError, match="inconsistent"):
        load_checkpoint(tmp_path / "inconsistent.pt")
    # a pickled object that weights_only loading refuses
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "obj": object()}, evil)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(evil)


# ------------------------------------------------------------------------------------------
# preconditioned (clean-window) networks
# ------------------------------------------------------------------------------------------

PRECOND = {"name": "resmlp", "width": 32, "depth": 1, "precondition": True, "sigma_data": 0.7}


def _randomise(net):
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return net


def test_fresh_preconditioned_network_is_the_gaussian_denoiser():
    from sda_gui.core.diffusion.schedule import VPSchedule

    net = build_network(PRECOND, 5, (3,))
    torch.nn.init.zeros_(net.net.out[-1].weight)  # F = 0
    torch.nn.init.zeros_(net.net.out[-1].bias)
    schedule = VPSchedule()
    x = torch.randn(4, 5, 3)
    for t in (0.02, 0.5, 0.999):
        mu, sigma = schedule(torch.tensor(t))
        exact = sigma * x / (mu**2 * 0.7**2 + sigma**2)  # E[ε | x(t)] for data N(0, 0.7²)
        assert torch.allclose(net(x, torch.full((4,), t)), exact, atol=1e-5)


def test_preconditioned_loss_is_the_eps_loss_reweighted():
    from sda_gui.core.diffusion.schedule import VPSchedule

    net = _randomise(build_network(PRECOND, 5, (3,)))
    schedule = VPSchedule()
    x, eps = torch.randn(1, 5, 3), torch.randn(1, 5, 3)
    for t in (0.05, 0.5, 0.95):
        tt = torch.full((1,), t)
        mu, sigma = schedule(tt)
        c_out = sigma * 0.7 / torch.sqrt(mu**2 * 0.49 + sigma**2)
        eps_loss = (net(mu * x + sigma * eps, tt) - eps).square().mean()
        assert torch.allclose(net.dsm_loss(x, tt, eps), eps_loss * (sigma / (mu * c_out)) ** 2, rtol=1e-3)
    # near t = 1 the ε error vanishes while the clean-window loss stays O(1): the network keeps learning there
    tt = torch.full((1,), 0.999)
    mu, sigma = schedule(tt)
    assert (net(mu * x + sigma * eps, tt) - eps).square().mean() < 1e-4 < net.dsm_loss(x, tt, eps)


def test_preconditioned_training_estimates_sigma_data_and_round_trips(tmp_path, lorenz63, data):
    arch = {k: v for k, v in PRECOND.items() if k != "sigma_data"}
    model, history = train_model(lorenz63, data, _config(arch=arch, steps=40), checkpoint_path=tmp_path / "p.pt")
    expected = float(lorenz63.normalize(torch.as_tensor(data)).std())
    assert model.arch["sigma_data"] == pytest.approx(expected, abs=1e-3)
    assert history["train"][-1] < history["train"][0]
    loaded = load_checkpoint(tmp_path / "p.pt")
    x, t = torch.randn(2, 9, 3), torch.tensor(0.4)
    assert torch.allclose(loaded(x, t), model(x, t), atol=1e-6)
    x_hat, _ = loaded.denoise(x, torch.tensor(0.999))
    assert x_hat.abs().max() < 10  # bounded at high noise without any clipping


def test_default_unet_is_preconditioned():
    assert default_arch(make_system("kolmogorov", resolution=64, size=32)).get("precondition") is True


def _every_fourth_state(model, length):
    from sda_gui.core.observation import Observation, every_nth_state_mask

    mask = every_nth_state_mask(length, model.state_shape, every=4)
    return Observation(mask, np.zeros(mask.shape), 0.1)


def test_guided_call_flops_scale_with_the_work(trained):
    from sda_gui.bench import guided_call_flops

    model = trained[0]
    full = guided_call_flops(model, _every_fourth_state(model, 16), 4, "cpu", window_split=False)
    assert full > 0
    # 16 states make 12 windows of 5, 28 states make 24: twice the network work
    assert guided_call_flops(model, _every_fourth_state(model, 28), 4, "cpu", window_split=False) == \
        pytest.approx(2 * full, rel=0.05)
    assert guided_call_flops(model, _every_fourth_state(model, 16), 8, "cpu", window_split=False) == \
        pytest.approx(2 * full, rel=0.05)
    # states 0, 4, 8, 12 of 16 need the backward pass of windows 0, 2, 6, 10 only: the
    # forward of 12 windows plus the input-gradient pass (as costly as a forward) of 4
    # is 16/24 of the work
    split = guided_call_flops(model, _every_fourth_state(model, 16), 4, "cpu")
    assert split == pytest.approx(full * 16 / 24, rel=0.05)
    assert all(p.requires_grad for p in model.parameters())   # the count leaves the model as it was


def test_fine_tuning_starts_from_a_models_weights(trained, lorenz63, data, tmp_path):
    from sda_gui.core.diffusion.checkpoint import CheckpointError, save_checkpoint

    model = trained[0]
    path = tmp_path / "start.pt"
    save_checkpoint(model, path, model.training_info, half=True)   # a shipped model is stored in fp16
    # the window and architecture come from the model, whatever the config says
    config = _config(k=1, arch={"name": "resmlp", "width": 8, "depth": 1}, steps=1, lr=0.0, weight_decay=0.0)
    tuned, _ = train_model(lorenz63, data, config, init_from=path)
    assert tuned.k == model.k and tuned.arch == model.arch
    assert tuned.training_info["init_from"] == "start.pt"
    assert tuned.training_info["init_steps_done"] == model.training_info["steps_done"] and tuned.training_info["steps_done"] == 1
    for (name, a), b in zip(model.net.state_dict().items(), tuned.net.state_dict().values()):
        torch.testing.assert_close(b, a.half().float(), msg=name)   # lr 0: the weights it started from
    # it trains on from there: a step with a learning rate moves them
    moved, _ = train_model(lorenz63, data, _config(steps=2, lr=1e-2), init_from=path)
    assert any(not torch.equal(a, b) for a, b in zip(tuned.net.state_dict().values(), moved.net.state_dict().values()))
    with pytest.raises(CheckpointError, match="lorenz63"):
        other = make_system("lorenz96", n=8)
        train_model(other, other.simulate(2, 16, seed=0), _config(steps=1), init_from=path)


def test_validation_runs_at_every_val_every_steps(lorenz63, data):
    # 200 steps report every 2nd step; a validation interval of 25 falls between reports
    _, history = train_model(lorenz63, data, _config(steps=200, batch_size=16, val_every=25))
    validated = [s for s, v in zip(history["step"], history["val"]) if v is not None]
    assert validated == list(range(25, 201, 25))


def test_a_stop_between_reports_keeps_the_last_loss_and_a_stop_in_validation_is_prompt():
    from sda_gui.core.diffusion.training import TrainConfig, train_model
    from sda_gui.core.systems import make_system

    system = make_system("lorenz63", burn_in=16)
    data = system.simulate(4, 32, seed=0)
    calls = {"n": 0}

    def stop_after_three():
        calls["n"] += 1
        return calls["n"] > 3

    config = TrainConfig(k=1, arch={"name": "resmlp", "width": 16, "depth": 1}, steps=1000, batch_size=8,
                         val_every=1000)
    seen = []
    model, history = train_model(system, data, config, should_stop=stop_after_three,
                                 progress=lambda step, total, loss, val: seen.append(step))
    assert history["stopped"] and history["step"] == [3] and seen == [3]
    assert model.training_info["steps_done"] == 3

    # validation every step: the stop asked for inside it ends the run before the next batch
    calls["n"] = 0
    config = TrainConfig(k=1, arch={"name": "resmlp", "width": 16, "depth": 1}, steps=1000, batch_size=8,
                         val_every=1, val_fraction=0.5)
    model, history = train_model(system, data, config, should_stop=lambda: calls.__setitem__("n", calls["n"] + 1)
                                 or calls["n"] > 2)
    assert history["stopped"] and model.training_info["steps_done"] == 1
    assert history["val"][-1] is None  # the interrupted validation reports no loss
