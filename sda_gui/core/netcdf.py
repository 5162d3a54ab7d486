"""netCDF files (through xarray and h5netcdf): trajectories, observations and posterior samples.

What we write opens in xarray with its coordinates and in any netCDF-4 reader:

- trajectories: ``trajectories(trajectory, time, *state_dims)`` float32;
- observations: ``values(time, *obs_dims)`` (NaN where unobserved), ``mask`` (uint8, 0/1)
  and ``std`` (a scalar or per entry), the ``operator`` spec as an attribute;
- posterior samples: ``samples(sample, time, *state_dims)``.

``state_dims`` are the system's (``("variable",)`` for a vector state, ``("channel", "x",
"y")`` for the Kolmogorov flow's velocity; ``DynamicalSystem.state_dims``) with its
variable names and grid as coordinates; ``time = i · Δt``. Each variable carries
``units`` and ``long_name``; the file carries the system (``system``, ``params`` as JSON,
``system_source``), each parameter as its own ``param_<name>`` attribute, and any
provenance given (``meta`` as JSON, ``Conventions = "CF-1.8"``). A file is built in memory
and written through ``atomic_path`` (a failed write leaves the previous file as it was).

Reading accepts CF-style files from elsewhere: any data variable (``variable`` chooses
one, or several of the same dimensions stacked as channels, ``"u,v"``), a
``trajectory``/``member``/``ensemble``/``sample`` dimension (absent: one trajectory), a
``time`` dimension (else the first), the rest being the state; Δt from a uniform time
coordinate. xarray and h5netcdf are an install extra (``pip install 'sda-gui[netcdf]'``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Optional

import numpy as np

from .atomic import atomic_path
from .datasets import DatasetError, WriteError, first_line

__all__ = ["NETCDF_SUFFIXES", "require_xarray", "state_dims", "write_trajectories_nc", "read_trajectories_nc",
           "write_observation_nc", "read_observation_nc", "write_samples_nc", "trajectories_dataset",
           "samples_dataset", "is_netcdf"]

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")
_TRAJECTORY_DIMS = ("trajectory", "trajectories", "member", "ensemble", "realization", "sample")


def require_xarray():
    try:
        import xarray
        import h5netcdf  # noqa: F401  (the engine xarray uses here)
    except ImportError:
        raise DatasetError("netCDF files need xarray and h5netcdf: pip install 'sda-gui[netcdf]' "
                           "(or pip install xarray h5netcdf)") from None
    return xarray


def state_dims(system=None, ndim: int = 1) -> tuple:
    """The dimension names of one state: the system's, else by rank."""
    dims = getattr(system, "state_dims", None) if system is not None else None
    if dims:
        return tuple(dims)
    return {1: ("variable",), 2: ("variable", "x"), 3: ("channel", "y", "x")}.get(
        ndim, tuple(f"dim_{i}" for i in range(ndim)))


def _state_coords(system, dims: tuple, shape: tuple) -> dict:
    coords = {}
    if system is None:
        return coords
    names = list(getattr(system, "variable_names", []) or [])
    if len(names) == shape[0]:
        coords[dims[0]] = (dims[0], np.array(names, dtype=object), {"long_name": "variable"})
    grid = getattr(system, "state_coords", None)
    for name, values in (grid() if callable(grid) else {}).items():
        if name in dims and len(values) == shape[dims.index(name)]:
            coords[name] = (name, np.asarray(values, dtype=np.float64), {"long_name": name})
    return coords


def _system_attrs(system, meta: Optional[dict]) -> dict:
    from sda_gui import __version__

    attrs = {"Conventions": "CF-1.8", "sda_gui_version": __version__}
    if system is not None:
        from .systems.plugins import source_of

        attrs.update(title=getattr(system, "title", "") or system.name, system=system.name,
                     params=json.dumps(_jsonable(system.params)),
                     system_source=json.dumps(_jsonable(source_of(system))))
        for key, value in system.params.items():
            if isinstance(value, (bool, int, float, str)):
                attrs[f"param_{key}"] = int(value) if isinstance(value, bool) else value
    if meta:
        attrs["meta"] = json.dumps(_jsonable(meta))
    return attrs


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def _write(path, ds) -> None:
    path = Path(path)
    try:
        image = io.BytesIO()
        ds.to_netcdf(image, engine="h5netcdf")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as out:
                out.write(image.getbuffer())
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {first_line(exc)} (nothing was changed there)") from None


def _time_coord(length: int, system) -> tuple:
    dt = float(getattr(system, "dt", 1.0)) if system is not None else 1.0
    units = getattr(system, "time_units", None) or "model time units"
    return ("time", np.arange(length) * dt, {"long_name": "time", "units": units, "dt": dt})


def _units(system) -> str:
    return getattr(system, "units", None) or "1"


def trajectories_dataset(x, system=None, meta: Optional[dict] = None, name: str = "trajectories",
                         lead: str = "trajectory", long_name: str = "simulated trajectories"):
    """An xarray Dataset of ``x`` ``(M, T, *state_shape)`` with the system's dims, coordinates and attributes."""
    xr = require_xarray()
    arr = np.asarray(x, dtype=np.float32)
    dims = state_dims(system, arr.ndim - 2)
    coords = {lead: (lead, np.arange(arr.shape[0])), "time": _time_coord(arr.shape[1], system)}
    coords.update(_state_coords(system, dims, arr.shape[2:]))
    var = xr.Variable((lead, "time", *dims), arr, {"units": _units(system), "long_name": long_name})
    return xr.Dataset({name: var}, coords=coords, attrs=_system_attrs(system, meta))


def samples_dataset(samples, system=None, meta: Optional[dict] = None):
    """Posterior samples ``(N, L, *state_shape)`` as a Dataset with a ``sample`` dimension."""
    return trajectories_dataset(samples, system, meta, name="samples", lead="sample",
                                long_name="posterior samples")


def write_trajectories_nc(path, x, system=None, meta: Optional[dict] = None) -> None:
    _write(path, trajectories_dataset(x, system, meta))


def write_samples_nc(path, samples, system=None, meta: Optional[dict] = None) -> None:
    _write(path, samples_dataset(samples, system, meta))


def write_observation_nc(path, observation, system=None, meta: Optional[dict] = None) -> None:
    xr = require_xarray()
    mask = np.asarray(observation.mask, dtype=bool)
    dims = ("time", *state_dims(system, mask.ndim - 1))
    coords = {"time": _time_coord(mask.shape[0], system)}
    if system is not None and tuple(mask.shape[1:]) == tuple(system.state_shape):
        coords.update(_state_coords(system, dims[1:], mask.shape[1:]))
    values = np.where(mask, observation.values, np.nan).astype(np.float32)
    data = {"values": xr.Variable(dims, values, {"units": _units(system), "long_name": "observed values"}),
            "mask": xr.Variable(dims, mask.astype(np.uint8), {"long_name": "observed entries", "flag_values": [0, 1],
                                                               "flag_meanings": "unobserved observed"})}
    std = np.asarray(observation.std, dtype=np.float32)
    data["std"] = xr.Variable(dims if std.ndim else (), std, {"units": _units(system),
                                                              "long_name": "observation error standard deviation"})
    attrs = _system_attrs(system, meta)
    attrs["operator"] = observation.operator or "identity"
    _write(path, xr.Dataset(data, coords=coords, attrs=attrs))


# --- reading ---------------------------------------------------------------------------------
def _open(path):
    xr = require_xarray()
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"file not found: {path}")
    try:
        return xr.open_dataset(path, engine="h5netcdf", decode_times=True)
    except Exception as exc:  # h5netcdf/h5py raise many kinds for a broken file
        raise DatasetError(f"cannot read {path.name}: {first_line(exc)}") from None


def _choose(ds, variable: Optional[str], name: str) -> list:
    data = [k for k, v in ds.data_vars.items() if v.ndim >= 1 and v.dtype.kind in "fiu"]
    if variable:
        wanted = [v.strip() for v in str(variable).split(",") if v.strip()]
        missing = [v for v in wanted if v not in ds.data_vars]
        if missing:
            raise DatasetError(f"{name}: no variable {', '.join(missing)} (its variables: {', '.join(data) or 'none'})")
        return wanted
    if "trajectories" in ds.data_vars:
        return ["trajectories"]
    if len(data) == 1:
        return data
    if not data:
        raise DatasetError(f"{name}: the file holds no numeric variable")
    raise DatasetError(f"{name} holds several variables ({', '.join(data)}); choose one with --variable NAME "
                       f"(or several of the same dimensions, e.g. --variable {','.join(data[:2])})")


def _is_time(ds, dim: str) -> bool:
    """A time dimension by name, CF ``axis = "T"`` or dates as its coordinate."""
    if dim.lower() in ("time", "t"):
        return True
    return dim in ds.coords and (str(ds[dim].attrs.get("axis", "")).upper() == "T" or ds[dim].dtype.kind == "M")


def _dt(time) -> Optional[float]:
    values = np.asarray(time.values)
    if values.size < 2:
        return None
    if values.dtype.kind == "M":
        steps = np.diff(values).astype("timedelta64[ns]").astype(np.float64) / 1e9   # seconds
    elif values.dtype.kind in "fiu":
        steps = np.diff(values.astype(np.float64))
    else:
        return None
    if not np.all(steps > 0) or not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
        return None
    return float(steps[0])


def read_trajectories_nc(path, variable: Optional[str] = None) -> tuple:
    """``(array (M, T, *s), meta)``: meta has ``system``/``params``/``system_source`` when we wrote the
    file, and always ``name``, ``variable_names``, ``dt`` (or None), ``dims``, ``units``, ``long_name``."""
    path = Path(path)
    ds = _open(path)
    with ds:
        names = _choose(ds, variable, path.name)
        first = ds[names[0]]
        for other in names[1:]:
            if ds[other].dims != first.dims:
                raise DatasetError(f"{path.name}: variables {names[0]} and {other} have different dimensions "
                                   f"{first.dims} and {ds[other].dims}; they cannot be stacked")
        dims = list(first.dims)
        lead = next((d for d in dims if d.lower() in _TRAJECTORY_DIMS), None)
        if len(dims) - (lead is not None) < 1:
            raise DatasetError(f"{path.name}: {names[0]} has no time dimension (its dimensions: {tuple(dims)})")
        time = next((d for d in dims if d != lead and _is_time(ds, d)), None)
        time = time or next(d for d in dims if d != lead)
        rest = [d for d in dims if d not in (lead, time)]
        order = ([lead] if lead else []) + [time] + rest
        arrays = [np.asarray(ds[n].transpose(*order).values) for n in names]
        arr = arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=2 if lead else 1)
        if not lead:
            arr = arr[None]
        if len(names) == 1 and not rest:
            arr = arr[..., None]                       # one scalar per time: a state of one variable
        attrs = dict(ds.attrs)
        meta: dict = {"name": str(attrs.get("title") or path.stem), "dims": [time, *rest], "variable": ",".join(names),
                      "units": str(first.attrs.get("units", "")), "long_name": str(first.attrs.get("long_name", ""))}
        meta["dt"] = _dt(ds[time]) if time in ds.coords else None
        if len(names) > 1:
            meta["variable_names"] = names
        elif rest and rest[0] in ds.coords and ds[rest[0]].ndim == 1:
            meta["variable_names"] = [str(v) for v in ds[rest[0]].values]
        elif not rest:
            meta["variable_names"] = [names[0]]
        if "system" in attrs:
            try:
                meta["system"] = str(attrs["system"])
                meta["params"] = json.loads(attrs.get("params", "{}"))
                if "system_source" in attrs:
                    meta["system_source"] = json.loads(attrs["system_source"])
            except (TypeError, ValueError):
                raise DatasetError(f"{path.name}: its system metadata is malformed") from None
        if "meta" in attrs:
            try:
                meta.update({k: v for k, v in json.loads(attrs["meta"]).items() if k not in meta})
            except (TypeError, ValueError, AttributeError):
                pass
    if arr.dtype.kind == "M":
        raise DatasetError(f"{path.name}: {names[0]} holds dates, not numbers")
    return arr, meta


def read_observation_nc(path) -> dict:
    """``{"mask", "values", "std", "operator"}`` of an observation file we (or a CF writer) made."""
    path = Path(path)
    ds = _open(path)
    with ds:
        missing = [k for k in ("mask", "values", "std") if k not in ds.variables]
        if missing:
            raise DatasetError(f"observation file {path.name} lacks {', '.join(missing)}")
        values = np.asarray(ds["values"].values, dtype=np.float64)
        mask = np.asarray(ds["mask"].values)
        if mask.dtype.kind == "f":
            mask = np.nan_to_num(mask, nan=0.0)
        std = np.asarray(ds["std"].values)
        op = ds.attrs.get("operator")
    return {"mask": mask, "values": np.nan_to_num(values, nan=0.0), "std": std,
            "operator": None if op in (None, "", "identity") else str(op)}


def is_netcdf(path) -> bool:
    return Path(path).suffix.lower() in NETCDF_SUFFIXES
