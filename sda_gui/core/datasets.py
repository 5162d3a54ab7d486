"""Trajectory datasets and array files on disk.

An HDF5 dataset holds ``trajectories`` (float32, ``(M, T, *state_shape)``) and
attributes ``system`` (name), ``params`` (JSON) plus any extra metadata (JSON).
Files from elsewhere may name their data anything: ``.h5`` and ``.npz`` files are read
from ``trajectories``, else their only numeric array, else the one ``variable`` names
(the error lists the candidates); netCDF files (``.nc``) go through ``core.netcdf``.
A single trajectory ``(T, *s)`` is accepted and becomes ``(1, T, *s)``.

``write_arrays`` is the one writer of ``.npz``/``.h5`` array files (trajectories,
observations, posterior samples): the whole file goes to a temporary beside the
target, which replaces the target only once complete (``core.atomic``). An HDF5
file is built in memory and written with plain file IO, because the HDF5 library
cannot recover from a failed disk write (a full disk leaves it crashing at exit);
a failed write raises ``WriteError`` (one line) and leaves the previous file as it was.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Optional

import numpy as np

from .atomic import atomic_path

__all__ = ["DatasetError", "WriteError", "write_arrays", "save_trajectories", "load_trajectories",
           "check_trajectories", "read_metadata", "first_line", "ARRAY_SUFFIXES"]

MAX_BYTES = 8 * 2 ** 30
ARRAY_SUFFIXES = (".npz", ".h5", ".hdf5")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class DatasetError(ValueError):
    """A trajectory file that cannot be used; the message is one line for the user."""


class WriteError(OSError):
    """A file could not be written; the previous file at that path is unchanged. One line."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name (never raises)."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def write_arrays(path, arrays: dict, attrs: Optional[dict] = None, compress: bool = False) -> None:
    """Writes named arrays (and string attributes) to ``path`` (.npz, .h5 or .hdf5) atomically.

    In an ``.npz`` the attributes become 0-d string arrays of the same names;
    ``compress`` gzips the non-scalar HDF5 datasets and zips the ``.npz``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ARRAY_SUFFIXES:
        raise WriteError(f"cannot write {path}: unsupported file type '{path.suffix}' (use .npz, .h5 or .hdf5)")
    try:
        with atomic_path(path) as tmp:
            if suffix == ".npz":
                data = dict(arrays)
                data.update({key: np.array(str(value)) for key, value in (attrs or {}).items()})
                (np.savez_compressed if compress else np.savez)(tmp, **data)
            else:
                import h5py

                image = io.BytesIO()
                with h5py.File(image, "w") as f:
                    for key, value in arrays.items():
                        value = np.asarray(value)
                        f.create_dataset(key, data=value, compression="gzip" if compress and value.ndim else None)
                    for key, value in (attrs or {}).items():
                        f.attrs[key] = str(value)
                with open(tmp, "wb") as out:
                    out.write(image.getbuffer())
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {first_line(exc)} (nothing was changed there)") from None


def save_trajectories(path, x, system=None, meta: Optional[dict] = None) -> None:
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
    from .netcdf import is_netcdf, write_trajectories_nc

    if is_netcdf(path):
        write_trajectories_nc(path, arr, system, meta)
        return
    attrs = {"meta": json.dumps(meta or {})}
    if system is not None:
        attrs.update(system=system.name, params=json.dumps(system.params))
    write_arrays(path, {"trajectories": arr}, attrs)


def check_trajectories(arr: np.ndarray, state_shape: Optional[tuple] = None, name: str = "file",
                       min_length: int = 2) -> np.ndarray:
    """``arr`` as float32 ``(M, T, *state_shape)``; DatasetError (one line) when it cannot be used.

    ``min_length`` is the fewest states a trajectory may hold (a model's window ``2k+1``).
    """
    if arr.dtype.kind not in "fiu":
        raise DatasetError(f"{name}: trajectories must be numbers, got dtype {arr.dtype}")
    if state_shape is not None:
        nd = len(state_shape)
        if arr.ndim == nd + 1:
            arr = arr[None]
        if arr.ndim != nd + 2 or tuple(arr.shape[2:]) != tuple(state_shape):
            raise DatasetError(f"{name}: expected trajectories of shape (M, T, {', '.join(map(str, state_shape))}), "
                               f"got {arr.shape}")
    elif arr.ndim == 2:
        arr = arr[None]
    if arr.ndim < 3:
        raise DatasetError(f"{name}: expected trajectories of shape (M, T, *state), got {arr.shape}")
    if arr.size == 0:
        raise DatasetError(f"{name}: the file holds no data (shape {arr.shape})")
    need = max(2, int(min_length))
    if arr.shape[1] < need:
        raise DatasetError(f"{name}: trajectories need at least {need} states, got {arr.shape[1]}")
    if arr.nbytes > MAX_BYTES:
        raise DatasetError(f"{name}: {arr.nbytes / 2 ** 30:.1f} GiB is too large (limit {MAX_BYTES / 2 ** 30:.0f} GiB)")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise DatasetError(f"{name}: trajectories contain NaN or infinity")
    if arr.dtype.itemsize > 4 and np.abs(arr).max() > _FLOAT32_MAX:
        # the cast below would turn these into ±inf
        raise DatasetError(f"{name}: values beyond float32's range (±{_FLOAT32_MAX:.2e})")
    return arr.astype(np.float32, copy=False)


def read_metadata(path) -> dict:
    """``system``, ``params`` and the extra metadata of an HDF5 dataset without reading its data
    (``{}`` for other files); DatasetError when they are unreadable."""
    path = Path(path)
    from .netcdf import is_netcdf

    if is_netcdf(path):
        return _netcdf_metadata(path)
    if path.suffix not in (".h5", ".hdf5"):
        return {}
    meta: dict = {}
    try:
        import h5py

        with h5py.File(path, "r") as f:
            if "system" in f.attrs:
                meta["system"] = str(f.attrs["system"])
                meta["params"] = json.loads(f.attrs.get("params", "{}"))
            meta.update(json.loads(f.attrs.get("meta", "{}")))
    except Exception as exc:
        raise DatasetError(f"cannot read {path.name}: {first_line(exc)}") from None
    if not isinstance(meta.get("params", {}), dict) or ("system" in meta and not meta["system"]):
        raise DatasetError(f"{path.name}: its system metadata is malformed")
    return meta


def _netcdf_metadata(path: Path) -> dict:
    from .netcdf import require_xarray

    xr = require_xarray()
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            attrs = dict(ds.attrs)
    except Exception as exc:
        raise DatasetError(f"cannot read {path.name}: {first_line(exc)}") from None
    meta: dict = {}
    try:
        if "system" in attrs:
            meta["system"] = str(attrs["system"])
            meta["params"] = json.loads(attrs.get("params", "{}"))
            if "system_source" in attrs:
                meta["system_source"] = json.loads(attrs["system_source"])
        meta.update(json.loads(attrs.get("meta", "{}")))
    except (TypeError, ValueError):
        raise DatasetError(f"{path.name}: its system metadata is malformed") from None
    return meta


def _choose_array(names: list, candidates: list, variable: Optional[str], name: str) -> str:
    """Which array of a file holds the trajectories: ``variable``, ``trajectories`` or the only one."""
    if variable:
        if variable not in names:
            raise DatasetError(f"{name}: no array named '{variable}' (its arrays: {', '.join(names) or 'none'})")
        return variable
    if "trajectories" in names:
        return "trajectories"
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DatasetError(f"{name}: no numeric array of at least 2 dimensions (found {', '.join(names) or 'none'})")
    raise DatasetError(f"{name} holds several arrays ({', '.join(candidates)}); choose one with --variable NAME")


def _attr_meta(attrs) -> dict:
    """``dt`` and variable names stated as attributes of an array from elsewhere."""
    meta = {}
    for key in ("dt", "time_step", "delta_t"):
        if key in attrs:
            try:
                meta["dt"] = float(np.asarray(attrs[key]).item())
            except (TypeError, ValueError):
                pass
            break
    for key in ("variable_names", "variables"):
        if key in attrs:
            value = attrs[key]
            if isinstance(value, (str, bytes)):
                text = value.decode() if isinstance(value, bytes) else value
                try:
                    value = json.loads(text)
                except ValueError:
                    value = [v.strip() for v in text.split(",")]
            meta["variable_names"] = [v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(value)]
            break
    return meta


def _read_h5(path: Path, variable: Optional[str]):
    import h5py

    with h5py.File(path, "r") as f:
        names, candidates = [], []

        def visit(key, obj):
            if isinstance(obj, h5py.Dataset):
                names.append(key)
                if obj.ndim >= 2 and obj.dtype.kind in "fiu":
                    candidates.append(key)

        f.visititems(visit)
        key = _choose_array(names, candidates, variable, path.name)
        arr = f[key][()]
        meta = _attr_meta(dict(f.attrs))
        meta.update(_attr_meta(dict(f[key].attrs)))
        if variable:
            meta["variable"] = key
    return arr, meta


def load_trajectories(path, state_shape: Optional[tuple] = None, min_length: int = 2,
                      variable: Optional[str] = None):
    """``(trajectories (M, T, *s) float32, meta dict)``; raises DatasetError on a bad file.

    ``variable`` names the array (or netCDF variable) to read when a file holds several. ``meta``
    holds the file's system metadata when it has some, and what it says of the data (``dt``,
    ``variable_names``, ``name``) when it does.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"file not found: {path}")
    if path.is_dir():
        raise DatasetError(f"{path} is a folder, not a trajectory file")
    from .netcdf import is_netcdf, read_trajectories_nc

    meta: dict = {}
    try:
        if is_netcdf(path):
            arr, meta = read_trajectories_nc(path, variable)
        elif path.suffix in (".h5", ".hdf5"):
            arr, found = _read_h5(path, variable)
            meta = read_metadata(path)
            meta.update({k: v for k, v in found.items() if k not in meta})
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                keys = f.files
                candidates = [k for k in keys if f[k].ndim >= 2 and f[k].dtype.kind in "fiu"]
                key = _choose_array(keys, candidates, variable, path.name)
                arr = f[key]
                meta = {"variable": key} if variable else {}
        elif path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            raise DatasetError(f"{path.name}: unsupported file type (use .h5, .nc, .npz or .npy)")
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"cannot read {path.name}: {first_line(exc)}") from None
    return check_trajectories(np.asarray(arr), state_shape, path.name, min_length), meta
