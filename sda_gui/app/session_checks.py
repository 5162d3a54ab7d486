"""Every check a session file passes before the app uses any of it.

``read_session`` reads an open HDF5 file entry by entry through ``_Reader``, whose
accessors check the type of each entry (text, JSON, finite numbers, boolean or numeric
arrays that fit float32), and then checks what the entries say together:

- the system is ``{name, params}`` with finite numbers that ``make_system`` builds;
- the operator parses and fits the system's states; the pattern lives on its grid
  ``(L, *op.output_shape(s))`` with ``L ≥ 1``; truth ``(L, *s)``, finite; values of the
  pattern's shape (NaN = no value, no infinity); σ finite within the editor's range;
  seeds ``0 … 2³¹ − 1``; training trajectories ``(M, T, *s)``, finite;
- settings of the kinds and ranges the panel's widgets hold (``sampler_config``);
- results: samples ``(N ≥ 1, L, *s)``, finite; their own pattern, values and σ > 0 on
  their operator's grid; their truth, if any, of their length.

``check_model`` loads the session's model when the file still exists and the model
fits the system; otherwise the session opens without it and says so (a note).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .common import one_line
from .sampler_config import SettingsError, check_seed, check_settings
from .session import FORMAT, SessionData, SessionError

__all__ = ["read_session", "check_model", "STD_RANGE"]

#: the noise σ the observation editor's spin box offers
STD_RANGE = (0.001, 1000.0)


class _Reader:
    """Typed access to one open file; every mistake is a SessionError naming the entry."""

    def __init__(self, name: str):
        self.name = name

    def fail(self, text: str):
        raise SessionError(f"{self.name}: {text}")

    def text(self, attrs, key: str, default: str = "") -> str:
        value = attrs.get(key, default)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        if not isinstance(value, str):
            self.fail(f"'{key}' must be text, got {type(value).__name__}")
        return value

    def json(self, attrs, key: str, default: str = "{}"):
        raw = self.text(attrs, key, default)
        try:
            return json.loads(raw or default)
        except ValueError:
            self.fail(f"'{key}' is not valid JSON")

    def number(self, attrs, key: str, default, kind=float):
        value = attrs.get(key, default)
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(()).item()
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(f"'{key}' must be a finite number, got {value!r}")
        if kind is int and float(value) != int(value):
            self.fail(f"'{key}' must be a whole number, got {value!r}")
        return kind(value)

    def array(self, group, key: str, required: bool = False, kind: str = "float") -> Optional[np.ndarray]:
        import h5py

        if key not in group:
            if required:
                self.fail(f"'{key}' is missing")
            return None
        item = group[key]
        if not isinstance(item, h5py.Dataset):
            self.fail(f"'{key}' must be an array, not a {type(item).__name__}")
        value = np.asarray(item[()])
        if kind == "bool":
            if value.dtype != bool and not (value.dtype.kind in "iu" and np.isin(value, (0, 1)).all()):
                self.fail(f"'{key}' must be boolean, got {value.dtype}")
            return value.astype(bool)
        if value.dtype.kind not in "fiu":
            self.fail(f"'{key}' must hold numbers, got {value.dtype}")
        with np.errstate(over="ignore"):
            out = value.astype(np.float32)
        # a float64 beyond float32's range would become ±inf: refuse it rather than store inf
        if np.isfinite(value).sum() != np.isfinite(out).sum():
            self.fail(f"'{key}' holds values beyond float32's range")
        return out


def _shape_text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _check_system(r: _Reader, cfg) -> tuple[dict, Any]:
    if not isinstance(cfg, dict) or not isinstance(cfg.get("name"), str) or not cfg["name"]:
        r.fail("'system' must be {\"name\": …, \"params\": {…}}")
    params = cfg.get("params", {})
    if not isinstance(params, dict):
        r.fail("the system's 'params' must be a mapping")
    def finite(value) -> bool:
        # a data system stores its variable names, mean and scale as lists, its origin as a mapping
        if isinstance(value, list):
            return all(finite(v) for v in value)
        if isinstance(value, dict):
            return all(finite(v) for v in value.values())
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return True
        return isinstance(value, (int, float)) and math.isfinite(value)

    for key, value in params.items():
        if not finite(value):
            r.fail(f"system parameter {key} must be a finite number, got {value!r}")
    source = cfg.get("source")
    if source is not None and not isinstance(source, dict):
        r.fail("the system's 'source' must be a mapping")
    from sda_gui.core.systems import system_from_config

    config = {"name": cfg["name"], "params": dict(params), **({"source": source} if source else {})}
    try:
        # a plugin system's file is loaded again when it is still there and unchanged
        system = system_from_config(config)
    except (ValueError, TypeError, KeyError, ZeroDivisionError, ImportError) as exc:
        r.fail(f"cannot build the system {cfg['name']!r}: {one_line(exc)}")
    return config, system


def _check_operator(r: _Reader, spec: Optional[str], state_shape: tuple) -> tuple:
    from .operators import observed_shape

    try:
        return tuple(observed_shape(state_shape, spec))
    except (ValueError, TypeError) as exc:
        r.fail(f"operator {spec!r}: {one_line(exc)}")


def _check_trajectory(r: _Reader, key: str, x: Optional[np.ndarray], state_shape: tuple,
                      length: Optional[int] = None) -> None:
    if x is None:
        return
    if x.ndim != 1 + len(state_shape) or tuple(x.shape[1:]) != state_shape:
        r.fail(f"'{key}' has shape {_shape_text(x.shape)}, expected (L, {', '.join(map(str, state_shape))})")
    if x.shape[0] < 1 or (length is not None and x.shape[0] != length):
        r.fail(f"'{key}' covers {x.shape[0]} states, the pattern {length}")
    if not np.isfinite(x).all():
        r.fail(f"'{key}' holds NaN or infinity")


def _check_std(r: _Reader, key: str, std, mask: np.ndarray):
    std = np.asarray(std, dtype=np.float64)
    if std.ndim and std.shape != mask.shape:
        r.fail(f"'{key}' must be a number or have the pattern's shape {_shape_text(mask.shape)}")
    observed = std if std.ndim == 0 else std[mask]
    if not np.all(np.isfinite(observed)) or np.any(observed <= 0):
        r.fail(f"'{key}' must be finite and > 0")
    return float(std) if std.ndim == 0 else std


def check_model(data: SessionData, system) -> None:
    """Loads the session's model if it still exists and fits; otherwise drops it with a note."""
    path = data.model_path
    if not path:
        return
    if not Path(path).is_file():
        data.notes.append(f"model {Path(path).name} not found: the session opens without it")
        data.model_path = ""
        return
    from sda_gui.core.diffusion import checkpoint

    try:
        model = checkpoint.load_checkpoint(path)
        checkpoint.check_model_for_system(model, system)
    except Exception as exc:  # noqa: BLE001 - any unusable model is dropped, never fatal
        data.notes.append(f"model {Path(path).name} not used: {one_line(exc)}")
        data.model_path = ""
        return
    data.model = model


def _check_settings(r: _Reader, settings) -> dict:
    if not isinstance(settings, dict):
        r.fail("'settings' must be a mapping")
    out = {}
    try:
        if "assimilation" in settings:
            out["assimilation"] = check_settings(settings["assimilation"], strict=True)
        if "system_seed" in settings:
            out["system_seed"] = check_seed(settings["system_seed"], "system_seed")
    except SettingsError as exc:
        r.fail(str(exc))
    return out


def _check_result_settings(r: _Reader, settings) -> dict:
    if not isinstance(settings, dict):
        r.fail("the results' 'settings' must be a mapping")
    out = dict(settings)
    try:
        out.update(check_settings(settings, strict=True))
    except SettingsError as exc:
        r.fail(f"results: {exc}")
    seconds = out.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))):
        r.fail("results: 'seconds' must be a number")
    for key in ("model", "operator"):
        if key in out and not isinstance(out[key], str):
            out[key] = str(out[key])
    return out


def read_session(f, name: str) -> SessionData:
    """The checked ``SessionData`` of an open HDF5 file named ``name`` (``SessionError`` otherwise)."""
    r = _Reader(name)
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if fmt != FORMAT:
        r.fail("not an SDA Studio session")
    config, system = _check_system(r, r.json(f.attrs, "system", "null"))
    shape = tuple(system.state_shape)
    operator = r.text(f.attrs, "operator", "") or None
    grid = _check_operator(r, operator, shape)

    mask = r.array(f, "mask", required=True, kind="bool")
    if mask.ndim != 1 + len(grid) or tuple(mask.shape[1:]) != grid or mask.shape[0] < 1:
        where = f" (output of {operator})" if operator else ""
        r.fail(f"pattern {_shape_text(mask.shape)} does not fit the observed grid (L, {', '.join(map(str, grid))}){where}")
    length = int(mask.shape[0])
    truth = r.array(f, "truth")
    _check_trajectory(r, "truth", truth, shape, length)
    values = r.array(f, "obs_values")
    if values is not None:
        if values.shape != mask.shape:
            r.fail(f"'obs_values' {_shape_text(values.shape)} do not match the pattern {_shape_text(mask.shape)}")
        if np.isinf(values).any():
            r.fail("'obs_values' hold infinity")
    std = r.number(f.attrs, "obs_std", 1.0)
    if not STD_RANGE[0] <= std <= STD_RANGE[1]:
        r.fail(f"'obs_std' = {std:g} must lie in {STD_RANGE[0]:g} … {STD_RANGE[1]:g}")
    try:
        seed = check_seed(r.number(f.attrs, "obs_seed", 0, int), "obs_seed")
    except SettingsError as exc:
        r.fail(str(exc))
    dataset = r.array(f, "dataset")
    if dataset is not None:
        if dataset.ndim != 2 + len(shape) or tuple(dataset.shape[2:]) != shape or min(dataset.shape[:2]) < 1:
            r.fail(f"'dataset' {_shape_text(dataset.shape)} is not trajectories (M, T, {', '.join(map(str, shape))})")
        if not np.isfinite(dataset).all():
            r.fail("'dataset' holds NaN or infinity")
    data = SessionData(system=config, truth=truth, mask=mask, obs_values=values, obs_std=std, obs_seed=seed,
                       model_path=r.text(f.attrs, "model_path", ""),
                       settings=_check_settings(r, r.json(f.attrs, "settings")),
                       source=r.text(f.attrs, "source", ""), dataset=dataset, operator=operator,
                       built_system=system)
    if "results" in f:
        _read_results(r, f["results"], data, shape)
    if "comparison" in f:
        _read_comparison(r, f["comparison"], data, shape)
    return data


def _read_comparison(r: _Reader, g, data: SessionData, shape: tuple) -> None:
    """The Compare tab's saved comparison: rows of scores and each method's members."""
    import h5py

    if not isinstance(g, h5py.Group) or not isinstance(g.get("members"), h5py.Group):
        r.fail("'comparison' must be a group holding 'members'")
    truth = r.array(g, "truth", required=True)
    _check_trajectory(r, "comparison/truth", truth, shape)
    rows = r.json(g.attrs, "rows", "[]")
    if not isinstance(rows, list) or not rows or not all(isinstance(x, dict) and isinstance(x.get("method"), str)
                                                          and isinstance(x.get("title"), str) for x in rows):
        r.fail("comparison: 'rows' must be a list of score tables, each naming its method and title")
    members = {}
    for method in g["members"]:
        x = r.array(g["members"], method, required=True)
        if x.ndim != 2 + len(shape) or x.shape[1:] != truth.shape or x.shape[0] < 1:
            r.fail(f"comparison: members of {method} {_shape_text(x.shape)} are not (N, {', '.join(map(str, truth.shape))})")
        if not np.isfinite(x).all():
            r.fail(f"comparison: members of {method} hold NaN or infinity")
        members[method] = x
    unknown = set(members) - {row["method"] for row in rows}
    if unknown:
        r.fail(f"comparison: members of {', '.join(sorted(unknown))} have no row of scores")
    settings = r.json(g.attrs, "settings")
    if not isinstance(settings, dict):
        r.fail("comparison: 'settings' must be a mapping")
    data.comparison = {"rows": rows, "settings": settings, "truth": truth, "members": members}


def _read_results(r: _Reader, g, data: SessionData, shape: tuple) -> None:
    import h5py

    if not isinstance(g, h5py.Group):
        r.fail("'results' must be a group")
    samples = r.array(g, "samples", required=True)
    if samples.ndim != 2 + len(shape) or tuple(samples.shape[2:]) != shape:
        r.fail(f"samples {_shape_text(samples.shape)} are not (N, L, {', '.join(map(str, shape))})")
    if samples.shape[0] < 1 or samples.shape[1] < 1:
        r.fail(f"samples {_shape_text(samples.shape)} hold no trajectory")
    if not np.isfinite(samples).all():
        r.fail("samples hold NaN or infinity")
    length = int(samples.shape[1])
    operator = r.text(g.attrs, "operator", "") or None
    grid = _check_operator(r, operator, shape)
    mask = r.array(g, "mask", required=True, kind="bool")
    if mask.shape != (length, *grid):
        r.fail(f"the results' pattern {_shape_text(mask.shape)} does not fit their samples "
               f"(expected {_shape_text((length, *grid))})")
    values = r.array(g, "values", required=True)
    if values.shape != mask.shape:
        r.fail(f"the results' values {_shape_text(values.shape)} do not match their pattern {_shape_text(mask.shape)}")
    if not np.isfinite(values[mask]).all():
        r.fail("the results' observed values hold NaN or infinity")
    std = r.array(g, "std")
    std = _check_std(r, "results/std", data.obs_std if std is None else std, mask)
    truth = r.array(g, "truth")
    _check_trajectory(r, "results/truth", truth, shape, length)
    data.samples, data.result_mask, data.result_values, data.result_std = samples, mask, values, std
    data.result_truth, data.result_operator = truth, operator
    data.result_settings = _check_result_settings(r, r.json(g.attrs, "settings"))
