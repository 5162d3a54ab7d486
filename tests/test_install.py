"""A real, non-editable install: the wheel carries the shipped models and ``sda`` runs from it.

The wheel is built once per session from a copy of the sources (pyproject, README, LICENSE,
``sda_gui/``) in a temporary folder, so the build writes nothing into the working tree.
``pip wheel --no-deps --no-build-isolation`` downloads nothing. The slow test installs it
into a fresh virtual environment that sees this environment's packages (torch, numpy, …)
but not its editable ``sda_gui``, and runs one assimilation with the shipped model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "sda_gui", src / "sda_gui",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*.tmp*"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "-w", str(out), "--no-deps",
                           "--no-build-isolation", "--no-index", "-q"], capture_output=True, text=True, timeout=600,
                          cwd=out)
    assert done.returncode == 0, done.stderr[-2000:]
    wheels = sorted(out.glob("sda_gui-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    return wheels[0]


def test_the_wheel_holds_the_shipped_models_and_the_console_scripts(wheel):
    from sda_gui import __version__
    from sda_gui.core.diffusion.checkpoint import RESOURCES

    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
        metadata = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    shipped = sorted(p.name for p in RESOURCES.glob("*.pt"))
    assert shipped, "no shipped models in the source tree"
    for name in shipped + ["README.md"]:
        assert f"sda_gui/resources/models/{name}" in names, f"{name} is missing from the wheel"
    assert "sda_gui/app/default_scenario.npz" in names
    assert "sda = sda_gui.cli:main" in entry_points
    assert "sda-studio = " in entry_points
    assert f"Version: {__version__}" in metadata
    # nothing of the working tree but the package itself
    assert not [n for n in names if n.startswith(("tests/", "scripts/", "docs/"))]


def _fresh_venv(root: Path) -> Path:
    """A virtual environment whose own site-packages come first, then this environment's.

    ``--system-site-packages`` shows the base interpreter's packages; when the tests run
    inside a virtual environment (as here) torch lives in that one, so a ``.pth`` file adds
    its site-packages too — as a plain path, which does not run its editable-install hook.
    """
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)],
                   check=True, timeout=300)
    python = root / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "_sda_test_parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.mark.slow
def test_a_fresh_install_runs_assimilate_with_the_shipped_model(wheel, tmp_path):
    from sda_gui.core.observation import every_nth_state_mask, synthesize
    from sda_gui.core.systems import make_system

    python = _fresh_venv(tmp_path / "venv")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    work = tmp_path / "work"          # outside the repository: nothing can come from the sources
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    where = subprocess.run([str(python), "-c", "import sda_gui, sda_gui.core.diffusion.checkpoint as c; "
                            "print(sda_gui.__file__); print(c.default_model_path('lorenz63'))"],
                           capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert where.returncode == 0, where.stderr[-2000:]
    package, model = where.stdout.split()
    assert Path(package).is_relative_to(tmp_path / "venv") and Path(model).is_relative_to(tmp_path / "venv")
    assert Path(model).is_file()

    system = make_system("lorenz63")
    truth = system.simulate(1, 9, seed=3)[0].numpy()
    synthesize(truth, every_nth_state_mask(9, (3,), every=2), 0.5, seed=1).save(work / "obs.npz")
    sda = tmp_path / "venv" / "bin" / "sda"
    version = subprocess.run([str(sda), "--version"], capture_output=True, text=True, cwd=work, env=env)
    assert version.returncode == 0 and version.stdout.startswith("sda-gui ")
    run = subprocess.run([str(sda), "assimilate", "--system", "lorenz63", "--observations", "obs.npz",
                          "--samples", "4", "--steps", "8", "--device", "cpu", "--threads", "1", "--out", "post.npz"],
                         capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    with np.load(work / "post.npz") as f:
        assert f["samples"].shape == (4, 9, 3) and np.isfinite(f["samples"]).all()
