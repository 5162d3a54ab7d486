"""Dynamical systems (Lorenz-63, Lorenz-96) and trajectory datasets on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sda_gui.core.datasets import DatasetError, check_trajectories, load_trajectories, save_trajectories
from sda_gui.core.systems import SYSTEMS, Lorenz63, Lorenz96, make_system


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def l63_long():
    return make_system("lorenz63").simulate(64, 256, seed=0)


@pytest.fixture(scope="module")
def l96_long():
    return make_system("lorenz96").simulate(16, 256, seed=0)


def test_registry():
    assert {"lorenz63", "lorenz96"} <= set(SYSTEMS)
    assert isinstance(make_system("lorenz63"), Lorenz63)
    l96 = make_system("lorenz96", n=20, forcing=5.0)
    assert isinstance(l96, Lorenz96) and l96.state_shape == (20,) and l96.forcing == 5.0
    with pytest.raises(ValueError, match="unknown system 'lorenz84'"):
        make_system("lorenz84")
    with pytest.raises(ValueError, match="at least 4"):
        make_system("lorenz96", n=3)


@pytest.mark.parametrize("name,shape", [("lorenz63", (3,)), ("lorenz96", (40,))])
def test_interface_and_config_round_trip(name, shape):
    system = make_system(name)
    assert system.state_shape == shape
    assert len(system.variable_names) == shape[0]
    mean, scale = system.normalization()
    assert torch.broadcast_shapes(mean.shape, shape) == shape and (scale > 0).all()
    cfg = system.config()
    assert cfg["name"] == name
    json.dumps(cfg)                                              # it travels in checkpoints and files
    again = make_system(cfg["name"], **cfg["params"])
    assert again.params == system.params
    x = torch.randn(5, *shape)
    np.testing.assert_allclose(system.denormalize(system.normalize(x)).numpy(), x.numpy(), rtol=1e-5, atol=1e-5)


def test_paper_settings_of_lorenz63():
    s = make_system("lorenz63")
    p = s.params
    assert (p["sigma"], p["rho"], p["dt"], p["burn_in"]) == (10.0, 28.0, 0.025, 1024)
    assert p["beta"] == pytest.approx(8 / 3)
    assert s.transition_std() == pytest.approx(0.025 ** 0.5)
    mean, scale = s.normalization()
    assert mean.tolist() == [0.0, 0.0, 25.0]
    np.testing.assert_allclose(scale.numpy(), [8.0, 9.0, 8.6], rtol=1e-6)
    # the prior N([0, 0, 25], [[64, 50, 0], [50, 81, 0], [0, 0, 75]])
    x = s.prior(20000, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(x.mean(0).numpy(), [0, 0, 25], atol=0.3)
    np.testing.assert_allclose(np.cov(x.numpy().T), [[64, 50, 0], [50, 81, 0], [0, 0, 75]], atol=3.0)


def test_rk4_step_of_lorenz63_without_noise():
    s = make_system("lorenz63")
    x = torch.tensor([[1.0, 2.0, 20.0]], dtype=torch.float64)
    # a fine explicit Euler integration over the same dt agrees with one RK4 step
    y = x.clone()
    for _ in range(2000):
        y = y + 0.025 / 2000 * s.vector_field(y)
    np.testing.assert_allclose(s.transition(x).numpy(), y.numpy(), rtol=1e-3)
    g = torch.Generator().manual_seed(0)
    noisy = s.transition(x.repeat(4000, 1), g) - s.transition(x)
    assert abs(noisy.std().item() - 0.025 ** 0.5) < 0.01


@pytest.mark.parametrize("name,shape", [("lorenz63", (3,)), ("lorenz96", (40,))])
def test_simulate_shapes_and_seeds(name, shape):
    system = make_system(name, burn_in=32)
    a = system.simulate(3, 10, seed=1)
    b = system.simulate(3, 10, seed=1)
    c = system.simulate(3, 10, seed=2)
    assert a.shape == (3, 10, *shape)
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a[0], a[1])                      # trajectories of a batch differ


def test_simulate_reports_progress_and_stops():
    system = make_system("lorenz63", burn_in=8)
    seen = []
    system.simulate(2, 5, seed=0, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (13, 13)
    with pytest.raises(InterruptedError):
        system.simulate(2, 5, seed=0, should_stop=lambda: True)


def test_lorenz63_stays_on_the_attractor(l63_long):
    x = l63_long
    assert torch.isfinite(x).all()
    assert x[..., 0].abs().max() < 30 and x[..., 1].abs().max() < 40
    assert 0 < x[..., 2].min() and x[..., 2].max() < 60
    assert abs(x[..., 2].mean().item() - 23.5) < 2.0
    assert x[..., 0].mean().abs() < 2.0                        # the two wings are visited equally
    # normalised states are O(1), as the score network expects
    z = make_system("lorenz63").normalize(x)
    assert z.abs().mean() < 1.5 and (z.std((0, 1)) - 1).abs().max() < 0.35


def test_lorenz96_climatology_matches_its_normalisation(l96_long):
    x = l96_long
    mean, scale = make_system("lorenz96").normalization()
    assert abs(x.mean().item() - 2.3) < 0.3 and abs(x.std().item() - 3.6) < 0.3
    assert abs(x.mean().item() - mean[0].item()) < 0.3
    assert abs(x.std().item() - scale[0].item()) < 0.3
    # a ring: every variable has the same statistics
    assert (x.mean((0, 1)) - x.mean()).abs().max() < 1.0


def test_lorenz96_noise_option():
    quiet = make_system("lorenz96", burn_in=0)
    noisy = make_system("lorenz96", burn_in=0, noise=1.0)
    x = quiet.prior(4, torch.Generator().manual_seed(0))
    assert torch.equal(quiet.transition(x, torch.Generator().manual_seed(1)), quiet.transition(x))
    diff = noisy.transition(x.repeat(500, 1), torch.Generator().manual_seed(1)) - noisy.transition(x.repeat(500, 1))
    assert abs(diff.std().item() - 0.05 ** 0.5) < 0.01


# ------------------------------------------------------------------------------------------
# datasets
# ------------------------------------------------------------------------------------------


def test_dataset_round_trip_with_metadata(tmp_path):
    system = make_system("lorenz96", n=8, burn_in=4)
    x = system.simulate(3, 6, seed=0)
    path = tmp_path / "nested" / "data.h5"
    save_trajectories(path, x, system, {"seed": 0, "note": "test"})
    arr, meta = load_trajectories(path)
    assert arr.dtype == np.float32 and arr.shape == (3, 6, 8)
    np.testing.assert_array_equal(arr, x.numpy())
    assert meta["system"] == "lorenz96" and meta["params"] == system.params
    assert meta["seed"] == 0 and meta["note"] == "test"
    assert make_system(meta["system"], **meta["params"]).params == system.params
    arr2, meta2 = load_trajectories(path, state_shape=(8,))
    np.testing.assert_array_equal(arr2, arr)
    save_trajectories(tmp_path / "bare.h5", np.zeros((2, 3, 4)))
    assert load_trajectories(tmp_path / "bare.h5")[1] == {}


def test_numpy_imports(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 7, 3))
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", trajectories=x, other=np.zeros(3))
    np.savez(tmp_path / "c.npz", x)                            # a single unnamed array
    np.save(tmp_path / "single.npy", x[0].astype(np.float64))  # one trajectory (T, *s)
    for name in ("a.npy", "b.npz", "c.npz"):
        arr, meta = load_trajectories(tmp_path / name, state_shape=(3,))
        np.testing.assert_allclose(arr, x, rtol=1e-6)
        assert arr.dtype == np.float32 and meta == {}
    arr, _ = load_trajectories(tmp_path / "single.npy", state_shape=(3,))
    assert arr.shape == (1, 7, 3)
    assert load_trajectories(tmp_path / "single.npy")[0].shape == (1, 7, 3)


def test_bad_dataset_files(tmp_path):
    def expect(path, match, **kw):
        with pytest.raises(DatasetError, match=match) as info:
            load_trajectories(path, **kw)
        assert "\n" not in str(info.value)

    expect(tmp_path / "absent.h5", "not found")
    nan = np.zeros((2, 5, 3))
    nan[1, 2, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    expect(tmp_path / "nan.npy", "NaN or infinity")
    np.save(tmp_path / "shape.npy", np.zeros((2, 5, 4)))
    expect(tmp_path / "shape.npy", "expected trajectories of shape", state_shape=(3,))
    np.save(tmp_path / "flat.npy", np.zeros(5))
    expect(tmp_path / "flat.npy", "expected trajectories of shape")
    np.save(tmp_path / "one_state.npy", np.zeros((2, 1, 3)))
    expect(tmp_path / "one_state.npy", "at least 2 states")
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    expect(tmp_path / "text.npy", "must be numbers")
    (tmp_path / "data.csv").write_text("1,2,3\n")
    expect(tmp_path / "data.csv", "unsupported file type")
    (tmp_path / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n not really")
    expect(tmp_path / "corrupt.h5", "cannot read corrupt.h5")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 broken zip")
    expect(tmp_path / "corrupt.npz", "cannot read corrupt.npz")
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    expect(tmp_path / "corrupt.npy", "cannot read corrupt.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 5, 3)), b=np.zeros((2, 5, 3)))
    expect(tmp_path / "two.npz", r"holds several arrays \(a, b\); choose one with --variable NAME")
    import h5py

    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset("other", data=np.zeros(3))
    expect(tmp_path / "empty.h5", r"no numeric array of at least 2 dimensions \(found other\)")
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object))
    expect(tmp_path / "pickled.npy", "cannot read")


def test_check_trajectories_accepts_integers():
    arr = check_trajectories(np.arange(12).reshape(2, 2, 3), state_shape=(3,))
    assert arr.dtype == np.float32 and arr.shape == (2, 2, 3)
