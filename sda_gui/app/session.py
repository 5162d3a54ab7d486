"""A whole working session in one HDF5 file, and back.

Layout (``format = "sda-studio-session/1"``)::

    attrs: format, system (JSON config), obs_std, obs_seed, model_path, settings (JSON), source,
           operator (optional: "coarsen:8", …; absent or "" = observed directly)
    truth        (L, *s) float32           the truth trajectory
    mask         (L, *o) bool              the observation pattern (o = op.output_shape(s))
    obs_values   (L, *o) float32, NaN = no value
    dataset      (M, T, *s) float32        loaded training trajectories (optional)
    results/     samples (N, L, *s), mask, values, std, truth (optional);
                 attrs settings (JSON), operator (optional)

Files written before operators existed have no ``operator`` attribute and open as direct
observations.

Pure numpy/h5py so it can be read by scripts without Qt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["SessionData", "SessionError", "save_session", "load_session", "FORMAT"]

FORMAT = "sda-studio-session/1"


class SessionError(ValueError):
    """A session file that cannot be opened; one line for the user."""


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


def _put(group, name, value, compress=True):
    if value is None:
        return
    arr = np.asarray(value)
    group.create_dataset(name, data=arr, compression="gzip" if compress and arr.ndim else None)


def save_session(path, data: SessionData) -> None:
    import h5py

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
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
    tmp.replace(path)


def load_session(path) -> SessionData:
    import h5py

    path = Path(path)
    if not path.exists():
        raise SessionError(f"session file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise SessionError(f"{path.name} is not an SDA Studio session")

            def get(g, name):
                return g[name][()] if name in g else None

            data = SessionData(
                system=json.loads(f.attrs["system"]),
                truth=get(f, "truth"),
                mask=np.asarray(get(f, "mask"), dtype=bool),
                obs_values=get(f, "obs_values"),
                obs_std=float(f.attrs.get("obs_std", 1.0)),
                obs_seed=int(f.attrs.get("obs_seed", 0)),
                model_path=str(f.attrs.get("model_path", "")),
                settings=json.loads(f.attrs.get("settings", "{}")),
                source=str(f.attrs.get("source", "")),
                dataset=get(f, "dataset"),
                operator=_operator(f.attrs),
            )
            if "results" in f:
                g = f["results"]
                data.samples = get(g, "samples")
                data.result_mask = np.asarray(get(g, "mask"), dtype=bool)
                data.result_values = get(g, "values")
                std = get(g, "std")
                data.result_std = float(std) if std is not None and np.ndim(std) == 0 else std
                data.result_truth = get(g, "truth")
                data.result_settings = json.loads(g.attrs.get("settings", "{}"))
                data.result_operator = _operator(g.attrs)
    except SessionError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated files, wrong types, bad JSON…
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SessionError(f"cannot read session {path.name}: {text}") from None
    if data.truth is not None and data.truth.shape[0] != data.mask.shape[0]:
        raise SessionError(f"{path.name}: truth covers {data.truth.shape[0]} states, the pattern {data.mask.shape[0]}")
    if data.truth is not None and not data.operator and data.truth.shape != data.mask.shape:
        raise SessionError(f"{path.name}: truth {data.truth.shape} and mask {data.mask.shape} differ in shape")
    return data


def _operator(attrs) -> Optional[str]:
    """The operator attribute as a string, None when absent or empty (older files)."""
    value = attrs.get("operator", "")
    if isinstance(value, bytes):
        value = value.decode()
    return str(value) or None
