"""Trajectory datasets on disk: HDF5 with metadata; ``.npy``/``.npz`` imports.

An HDF5 dataset holds ``trajectories`` (float32, ``(M, T, *state_shape)``) and
attributes ``system`` (name), ``params`` (JSON) plus any extra metadata (JSON).
``.npz`` files are read from their ``trajectories`` entry (or their only array);
a single trajectory ``(T, *s)`` is accepted and becomes ``(1, T, *s)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["DatasetError", "save_trajectories", "load_trajectories", "check_trajectories"]

MAX_BYTES = 8 * 2 ** 30


class DatasetError(ValueError):
    """A trajectory file that cannot be used; the message is one line for the user."""


def save_trajectories(path, x, system=None, meta: Optional[dict] = None) -> None:
    import h5py

    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("trajectories", data=arr, chunks=(1, *arr.shape[1:]))
        if system is not None:
            f.attrs["system"] = system.name
            f.attrs["params"] = json.dumps(system.params)
        f.attrs["meta"] = json.dumps(meta or {})


def check_trajectories(arr: np.ndarray, state_shape: Optional[tuple] = None, name: str = "file") -> np.ndarray:
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
    if arr.shape[1] < 2:
        raise DatasetError(f"{name}: trajectories need at least 2 states, got {arr.shape[1]}")
    if arr.nbytes > MAX_BYTES:
        raise DatasetError(f"{name}: {arr.nbytes / 2 ** 30:.1f} GiB is too large (limit {MAX_BYTES / 2 ** 30:.0f} GiB)")
    if not np.all(np.isfinite(arr)):
        raise DatasetError(f"{name}: trajectories contain NaN or infinity")
    return arr.astype(np.float32, copy=False)


def load_trajectories(path, state_shape: Optional[tuple] = None):
    """``(trajectories (M, T, *s) float32, meta dict)``; raises DatasetError on a bad file."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"file not found: {path}")
    meta: dict = {}
    try:
        if path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                if "trajectories" not in f:
                    raise DatasetError(f"{path.name}: no 'trajectories' dataset in this HDF5 file")
                arr = f["trajectories"][()]
                if "system" in f.attrs:
                    meta["system"] = str(f.attrs["system"])
                    meta["params"] = json.loads(f.attrs.get("params", "{}"))
                meta.update(json.loads(f.attrs.get("meta", "{}")))
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                keys = f.files
                if "trajectories" in keys:
                    arr = f["trajectories"]
                elif len(keys) == 1:
                    arr = f[keys[0]]
                else:
                    raise DatasetError(f"{path.name}: no 'trajectories' array (found {', '.join(keys)})")
        elif path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            raise DatasetError(f"{path.name}: unsupported file type (use .h5, .npz or .npy)")
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"cannot read {path.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return check_trajectories(np.asarray(arr), state_shape, path.name), meta
