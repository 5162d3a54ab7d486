"""A "data" system: trajectories from a file, with no dynamics of their own.

A user with their own trajectories ``(M, T, *state_shape)`` (a model run, reanalysis,
measurements) trains a score model on them and assimilates with SDA, which needs only
that prior. ``DataSystem`` stands for such data wherever a system is expected: its own
``name`` (from the file), ``variable_names``, ``dt`` (from the file's time coordinate
or given), and a normalisation computed from the data, per variable (the first state
axis):

    mean_c = E[x_c],   scale_c = std[x_c]   (over trajectories, times and any grid axes;
                                             a constant variable gets scale 1)

All of these are its ``params``, so a checkpoint's ``system`` config rebuilds it with
``make_system(name, **params)`` (a name the registry does not know, with data
parameters, builds a ``DataSystem``); its ``source`` records the file and its sha256.
It has no ``prior`` or ``transition``: the classical methods, which step a model
forward, refuse it with one line (``NoDynamicsError``); SDA works.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .base import DynamicalSystem, NoDynamicsError

__all__ = ["DataSystem", "data_system_name"]


def data_system_name(text: str) -> str:
    """A registry-safe name from a file's title or stem, never a built-in or plugin system's."""
    from . import SYSTEMS

    name = re.sub(r"[^\w.-]+", "_", str(text).strip()).strip("_.-") or "data"
    if not name[0].isalpha():
        name = "data_" + name
    if name in SYSTEMS and getattr(SYSTEMS[name], "has_dynamics", True):
        name += "-data"
    return name


class DataSystem(DynamicalSystem):
    has_dynamics = False

    def __init__(self, name: str, variables: list, mean: list, scale: list, shape: list, dt: float = 1.0,
                 title: str = "", units: str = "", dims: Optional[list] = None, origin: Optional[dict] = None):
        shape = tuple(int(n) for n in shape)
        if not shape or any(n < 1 for n in shape):
            raise ValueError(f"a data system needs a state shape of positive sizes, got {shape}")
        variables = [str(v) for v in variables]
        if len(variables) != shape[0]:
            raise ValueError(f"{len(variables)} variable names for {shape[0]} variables")
        mean, scale = [float(v) for v in mean], [float(v) for v in scale]
        if len(mean) != shape[0] or len(scale) != shape[0]:
            raise ValueError(f"mean and scale need one value per variable ({shape[0]})")
        if not all(math.isfinite(v) for v in mean + scale) or min(scale) <= 0:
            raise ValueError("the data's mean and scale must be finite, the scale > 0")
        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"the time step must be finite and > 0, got {dt}")
        self.name = str(name)
        self.title = str(title or name)
        self._variables, self._mean, self._scale, self._shape = variables, mean, scale, shape
        self._dt, self.units = dt, (str(units) or None)
        self._dims = [str(d) for d in dims] if dims else None
        self._origin = dict(origin or {})

    @classmethod
    def from_trajectories(cls, data, name: str, variable_names: Optional[list] = None, dt: Optional[float] = None,
                          units: str = "", dims: Optional[list] = None, origin: Optional[dict] = None,
                          title: str = "") -> "DataSystem":
        """The data system of trajectories ``(M, T, *state_shape)``: normalisation from the data."""
        x = torch.as_tensor(np.asarray(data), dtype=torch.float64)
        if x.ndim < 3:
            raise ValueError(f"trajectories must have shape (M, T, *state), got {tuple(x.shape)}")
        shape = tuple(x.shape[2:])
        per_var = x.movedim(2, 0).reshape(shape[0], -1)
        mean = per_var.mean(1)
        std = per_var.std(1, correction=0)
        scale = torch.where(std > 1e-12 * (1 + mean.abs()), std, torch.ones_like(std))
        names = list(variable_names or [])
        if len(names) != shape[0]:
            names = [f"x{i + 1}" for i in range(shape[0])]
        return cls(name=name, variables=names, mean=[round(float(v), 7) for v in mean],
                   scale=[round(float(v), 7) for v in scale], shape=list(shape), dt=dt or 1.0, title=title or name,
                   units=units, dims=dims, origin=origin)

    @property
    def state_shape(self):
        return self._shape

    @property
    def variable_names(self):
        return list(self._variables)

    @property
    def state_dims(self):
        return tuple(self._dims) if self._dims and len(self._dims) == len(self._shape) else None

    @property
    def params(self):
        params = {"variables": list(self._variables), "mean": list(self._mean), "scale": list(self._scale),
                  "shape": list(self._shape), "dt": self._dt, "title": self.title, "units": self.units or ""}
        if self._dims:
            params["dims"] = list(self._dims)
        if self._origin:
            params["origin"] = dict(self._origin)
        return params

    @property
    def source(self) -> dict:
        """Where the data came from (``plugins.source_of`` reads it)."""
        return {"kind": "data", **{k: v for k, v in self._origin.items() if k in ("path", "sha256", "variable")}}

    def normalization(self):
        tail = (1,) * (len(self._shape) - 1)
        return (torch.tensor(self._mean, dtype=torch.float32).reshape(-1, *tail),
                torch.tensor(self._scale, dtype=torch.float32).reshape(-1, *tail))

    def _refuse(self):
        raise NoDynamicsError(f"the data system '{self.name}' has no dynamics (it was built from trajectories): "
                              f"use sda with a model trained on the data")

    def prior(self, n, generator, device="cpu"):
        self._refuse()

    def transition(self, x, generator=None):
        self._refuse()

    def simulate(self, *args, **kwargs):
        self._refuse()

    @staticmethod
    def origin_of(path, variable: Optional[str] = None) -> dict:
        """The ``origin`` of a data file: its absolute path, sha256 and the variable read."""
        from .plugins import sha256_file

        path = Path(path).resolve()
        out = {"path": str(path), "sha256": sha256_file(path)}
        if variable:
            out["variable"] = str(variable)
        return out
