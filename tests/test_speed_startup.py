"""The command line imports only what a command uses.

``--help`` (of the program and of a subcommand) loads no numerical library at all;
an ``assimilate`` run loads torch and numpy but none of the data, plotting, GUI or
classical-DA libraries it does not use. Checked on ``sys.modules`` of a fresh
interpreter, not on time.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: never needed by --help
NUMERICAL = {"torch", "numpy", "scipy", "sympy"}
#: never needed by an assimilate run of a built-in system with an .npz observation file
UNUSED_BY_ASSIMILATE = {"scipy", "xarray", "h5py", "netCDF4", "matplotlib", "dapper", "PySide6", "pyqtgraph",
                        "pandas"}

_PROBE = """
import json, runpy, sys
sys.argv = ["sda_gui"] + json.loads(sys.argv[1])
try:
    runpy.run_module("sda_gui", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _modules_after(argv, cwd=None):
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv)], capture_output=True, text=True,
                         timeout=300, cwd=cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["code"], set(result["modules"])


@pytest.mark.parametrize("argv", [["--help"], ["assimilate", "--help"], ["bench", "--help"]])
def test_help_loads_no_numerical_library(argv):
    code, modules = _modules_after(argv)
    assert code == 0
    assert "sda_gui" in modules                      # the probe did run the program
    assert not modules & NUMERICAL, sorted(modules & NUMERICAL)


@pytest.fixture(scope="module")
def assimilate_run(tmp_path_factory):
    """Modules loaded by a tiny assimilate run of the shipped Lorenz-63 model (one step)."""
    import numpy as np

    from sda_gui.core.observation import Observation

    tmp = tmp_path_factory.mktemp("startup")
    mask = np.zeros((32, 3), dtype=bool)       # the shipped model needs ≥ 27 states
    mask[::4, 0] = True
    Observation(mask, np.where(mask, 1.0, 0.0), 0.4).save(tmp / "obs.npz")
    argv = ["assimilate", "--system", "lorenz63", "--observations", str(tmp / "obs.npz"), "--samples", "2",
            "--steps", "1", "--corrections", "0", "--device", "cpu", "--threads", "1", "-q",
            "--out", str(tmp / "post.npz")]
    code, modules = _modules_after(argv, cwd=tmp)
    return code, modules, tmp


def test_an_assimilate_run_loads_no_library_it_does_not_use(assimilate_run):
    code, modules, tmp = assimilate_run
    assert code == 0 and (tmp / "post.npz").exists()
    assert {"torch", "numpy"} <= modules
    assert not modules & UNUSED_BY_ASSIMILATE, sorted(modules & UNUSED_BY_ASSIMILATE)


def test_an_assimilate_run_loads_no_sympy(assimilate_run):
    _, modules, _ = assimilate_run
    assert "sympy" not in modules
