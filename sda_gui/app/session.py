"""A whole working session in one HDF5 file, and back — all of it checked before any of it is used.

Layout (``format = "sda-studio-session/1"``)::

    attrs: format, system (JSON config), obs_std, obs_seed, model_path, settings (JSON), source,
           operator (optional: "coarsen:8", …; absent or "" = observed directly)
    truth        (L, *s) float32           the truth trajectory
    mask         (L, *o) bool              the observation pattern (o = op.output_shape(s))
    obs_values   (L, *o) float32, NaN = no value
    dataset      (M, T, *s) float32        loaded training trajectories (optional)
    results/     samples (N, L, *s), mask, values, std, truth (optional);
                 attrs settings (JSON), operator (optional)
    comparison/  truth (L, *s), members/<method> (N, L, *s) (optional: the Compare tab);
                 attrs rows (JSON: one dict of scores per method), settings (JSON)

Files written before operators existed have no ``operator`` attribute and open as direct
observations.

Opening is a transaction: ``load_session`` reads the whole file and checks every entry
(``session_checks``) — types, shapes against the system's state shape and the
operator's grid, finite numbers, σ > 0, settings that fit the panel's widgets, a system
``make_system`` builds, a model that loads and fits (or is dropped with a note) — into
a ``SessionData``, or raises ``SessionError`` with one line. Only then does the window
replace its work, all at once. Saving writes a temporary file beside the target and
renames it (``core.atomic``): a failed save leaves the previous file as it was.

Numpy and h5py only, plus the core to build the system and the model (no Qt), so a
script can read sessions too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .common import one_line

__all__ = ["SessionData", "SessionError", "save_session", "load_session", "FORMAT"]

FORMAT = "sda-studio-session/1"


class SessionError(ValueError):
    """A session file that cannot be opened or written; one line for the user."""


@dataclass
class SessionData:
    system: dict                                  # {"name": ..., "params": {...}}
    truth: Optional[np.ndarray]
    mask: np.ndarray
    obs_values: Optional[np.ndarray] = None
    obs_std: float = 1.0
    obs_seed: int = 0
    model_path: str = ""
    settings: dict = field(default_factory=dict)
    source: str = ""
    dataset: Optional[np.ndarray] = None
    operator: Optional[str] = None
    samples: Optional[np.ndarray] = None
    result_mask: Optional[np.ndarray] = None
    result_values: Optional[np.ndarray] = None
    result_std: object = None
    result_truth: Optional[np.ndarray] = None
    result_settings: dict = field(default_factory=dict)
    result_operator: Optional[str] = None
    #: the Compare tab's last comparison: {"rows": [...], "settings": {...}, "truth": (L, *s),
    #: "members": {method: (N, L, *s)}}
    comparison: Optional[dict] = None
    # filled by load_session, never written
    built_system: Any = None                      # the core's system of ``system``
    model: Any = None                             # the loaded model of ``model_path`` (None: none usable)
    notes: list = field(default_factory=list)     # what was dropped on the way in, one line each


# writing ------------------------------------------------------------------------------------
def _put(group, name, value, compress=True):
    if value is None:
        return
    arr = np.asarray(value)
    group.create_dataset(name, data=arr, compression="gzip" if compress and arr.ndim else None)


def _write(f, data: SessionData) -> None:
    f.attrs["format"] = FORMAT
    f.attrs["system"] = json.dumps(data.system)
    f.attrs["obs_std"] = float(data.obs_std)
    f.attrs["obs_seed"] = int(data.obs_seed)
    f.attrs["model_path"] = data.model_path or ""
    f.attrs["settings"] = json.dumps(data.settings)
    f.attrs["source"] = data.source or ""
    if data.operator:
        f.attrs["operator"] = str(data.operator)
    _put(f, "truth", None if data.truth is None else np.asarray(data.truth, np.float32))
    _put(f, "mask", np.asarray(data.mask, bool))
    _put(f, "obs_values", None if data.obs_values is None else np.asarray(data.obs_values, np.float32))
    _put(f, "dataset", None if data.dataset is None else np.asarray(data.dataset, np.float32))
    if data.samples is not None:
        g = f.create_group("results")
        g.attrs["settings"] = json.dumps(data.result_settings, default=str)
        if data.result_operator:
            g.attrs["operator"] = str(data.result_operator)
        _put(g, "samples", np.asarray(data.samples, np.float32))
        _put(g, "mask", np.asarray(data.result_mask, bool))
        _put(g, "values", np.asarray(data.result_values, np.float32))
        _put(g, "std", np.asarray(data.result_std, np.float32))
        _put(g, "truth", None if data.result_truth is None else np.asarray(data.result_truth, np.float32))
    if data.comparison is not None:
        g = f.create_group("comparison")
        g.attrs["rows"] = json.dumps(data.comparison["rows"], default=str)
        g.attrs["settings"] = json.dumps(data.comparison.get("settings", {}), default=str)
        _put(g, "truth", np.asarray(data.comparison["truth"], np.float32))
        members = g.create_group("members")
        for method, x in data.comparison["members"].items():
            _put(members, str(method), np.asarray(x, np.float32))


def save_session(path, data: SessionData) -> None:
    """Writes ``data`` to ``path`` atomically; ``SessionError`` (one line) when it cannot.

    The file is built in memory and written in one go to a temporary beside ``path``:
    HDF5 reports a full disk from deep inside its cache, so it never writes to disk
    itself, and nothing half-written is ever left behind or renamed into place.
    """
    import io

    import h5py

    from sda_gui.core.atomic import atomic_path

    path = Path(path)
    if path.is_dir():
        raise SessionError(f"cannot save the session: {path} is a folder")
    try:
        image = io.BytesIO()
        with h5py.File(image, "w") as f:
            _write(f, data)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as out:
                out.write(image.getbuffer())
    except (TypeError, ValueError) as exc:
        raise SessionError(f"cannot save the session: {one_line(exc)}") from None
    except OSError as exc:
        raise SessionError(f"cannot save the session to {path.name}: {one_line(exc)} "
                           "(the previous file is unchanged)") from None


# reading ------------------------------------------------------------------------------------
def load_session(path, load_model: bool = True) -> SessionData:
    """Reads and checks a whole session file; ``SessionError`` (one line) for anything amiss."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise SessionError(f"session file not found: {path}")
    if path.is_dir():
        raise SessionError(f"{path} is a folder, not a session file")
    from .session_checks import check_model, read_session

    try:
        with h5py.File(path, "r") as f:
            data = read_session(f, path.name)
    except SessionError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated files, HDF5 errors of every kind
        raise SessionError(f"cannot read session {path.name}: {one_line(exc)}") from None
    if load_model:
        check_model(data, data.built_system)
    return data


