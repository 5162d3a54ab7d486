"""Trajectories from a file become the app's system and truth (no Qt: the panel asks the questions).

A file whose metadata names a system (built-in, registered, a plugin whose file is
still there, or a data system we wrote before) is read as that system, after checking
its states fit it; one it names but the core cannot build (a plugin not loaded,
parameters it does not take) is refused in one line. Any other file becomes a *data system*
(``core.systems.data.DataSystem.from_trajectories``): its own name (the file's title
or stem), its variable names, its Δt (the file's uniform time coordinate or ``dt``
attribute, else asked for, 1 by default) and a normalisation computed from the data,
per variable. Nothing is ever assigned to a built-in system from its shape alone.

A file with several candidate arrays (HDF5 datasets, ``.npz`` arrays, netCDF
variables) and none named ``trajectories`` needs a choice: ``candidates`` lists them,
``ask_variable`` picks one. The whole file is validated (shape, NaN/Inf, float32
range, at least ``MIN_LENGTH`` states, by ``core.datasets.load_trajectories``) before
the caller changes anything: ``load`` raises a ValueError of one line, or returns None
when the user cancels a question.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from . import engine

__all__ = ["Loaded", "load", "candidates", "MIN_LENGTH", "DEFAULT_DT"]

#: the fewest states a trajectory may hold: the shortest window, 2k+1 with k = 1
MIN_LENGTH = 3
#: Δt offered when the file says nothing of its time step
DEFAULT_DT = 1.0


@dataclass
class Loaded:
    """What a trajectory file gives the app."""

    trajectories: np.ndarray          # (M, T, *state_shape) float32, checked
    system: object                    # the core's DynamicalSystem (a DataSystem for data of its own)
    meta: dict
    note: str = ""                    # a line for the message box ("" for none)

    @property
    def is_data(self) -> bool:
        return not getattr(self.system, "has_dynamics", True)


def candidates(path) -> list[str]:
    """The arrays a file could hold its trajectories in, when it needs a choice (else ``[]``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    engine.ENGINE.wait()
    from sda_gui.core.netcdf import is_netcdf, require_xarray

    names: list[str] = []
    try:
        if is_netcdf(path):
            xr = require_xarray()
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                names = [k for k, v in ds.data_vars.items() if v.ndim >= 1 and v.dtype.kind in "fiu"]
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                f.visititems(lambda key, obj: names.append(key) if isinstance(obj, h5py.Dataset) and obj.ndim >= 2
                             and obj.dtype.kind in "fiu" else None)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                names = [k for k in f.files if f[k].ndim >= 2 and f[k].dtype.kind in "fiu"]
    except Exception:  # noqa: BLE001 - an unreadable file: load() says why in one line
        return []
    return [] if "trajectories" in names or len(names) < 2 else names


def _known_system(meta: dict, state_shape: tuple):
    """The system the file's metadata names (None: it names none); one line when it cannot be built."""
    name = meta.get("system")
    if not isinstance(name, str) or not name:
        return None
    from sda_gui.core.systems import system_from_config
    from sda_gui.core.systems.plugins import PluginError

    config = {"name": name, "params": dict(meta.get("params") or {})}
    if isinstance(meta.get("system_source"), dict):
        config["source"] = meta["system_source"]
    try:
        system = system_from_config(config)
    except (PluginError, ValueError, TypeError) as exc:
        # the file says what its states are: reading them as anonymous data would drop that
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"its metadata names the system '{name}', which cannot be built: {reason}") from None
    if tuple(system.state_shape) != tuple(state_shape):
        raise ValueError(f"states of shape {tuple(state_shape)} do not fit {system.title} "
                         f"{tuple(system.state_shape)}, which the file names")
    return system


def _check_shape(state_shape: tuple) -> None:
    """The app shows a vector of variables ``(N,)`` or a field of components ``(C, H, W)``."""
    if len(state_shape) == 1 or len(state_shape) == 3:
        return
    hint = (" (one field: add a component axis, (M, T, 1, H, W))" if len(state_shape) == 2 else "")
    raise ValueError(f"states of shape {tuple(state_shape)}: the app takes a vector of variables (N,) or a field "
                     f"(C, H, W){hint}")


def _data_system(x: np.ndarray, meta: dict, path: Path, dt: float):
    from sda_gui.core.systems.data import DataSystem, data_system_name

    dims = list(meta.get("dims") or [])[1:]
    return DataSystem.from_trajectories(
        x, data_system_name(meta.get("name") or path.stem), meta.get("variable_names"), dt,
        units=str(meta.get("units", "") or ""), dims=dims if len(dims) == x.ndim - 2 else None,
        origin=DataSystem.origin_of(path, meta.get("variable")), title=str(meta.get("name", "") or ""))


def load(path, ask_variable: Optional[Callable[[list], Optional[str]]] = None,
         ask_dt: Optional[Callable[[float], Optional[float]]] = None, variable: Optional[str] = None,
         dt: Optional[float] = None) -> Optional[Loaded]:
    """Reads and checks a trajectory file whole; see the module docstring.

    ``ask_variable(names)`` chooses among several arrays, ``ask_dt(default)`` gives the
    time step of data that does not state one (without them: an error naming the
    arrays, and ``DEFAULT_DT``). None when a question was cancelled.
    """
    path = Path(path)
    engine.ENGINE.wait()
    from sda_gui.core.datasets import load_trajectories

    if variable is None and ask_variable is not None and path.exists():
        names = candidates(path)
        if names:
            variable = ask_variable(names)
            if not variable:
                return None
    x, meta = load_trajectories(path, None, min_length=MIN_LENGTH, variable=variable)
    if variable:
        meta.setdefault("variable", variable)
    system = _known_system(meta, tuple(x.shape[2:]))
    if system is not None:
        return Loaded(x, system, meta)
    _check_shape(tuple(x.shape[2:]))
    note = ""
    found = meta.get("dt")
    if dt is None and isinstance(found, (int, float)) and found > 0:
        dt = float(found)
    if dt is None:
        if ask_dt is not None:
            dt = ask_dt(DEFAULT_DT)
            if dt is None:
                return None
        else:
            dt = DEFAULT_DT
            note = f"the file states no time step: Δt = {DEFAULT_DT:g}"
    system = _data_system(x, meta, path, float(dt))
    lead = f"{path.name} is data of its own: system '{system.name}', {len(system.variable_names)} variables, " \
           f"Δt = {system.dt:g}, normalised from the data"
    return Loaded(x, system, meta, f"{lead} ({note})" if note else lead)
