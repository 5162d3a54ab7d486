"""Trajectory datasets and array files on disk.

An HDF5 dataset holds ``trajectories`` (float32, ``(M, T, *state_shape)``) and
attributes ``system`` (name), ``params`` (JSON) plus any extra metadata (JSON).
``.npz`` files are read from their ``trajectories`` entry (or their only array);
a single trajectory ``(T, *s)`` is accepted and becomes ``(1, T, *s)``.

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


def load_trajectories(path, state_shape: Optional[tuple] = None, min_length: int = 2):
    """``(trajectories (M, T, *s) float32, meta dict)``; raises DatasetError on a bad file."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"file not found: {path}")
    if path.is_dir():
        raise DatasetError(f"{path} is a folder, not a trajectory file")
    meta: dict = {}
    try:
        if path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                if "trajectories" not in f or not isinstance(f["trajectories"], h5py.Dataset):
                    raise DatasetError(f"{path.name}: no 'trajectories' dataset in this HDF5 file")
                arr = f["trajectories"][()]
            meta = read_metadata(path)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                keys = f.files
                if "trajectories" in keys:
                    arr = f["trajectories"]
                elif len(keys) == 1:
                    arr = f[keys[0]]
                else:
                    raise DatasetError(f"{path.name}: no 'trajectories' array (found {', '.join(keys) or 'none'})")
        elif path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            raise DatasetError(f"{path.name}: unsupported file type (use .h5, .npz or .npy)")
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"cannot read {path.name}: {first_line(exc)}") from None
    return check_trajectories(np.asarray(arr), state_shape, path.name, min_length), meta
