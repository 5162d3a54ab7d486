"""Own data in the app: a trajectory file that names no system becomes a data system.

Files of 5 made-up variables (``.npy``, HDF5 with several arrays, a CF-style netCDF made
with xarray) load as a data system with the file's name, variable names and Δt and a
normalisation computed here from the data; bad files leave the state untouched with one
line; the truth and posterior samples export to netCDF and open in xarray with their
coordinates.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_dialogs")


@pytest.fixture
def no_dialogs(window):
    """A user's load asks questions: here they are answered by each test, never by a modal dialog."""
    sp = window.system_panel
    sp.confirm = lambda text: True
    sp.ask_variable = lambda names: pytest.fail(f"unexpected question: which of {names}")
    sp.ask_dt = lambda default: pytest.fail("unexpected question: Δt")


def _data(m=3, t=40, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(m, t, n)) * np.arange(1, n + 1) + 10 * np.arange(n)).astype(np.float32)


def _snapshot(window):
    st = window.state
    return st.system, st.truth.copy(), st.mask.copy(), st.dataset


def _unchanged(window, snap) -> bool:
    system, truth, mask, dataset = snap
    st = window.state
    return st.system is system and np.array_equal(st.truth, truth) and np.array_equal(st.mask, mask) \
        and st.dataset is dataset


def test_a_file_naming_no_system_becomes_a_data_system(window, tmp_path):
    from sda_gui.core import metrics
    from sda_gui.core.methods import run_method
    from sda_gui.core.methods.base import MethodError
    from sda_gui.core.observation import synthesize

    sp, st, tp = window.system_panel, window.state, window.training_panel
    x = _data()
    np.save(tmp_path / "station.npy", x)
    asked = []
    sp.ask_dt = lambda default: asked.append(default) or 0.25
    messages = []
    st.message.connect(messages.append)
    assert sp.load_file(str(tmp_path / "station.npy"), ask=True), sp.error.text()
    s = st.system
    assert asked == [1.0]
    assert not s.has_dynamics and s.name == "station" and s.state_shape == (5,) and s.dt == 0.25
    assert s.variable_names == ["x1", "x2", "x3", "x4", "x5"]
    mean, scale = s.normalization()
    assert np.allclose(mean.numpy(), x.reshape(-1, 5).mean(0), atol=1e-4)
    assert np.allclose(scale.numpy(), x.reshape(-1, 5).std(0), rtol=1e-4)
    assert np.array_equal(st.truth, x[0]) and st.dataset.shape == (3, 40, 5)
    assert any("data of its own" in m and "station" in m for m in messages)
    assert not any("Lorenz" in m for m in messages)
    # the panel shows it by name and cannot simulate it
    assert sp.system_name == "station" and "station" in sp.system_combo.currentText()
    assert not sp.simulate_button.isEnabled() and not sp.simulate()
    assert "data system" in sp.error.text() and "Δt" not in sp.param_names
    assert "Station" in sp.info.text() or "station" in sp.info.text()
    # training defaults to (and can only use) the loaded data
    assert tp.data_combo.currentData() == "loaded" and tp.data_combo.findData("simulate") < 0
    # no transition: the physical residual is skipped, a classical method is refused in one line
    samples = np.stack([x[0], x[0] + 0.1])
    assert np.isnan(metrics.physical_residual(samples, s))
    assert "physical_residual" not in metrics.summary(samples, truth=x[0], system=s)
    with pytest.raises(MethodError, match="data system") as err:
        run_method("enkf", s, synthesize(x[0], np.ones(x[0].shape, bool), 0.1), 4)
    assert "\n" not in str(err.value)
    # the Compare tab offers only the methods that need no transition
    checks = window.compare_panel.method_checks
    assert checks["sda"].isEnabled() and not checks["enkf"].isEnabled() and not checks["letkf"].isEnabled()
    # another built-in system can be picked and simulated again
    sp.set_system_name("lorenz96")
    assert sp.simulate_button.isEnabled()


def test_a_file_naming_its_system_keeps_it(window, tmp_path):
    from sda_gui.core.datasets import save_trajectories
    from sda_gui.core.systems import make_system

    l63 = make_system("lorenz63", rho=25.0)
    save_trajectories(tmp_path / "l63.h5", l63.simulate(2, 20, seed=1), l63)
    window.system_panel.ask_dt = lambda default: pytest.fail("a named system has its own Δt")
    assert window.system_panel.load_file(str(tmp_path / "l63.h5"), ask=True)
    assert window.state.system.name == "lorenz63" and window.state.system.rho == 25.0


def test_hdf5_with_several_arrays_asks_which_one(window, tmp_path):
    import h5py

    sp, st = window.system_panel, window.state
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["temperature"] = _data(2, 30, 4)
        f["wind"] = _data(2, 30, 6, seed=1)
        f["wind"].attrs["dt"] = 0.5
    snap = _snapshot(window)
    offered = []
    sp.ask_variable = lambda names: offered.append(list(names)) or None      # cancelled
    assert not sp.load_file(str(tmp_path / "two.h5"), ask=True)
    assert offered == [["temperature", "wind"]] and _unchanged(window, snap) and not sp.error.text()
    sp.ask_variable = lambda names: "wind"
    sp.ask_dt = lambda default: pytest.fail("the array states its dt")
    assert sp.load_file(str(tmp_path / "two.h5"), ask=True), sp.error.text()
    assert st.system.state_shape == (6,) and st.system.dt == 0.5
    assert st.system.params["origin"]["variable"] == "wind"


def test_a_cf_netcdf_file_from_xarray_loads_with_its_names_and_time_step(window, tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    x = _data(2, 24, 5)
    ds = xr.Dataset({"obs": (("member", "time", "station"), x, {"units": "K", "long_name": "temperature"})},
                    coords={"time": ("time", np.arange(24) * 0.1), "station": ["a", "b", "c", "d", "e"]},
                    attrs={"title": "Alpine stations"})
    ds.to_netcdf(tmp_path / "alps.nc", engine="h5netcdf")
    sp = window.system_panel
    sp.ask_dt = lambda default: pytest.fail("the time coordinate gives Δt")
    assert sp.load_file(str(tmp_path / "alps.nc"), ask=True), sp.error.text()
    s = window.state.system
    assert s.name == "Alpine_stations" and s.title == "Alpine stations" and s.dt == pytest.approx(0.1)
    assert s.variable_names == ["a", "b", "c", "d", "e"] and s.units == "K"
    assert np.array_equal(window.state.dataset, x)


@pytest.mark.parametrize("case", ["nan", "short", "beyond_float32", "one_dimensional", "garbage"])
def test_a_bad_file_is_one_line_and_changes_nothing(window, tmp_path, case):
    sp = window.system_panel
    path = tmp_path / f"{case}.npy"
    if case == "nan":
        x = _data()
        x[1, 5, 2] = np.nan
        np.save(path, x)
    elif case == "short":
        np.save(path, _data(t=2))
    elif case == "beyond_float32":
        np.save(path, _data().astype(np.float64) * 1e300)
    elif case == "one_dimensional":
        np.save(path, np.zeros(10, np.float32))
    else:
        path.write_bytes(b"not numpy at all")
    snap = _snapshot(window)
    sp.ask_dt = lambda default: pytest.fail("a bad file is refused before any question")
    assert not sp.load_file(str(path), ask=True)
    text = sp.error.text()
    assert text and "\n" not in text and path.name in text
    assert _unchanged(window, snap)


def test_the_truth_and_the_posterior_export_to_netcdf(window, tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    from sda_gui.app.state import Results
    from sda_gui.core.observation import synthesize

    st = window.state
    x = _data(2, 30, 5)
    np.save(tmp_path / "station.npy", x)
    assert window.system_panel.load_file(str(tmp_path / "station.npy"), dt=0.5)
    assert not window.export_samples(str(tmp_path / "none.nc")) and "assimilate first" in window.last_error
    samples = np.stack([x[0] + 0.1 * k for k in range(4)])
    obs = synthesize(x[0], np.ones(x[0].shape, bool), 0.1)
    st.set_results(Results(samples=samples, observation=obs, truth=st.truth,
                           settings={"method": "sda", "steps": 4}))
    assert window.export_samples(str(tmp_path / "post.nc")), window.last_error
    with xr.open_dataset(tmp_path / "post.nc", engine="h5netcdf") as ds:
        assert ds["samples"].dims == ("sample", "time", "variable")
        assert list(ds["sample"].values) == [0, 1, 2, 3]
        assert np.allclose(ds["time"].values, np.arange(30) * 0.5)
        assert list(ds["variable"].values) == ["x1", "x2", "x3", "x4", "x5"]
        assert np.allclose(ds["samples"].values, samples)
        assert ds.attrs["system"] == "station" and "sda_gui_version" in ds.attrs
    assert window.export_truth(str(tmp_path / "truth.nc")), window.last_error
    with xr.open_dataset(tmp_path / "truth.nc", engine="h5netcdf") as ds:
        assert ds["trajectories"].dims == ("trajectory", "time", "variable")
        assert np.allclose(ds["trajectories"].values[0], x[0])
    # and the exported truth loads back as the same data system (its metadata names it)
    assert window.system_panel.load_file(str(tmp_path / "truth.nc"))
    assert st.system.name == "station" and st.system.dt == 0.5
    assert window.export_samples(str(tmp_path / "post.npz")), window.last_error
    with np.load(tmp_path / "post.npz") as f:
        assert f["samples"].shape == (4, 30, 5)


def test_a_scripted_load_never_opens_a_dialog(window, tmp_path):
    import h5py

    sp, st = window.system_panel, window.state
    np.save(tmp_path / "plain.npy", _data())
    messages = []
    st.message.connect(messages.append)
    assert sp.load_file(str(tmp_path / "plain.npy"))           # the fixture fails on any question
    assert st.system.dt == 1.0 and any("no time step" in m for m in messages)
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"] = _data(2, 30, 4)
        f["b"] = _data(2, 30, 6)
    assert not sp.load_file(str(tmp_path / "two.h5"))
    assert "a, b" in sp.error.text() and "\n" not in sp.error.text()
    assert sp.load_file(str(tmp_path / "two.h5"), variable="b") and st.system.state_shape == (6,)


def test_a_session_keeps_the_data_system(window, tmp_path):
    st = window.state
    x = _data()
    np.save(tmp_path / "station.npy", x)
    assert window.system_panel.load_file(str(tmp_path / "station.npy"), dt=0.5)
    before = st.system.params
    assert window.save_session(str(tmp_path / "s.sda")), window.last_error
    assert window.new_scenario() and st.system.name == "lorenz96"
    assert window.system_panel.system_combo.findData("station") < 0          # the data system left the choice
    assert window.open_session(str(tmp_path / "s.sda")), window.last_error
    assert not st.system.has_dynamics and st.system.name == "station" and st.system.params == before
    assert window.system_panel.system_name == "station" and not window.system_panel.simulate_button.isEnabled()
    assert np.array_equal(st.dataset, x)


def test_training_from_the_app_uses_the_loaded_data(window, qtbot, tmp_path):
    tp = window.training_panel
    x = _data(4, 24, 5)
    np.save(tmp_path / "station.npy", x)
    assert window.system_panel.load_file(str(tmp_path / "station.npy"), dt=0.5)
    tp.k_spin.setValue(1)
    tp.width_spin.setValue(8)
    tp.depth_spin.setValue(1)
    tp.batch_spin.setValue(8)
    tp.steps_spin.setValue(20)
    with qtbot.waitSignal(tp.trainingEnded, timeout=120_000) as blocker:
        assert tp.train(), tp.error.text()
    assert blocker.args == ["finished"], tp.error.text()
    config = tp.model.system
    assert config["name"] == "station" and config["params"]["dt"] == 0.5
    assert np.allclose(config["params"]["mean"], x.reshape(-1, 5).mean(0), atol=1e-4)
