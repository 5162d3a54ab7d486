"""User systems from plugin files and entry points: load, train, assimilate, refuse cleanly.

The example plugin ``examples/lorenz84.py`` goes the whole way through the command line
(``simulate``, ``train`` with ``--system-file``, ``assimilate`` with SDA and a plugin
operator, a classical method); a broken file of each kind gives one line; a model trained
on a plugin records the file and its sha256 and is refused when the file is gone.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from sda_gui.cli import main
from sda_gui.core.systems import SYSTEMS, make_system, system_from_config
from sda_gui.core.systems.plugins import PluginError, load_entry_points, load_system_file, source_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lorenz84.py"
TINY = ["--k", "1", "--width", "16", "--depth", "1", "--steps", "30", "--batch-size", "32", "--val-every", "30",
        "--device", "cpu", "--threads", "1", "-q"]


def cli(capfd, *args):
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def plugin_copy(tmp_path_factory):
    """The example copied to a folder of its own (a test may delete it)."""
    folder = tmp_path_factory.mktemp("plugin")
    path = folder / "lorenz84_copy.py"
    shutil.copy2(EXAMPLE, path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, plugin_copy):
    from sda_gui.core.observation import every_nth_state_mask, synthesize

    work = tmp_path_factory.mktemp("l84")
    code = main(["simulate", "--system", "lorenz84", "--system-file", str(plugin_copy), "--trajectories", "6",
                 "--length", "48", "--param", "burn_in=50", "--out", str(work / "data.h5"), "--threads", "1", "-q"])
    assert code == 0
    code = main(["train", "--data", str(work / "data.h5"), "--system-file", str(plugin_copy), *TINY,
                 "--out", str(work / "model.pt")])
    assert code == 0
    system = make_system("lorenz84")
    truth = system.simulate(1, 7, seed=2)[0].numpy()
    synthesize(truth, every_nth_state_mask(7, (3,), every=2), 0.2, seed=0).save(work / "obs.npz")
    synthesize(truth, np.ones((7, 1), bool), 0.2, seed=0, operator="plugin:energy").save(work / "energy.npz")
    return work


def test_the_example_registers_its_system_and_operator():
    names = load_system_file(EXAMPLE)
    assert names == ["lorenz84"] and "lorenz84" in SYSTEMS
    system = make_system("lorenz84", dt=0.02)
    source = source_of(system)
    assert source["kind"] == "file" and source["path"] == str(EXAMPLE.resolve()) and len(source["sha256"]) == 64
    assert system.config()["source"] == source
    again = system_from_config(json.loads(json.dumps(system.config())))
    assert again.params == system.params
    x = system.simulate(2, 5, seed=1)
    assert tuple(x.shape) == (2, 5, 3) and bool(x.isfinite().all())
    # a built-in system's config names no source (a config without one is a built-in's)
    assert "source" not in make_system("lorenz63").config()


def test_train_and_assimilate_a_plugin_system_from_the_cli(trained, plugin_copy, capfd):
    import torch

    stored = torch.load(trained / "model.pt", weights_only=True)
    assert stored["system"]["name"] == "lorenz84"
    assert stored["system"]["source"]["path"] == str(plugin_copy.resolve())
    for method, extra in (("sda", ["--model", trained / "model.pt", "--steps", "8"]), ("enkf", [])):
        out = trained / f"post-{method}.npz"
        code, _, err = cli(capfd, "assimilate", "--system", "lorenz84", "--system-file", plugin_copy,
                           "--observations", trained / "obs.npz", "--method", method, "--samples", "3", *extra,
                           "--out", out, "--threads", "1", "-q")
        assert code == 0, err
        with np.load(out) as f:
            assert f["samples"].shape == (3, 7, 3) and np.isfinite(f["samples"]).all()
            settings = json.loads(str(f["settings"]))
        assert settings["system_source"]["kind"] == "file"
    # a nonlinear plugin operator, with the file found again through the model's record
    code, _, err = cli(capfd, "assimilate", "--system", "lorenz84", "--observations", trained / "energy.npz",
                       "--samples", "2", "--model", trained / "model.pt", "--steps", "4", "--out",
                       trained / "post-energy.npz", "--threads", "1", "-q")
    assert code == 0, err


@pytest.mark.parametrize("text,match", [
    ("import not_a_module_anywhere\n", "cannot import bad.py: ModuleNotFoundError (line 1)"),
    ("def f(:\n", "SyntaxError at line 1"),
    ("x = 1\n", "defines no DynamicalSystem subclass"),
    ("from sda_gui.core.systems import DynamicalSystem\nclass A(DynamicalSystem):\n    name = 'half'\n",
     "lacks normalization, params, prior, state_shape, transition, variable_names"),
    ("from sda_gui.core.systems.lorenz63 import Lorenz63\nclass L(Lorenz63):\n    name = 'lorenz63'\n",
     "is a built-in system's"),
])
def test_a_broken_plugin_file_is_one_line(tmp_path, capfd, text, match):
    bad = tmp_path / "bad.py"
    bad.write_text(text)
    with pytest.raises(PluginError, match=match.replace("(", r"\(").replace(")", r"\)")):
        load_system_file(bad)
    code, _, err = cli(capfd, "simulate", "--system", "half", "--system-file", bad, "--out", tmp_path / "x.h5")
    assert code == 2 and match in one_line(err) and not (tmp_path / "x.h5").exists()


def test_a_missing_plugin_file_is_refused_with_its_path(trained, plugin_copy, capfd, tmp_path):
    model = tmp_path / "model.pt"
    shutil.copy2(trained / "model.pt", model)
    hidden = plugin_copy.with_suffix(".hidden")
    plugin_copy.rename(hidden)
    SYSTEMS.pop("lorenz84", None)           # as in a fresh process that never loaded it
    try:
        code, _, err = cli(capfd, "assimilate", "--system", "lorenz84", "--observations", trained / "obs.npz",
                           "--samples", "2", "--model", model, "--out", tmp_path / "p.npz")
        line = one_line(err)
        assert code == 2 and "lorenz84" in line and str(plugin_copy.resolve()) in line and "--system-file" in line
        code, _, err = cli(capfd, "simulate", "--system", "lorenz84", "--out", tmp_path / "x.h5")
        assert code == 2 and "--system-file" in one_line(err)
    finally:
        hidden.rename(plugin_copy)
    load_system_file(plugin_copy)


def test_entry_points_register_installed_systems(tmp_path, monkeypatch):
    package = tmp_path / "l84pkg"
    package.mkdir()
    (package / "__init__.py").write_text(EXAMPLE.read_text().replace('name = "lorenz84"', 'name = "lorenz84ep"'))
    info = tmp_path / "l84pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: l84pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sda_gui.systems]\nlorenz84ep = l84pkg:Lorenz84\n"
                                           "broken = l84pkg_missing:Nothing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        names = load_entry_points(force=True)
        assert names == ["lorenz84ep"]
        system = make_system("lorenz84ep")
        source = source_of(system)
        assert source["kind"] == "entry_point" and source["package"] == "l84pkg" and source["version"] == "1.0"
        from sda_gui.core.systems.plugins import entry_point_errors

        assert any("broken" in line and "l84pkg_missing" in line for line in entry_point_errors())
    finally:
        SYSTEMS.pop("lorenz84ep", None)
        sys.modules.pop("l84pkg", None)
