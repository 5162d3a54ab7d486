"""netCDF round trips, data systems from files that name no system, the script API, ``observe`` and provenance.

A file we write opens in xarray with its coordinates and reads back the same; a CF-style
file made by xarray (two variables, dates as time) trains a model as a data system whose
name, variables, Δt and normalisation come from the file, and assimilates with SDA while
the classical methods refuse it in one line; the five-line notebook workflow runs; and
every output file carries its provenance.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sda_gui.cli import main
from sda_gui.core.datasets import DatasetError, load_trajectories, save_trajectories
from sda_gui.core.observation import Observation, synthesize
from sda_gui.core.systems import make_system

xr = pytest.importorskip("xarray")
pytest.importorskip("h5netcdf")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--k", "1", "--width", "16", "--depth", "1", "--steps", "20", "--batch-size", "16", "--val-every", "20",
        "--device", "cpu", "--threads", "1", "-q"]


def cli(capfd, *args):
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def test_trajectories_round_trip_through_netcdf_with_coordinates(tmp_path):
    system = make_system("kolmogorov", size=8, resolution=16, burn_in=0)
    x = torch.randn(2, 3, 2, 8, 8)
    save_trajectories(tmp_path / "k.nc", x, system, {"seed": 4})
    with xr.open_dataset(tmp_path / "k.nc", engine="h5netcdf") as ds:
        var = ds["trajectories"]
        assert var.dims == ("trajectory", "time", "channel", "x", "y")
        assert list(ds["channel"].values) == ["u", "v"]
        np.testing.assert_allclose(ds["time"].values, [0.0, system.dt, 2 * system.dt])
        np.testing.assert_allclose(ds["x"].values, 2 * np.pi * np.arange(8) / 8)
        assert var.attrs["long_name"] and "units" in var.attrs
        assert ds.attrs["system"] == "kolmogorov" and ds.attrs["param_size"] == 8
        assert json.loads(ds.attrs["params"]) == system.params
    arr, meta = load_trajectories(tmp_path / "k.nc", (2, 8, 8))
    np.testing.assert_allclose(arr, x.numpy(), rtol=1e-6)
    assert meta["system"] == "kolmogorov" and meta["params"] == system.params and meta["seed"] == 4
    assert meta["dt"] == pytest.approx(system.dt)


def test_observations_and_posteriors_in_netcdf(tmp_path, capfd):
    truth = make_system("lorenz63").simulate(1, 32, seed=0)[0].numpy()   # ≥ the shipped window (27)
    mask = np.zeros((32, 3), bool)
    mask[::2, 0] = True
    obs = synthesize(truth, mask, 0.5, seed=1)
    obs.save(tmp_path / "obs.nc")
    back = Observation.load(tmp_path / "obs.nc")
    assert np.array_equal(back.mask, obs.mask) and back.std == 0.5 and back.operator is None
    np.testing.assert_allclose(back.observed_values(), obs.observed_values(), rtol=1e-6)
    code, _, err = cli(capfd, "assimilate", "--system", "lorenz63", "--observations", tmp_path / "obs.nc",
                       "--samples", 3, "--steps", 4, "--out", tmp_path / "post.nc", "--threads", 1, "-q")
    assert code == 0, err
    with xr.open_dataset(tmp_path / "post.nc", engine="h5netcdf") as ds:
        assert ds["samples"].dims == ("sample", "time", "variable") and ds["samples"].shape == (3, 32, 3)
        assert list(ds["variable"].values) == ["x", "y", "z"]
        record = json.loads(ds.attrs["meta"])["provenance"]
    assert record["observation"]["path"] == str((tmp_path / "obs.nc").resolve())
    assert record["model"]["path"].endswith("lorenz63.pt") and len(record["model"]["sha256"]) == 64
    assert record["sda_gui_version"] and record["torch_version"] == torch.__version__
    assert record["system"]["name"] == "lorenz63" and record["seeds"] == {"seed": 0}


@pytest.fixture
def cf_file(tmp_path):
    """A CF-style file from elsewhere: two variables, station names, daily dates."""
    rng = np.random.default_rng(0)
    t = np.arange(120)
    sst = (20 + np.cumsum(rng.standard_normal((120, 4)), 0) * 0.1 + np.sin(t / 8)[:, None]).astype("f4")
    ds = xr.Dataset({"sst": (("time", "station"), sst, {"units": "degC", "long_name": "sea surface temperature"}),
                     "salinity": (("time", "station"), sst / 2, {"units": "psu"})},
                    coords={"time": ("time", np.datetime64("2001-01-01") + t.astype("timedelta64[D]"), {"axis": "T"}),
                            "station": ["north", "east", "south", "west"]},
                    attrs={"title": "Coastal stations", "Conventions": "CF-1.8"})
    path = tmp_path / "coast.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    return path, sst


def test_a_cf_file_trains_a_data_system_and_sda_assimilates_it(cf_file, tmp_path, capfd):
    path, sst = cf_file
    code, _, err = cli(capfd, "train", "--data", path, *TINY, "--out", tmp_path / "m.pt")
    assert code == 2 and "several variables (sst, salinity)" in err and "--variable" in err
    code, _, err = cli(capfd, "train", "--data", path, "--variable", "sst", *TINY, "--out", tmp_path / "m.pt")
    assert code == 0, err
    stored = torch.load(tmp_path / "m.pt", weights_only=True)
    cfg = stored["system"]
    assert cfg["name"] == "Coastal_stations" and cfg["source"]["kind"] == "data"
    assert cfg["params"]["variables"] == ["north", "east", "south", "west"]
    assert cfg["params"]["dt"] == 86400.0                       # daily dates, in seconds
    np.testing.assert_allclose(cfg["params"]["mean"], sst.mean(0), rtol=1e-5)
    np.testing.assert_allclose(cfg["params"]["scale"], sst.std(0), rtol=1e-4)
    assert stored["provenance"]["data"]["path"] == str(path.resolve())
    system = make_system(cfg["name"], **cfg["params"])         # the config alone rebuilds it
    assert system.state_shape == (4,) and not system.has_dynamics

    obs = synthesize(sst[:9], np.ones((9, 4), bool) & (np.arange(9) % 3 == 0)[:, None], 0.2, seed=0)
    obs.save(tmp_path / "obs.npz")
    code, _, err = cli(capfd, "assimilate", "--system", cfg["name"], "--model", tmp_path / "m.pt", "--observations",
                       tmp_path / "obs.npz", "--samples", 2, "--steps", 4, "--out", tmp_path / "p.npz", "--threads", 1,
                       "-q")
    assert code == 0, err
    from sda_gui.core.methods import MethodError, run_method

    with pytest.raises(MethodError, match="data system"):
        run_method("enkf", system, obs, 4)


def test_hdf5_and_npz_with_any_names(tmp_path):
    import h5py

    data = np.random.default_rng(1).standard_normal((2, 12, 3)).astype("f4")
    with h5py.File(tmp_path / "any.h5", "w") as f:
        f.create_dataset("run/state", data=data).attrs["dt"] = 0.5
        f.create_dataset("forcing", data=data[..., 0])
    with pytest.raises(DatasetError, match=r"several arrays \(forcing, run/state\)"):
        load_trajectories(tmp_path / "any.h5")
    arr, meta = load_trajectories(tmp_path / "any.h5", variable="run/state")
    assert arr.shape == (2, 12, 3) and meta["dt"] == 0.5 and meta["variable"] == "run/state"
    np.savez(tmp_path / "one.npz", whatever=data)
    assert load_trajectories(tmp_path / "one.npz")[0].shape == (2, 12, 3)
    bad = data.astype("f8")
    bad[0, 0, 0] = 1e39
    np.save(tmp_path / "big.npy", bad)
    with pytest.raises(DatasetError, match="float32's range"):
        load_trajectories(tmp_path / "big.npy")
    with pytest.raises(DatasetError, match="need at least 13 states, got 12"):
        load_trajectories(tmp_path / "one.npz", min_length=13)      # a window longer than the data


def test_the_five_line_notebook_workflow_and_observe(tmp_path, capfd):
    import sda_gui as sda

    system = sda.system("lorenz96")
    truth = sda.simulate(system, n=1, length=17, seed=1)[0]
    obs = sda.observe(truth, every_states=4, every_variables=2, std=1.0, seed=2)
    result = sda.assimilate(system, obs, method="sda", n=6, steps=16)
    scores = sda.scores(result, truth)

    assert obs.count == 5 * 20 and result.members.shape == (6, 17, 40)
    assert result.mean.shape == (17, 40) and (result.spread > 0).all()
    assert np.isfinite(scores["rmse"]) and np.isfinite(scores["crps"]) and "residual_std" in scores
    ds = result.to_xarray()
    assert ds["samples"].dims == ("sample", "time", "variable") and ds.sizes["sample"] == 6
    assert ds["mean"].dims == ("time", "variable") and json.loads(ds.attrs["meta"])["model"]["sha256"]
    sparse = sda.observe(truth, density=0.25, std=0.5, seed=3)
    assert 0 < sparse.count < 17 * 40

    save_trajectories(tmp_path / "truth.h5", truth[None], system)
    code, out, err = cli(capfd, "observe", "--truth", tmp_path / "truth.h5", "--every-states", 4,
                         "--every-variables", 2, "--std", 1.0, "--seed", 2, "--out", tmp_path / "obs.npz", "-q")
    assert code == 0, err
    made = Observation.load(tmp_path / "obs.npz")
    assert np.array_equal(made.mask, obs.mask) and np.allclose(made.observed_values(), obs.observed_values())
    code, _, err = cli(capfd, "observe", "--truth", tmp_path / "truth.h5", "--every-states", 100, "--density", 0.01,
                       "--out", tmp_path / "none.npz")
    assert code == 2 and "observes nothing" in err and not (tmp_path / "none.npz").exists()


def test_simulations_and_models_record_their_provenance(tmp_path, capfd):
    code, _, err = cli(capfd, "simulate", "--system", "lorenz63", "--trajectories", 2, "--length", 16, "--param",
                       "burn_in=10", "--seed", 5, "--out", tmp_path / "d.h5", "--threads", 1, "-q")
    assert code == 0, err
    from sda_gui.core.datasets import read_metadata

    record = read_metadata(tmp_path / "d.h5")["provenance"]
    assert record["seeds"] == {"seed": 5} and record["system"]["params"]["burn_in"] == 10
    assert record["settings"]["trajectories"] == 2 and record["torch_version"] == torch.__version__
    code, _, err = cli(capfd, "train", "--data", tmp_path / "d.h5", *TINY, "--seed", 3, "--out", tmp_path / "m.pt")
    assert code == 0, err
    from sda_gui.core.diffusion.checkpoint import load_checkpoint

    model = load_checkpoint(tmp_path / "m.pt")
    assert model.provenance["data"]["path"] == str((tmp_path / "d.h5").resolve())
    assert model.provenance["seeds"]["seed"] == 3 and model.provenance["settings"]["steps"] == 20
    assert model.provenance["sda_gui_version"] and model.provenance["system"]["name"] == "lorenz63"
