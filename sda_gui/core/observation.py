"""Observations ``y ~ N(A(x_{1:L}), diag(std²))`` in physical units, and their files.

An observation is a boolean ``mask``, ``values`` of the same shape (ignored where
the mask is false) and a ``std`` (scalar, or per entry). Without an operator the
mask lives on the trajectory array ``(L, *state_shape)`` and ``A(x) = x[mask]``.
With an operator (``"coarsen:n"``: block average over the spatial axes,
``"subsample:n"``: every n-th point along them) the mask, values and std live in
the operator's output space ``(L, *op.output_shape(state_shape))`` and
``A(x) = op(x)[mask]``. Spatial axes are the last one of a 1-D state ``(N,)``
and the last two of a field ``(C, H, W)``. Nonlinear and derived operators
(``vorticity``, ``saturate``, ``plugin:NAME``) and chains of stages
(``vorticity+saturate``) live in ``core.operators``, whose docstring gives the grammar.

Files (``.npz``, ``.h5`` or netCDF ``.nc``) hold ``mask``, ``values``, ``std`` and
optionally ``operator``; they are written atomically and read without unpickling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "Observation", "ObservationError", "Operator", "Identity", "Coarsen", "Subsample",
    "parse_operator", "synthesize", "every_nth_state_mask",
]


class ObservationError(ValueError):
    """A malformed observation; the message is one line meant for the user."""


def _spatial_dims(state_ndim: int) -> int:
    return 2 if state_ndim >= 2 else 1


class Operator:
    """A differentiable map from states ``(..., *state_shape)`` to an output grid.

    It acts on each state alone (the guidance relies on it). ``linear``: whether its
    Jacobian is the same everywhere; ``graph_safe``: whether ``gain`` never syncs with
    the host (so a guided call can be captured in a CUDA graph).
    """

    spec: Optional[str] = None
    linear: bool = True
    graph_safe: bool = True

    def output_shape(self, state_shape: tuple) -> tuple:
        return tuple(state_shape)

    def __call__(self, x: torch.Tensor, state_ndim: int) -> torch.Tensor:
        return x

    def gain(self, scale2: torch.Tensor, state_ndim: int, x: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``diag(J D Jᵀ)`` for the input variance ``D = scale2`` (with ``x = x_n · scale``: how a
        unit isotropic variance in normalised units shows in the output). A nonlinear operator's
        Jacobian is taken at the physical states ``x`` (linearised there); a linear one ignores it."""
        return scale2


class Identity(Operator):
    pass


class Coarsen(Operator):
    def __init__(self, factor: int):
        if factor < 1:
            raise ObservationError("coarsen factor must be ≥ 1")
        self.factor = int(factor)
        self.spec = f"coarsen:{self.factor}"

    def output_shape(self, state_shape):
        d = _spatial_dims(len(state_shape))
        head, tail = state_shape[:-d], state_shape[-d:]
        if any(n % self.factor for n in tail):
            raise ObservationError(f"{self.spec} does not divide the state grid {tuple(tail)}")
        return tuple(head) + tuple(n // self.factor for n in tail)

    def __call__(self, x, state_ndim):
        d = _spatial_dims(state_ndim)
        f = self.factor
        lead = x.shape[:-d]
        flat = x.reshape(-1, 1, *x.shape[-d:])
        pooled = F.avg_pool2d(flat, f) if d == 2 else F.avg_pool1d(flat, f)
        return pooled.reshape(*lead, *pooled.shape[2:])

    def gain(self, scale2, state_ndim, x=None):
        # each output averages f^d inputs: Σ_j (s_j / f^d)² = mean(s²) / f^d
        return self(scale2, state_ndim) / self.factor ** _spatial_dims(state_ndim)


class Subsample(Operator):
    def __init__(self, step: int):
        if step < 1:
            raise ObservationError("subsample step must be ≥ 1")
        self.step = int(step)
        self.spec = f"subsample:{self.step}"

    def output_shape(self, state_shape):
        d = _spatial_dims(len(state_shape))
        return tuple(state_shape[:-d]) + tuple(math.ceil(n / self.step) for n in state_shape[-d:])

    def __call__(self, x, state_ndim):
        s = self.step
        return x[..., ::s, ::s] if _spatial_dims(state_ndim) == 2 else x[..., ::s]

    def gain(self, scale2, state_ndim, x=None):
        return self(scale2, state_ndim)


def parse_operator(spec: Optional[str]) -> Operator:
    """``None``/``""``/``"identity"`` → Identity; ``"coarsen:8"``; ``"subsample:4"``; ``"vorticity"``;
    ``"saturate"``; ``"plugin:NAME"``; stages chained with ``+`` (``core.operators``)."""
    if spec is None or str(spec).strip() in ("", "identity", "none"):
        return Identity()
    from .operators import build_operator

    return build_operator(str(spec).strip())


@dataclass
class Observation:
    mask: np.ndarray
    values: np.ndarray
    std: Union[float, np.ndarray]
    operator: Optional[str] = None

    def __post_init__(self):
        self.mask = np.asarray(self.mask, dtype=bool)
        self.values = np.asarray(self.values, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        self.std = float(std) if std.ndim == 0 else std
        if self.operator in ("", "identity", "none"):
            self.operator = None

    @property
    def length(self) -> int:
        return int(self.mask.shape[0])

    @property
    def count(self) -> int:
        return int(self.mask.sum())

    def observed_states(self) -> np.ndarray:
        """Indices of the states with at least one observed entry."""
        return np.flatnonzero(self.mask.reshape(self.length, -1).any(axis=1))

    @property
    def op(self) -> Operator:
        return parse_operator(self.operator)

    def std_array(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.std, dtype=np.float64), self.mask.shape).copy()

    def observed_values(self) -> np.ndarray:
        return self.values[self.mask]

    def observed_std(self) -> np.ndarray:
        return self.std_array()[self.mask]

    def validate(self, state_shape: Optional[tuple] = None, length: Optional[int] = None,
                 allow_empty: bool = False) -> "Observation":
        """Raises ObservationError with one clear line when something is off."""
        if self.mask.ndim < 2:
            raise ObservationError(f"mask must have shape (L, *state_shape), got {self.mask.shape}")
        if self.values.shape != self.mask.shape:
            raise ObservationError(f"values shape {self.values.shape} differs from mask shape {self.mask.shape}")
        if state_shape is not None:
            expected = self.op.output_shape(tuple(state_shape))
            where = f" (output of {self.operator})" if self.operator else ""
            if tuple(self.mask.shape[1:]) != expected:
                raise ObservationError(
                    f"mask shape {self.mask.shape} does not fit states of shape {tuple(state_shape)}{where}: "
                    f"expected (L, {', '.join(map(str, expected))})")
        if length is not None and self.length != length:
            raise ObservationError(f"observation covers {self.length} states, expected {length}")
        std = np.asarray(self.std)
        if std.ndim not in (0, self.mask.ndim) or (std.ndim and std.shape != self.mask.shape):
            raise ObservationError(f"std must be a scalar or have the mask's shape {self.mask.shape}, got {std.shape}")
        if not allow_empty and self.count == 0:
            raise ObservationError("the observation mask is empty: mark at least one observed entry")
        obs_std = self.observed_std()
        if not np.all(np.isfinite(obs_std)) or np.any(obs_std <= 0):
            raise ObservationError("std must be finite and > 0 for every observed entry")
        if not np.all(np.isfinite(self.observed_values())):
            raise ObservationError("observed values contain NaN or infinity")
        return self

    # files -------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Writes ``.npz`` or ``.h5`` atomically (``datasets.write_arrays``): a failed write raises
        ``WriteError`` and leaves the previous file as it was."""
        from .datasets import write_arrays
        from .netcdf import is_netcdf, write_observation_nc

        if is_netcdf(path):
            write_observation_nc(path, self)
            return
        data = {"mask": self.mask, "values": self.values.astype(np.float32),
                "std": np.asarray(self.std, dtype=np.float32)}
        write_arrays(path, data, {"operator": self.operator} if self.operator else None, compress=True)

    @classmethod
    def load(cls, path) -> "Observation":
        from .datasets import first_line

        path = Path(path)
        if not path.exists():
            raise ObservationError(f"observation file not found: {path}")
        if path.is_dir():
            raise ObservationError(f"{path} is a folder, not an observation file")
        from .netcdf import is_netcdf, read_observation_nc

        try:
            if is_netcdf(path):
                data = read_observation_nc(path)
                op = data.pop("operator")
            elif path.suffix in (".h5", ".hdf5"):
                import h5py

                with h5py.File(path, "r") as f:
                    data = {k: f[k][()] for k in ("mask", "values", "std") if k in f}
                    op = f.attrs.get("operator", f["operator"][()] if "operator" in f else None)
            else:
                with np.load(path, allow_pickle=False) as f:
                    data = {k: f[k] for k in ("mask", "values", "std") if k in f.files}
                    op = f["operator"][()] if "operator" in f.files else None
        except ObservationError:
            raise
        except Exception as exc:  # h5py/zipfile raise many kinds for a broken file
            raise ObservationError(f"cannot read observation file {path.name}: {first_line(exc)}") from None
        missing = [k for k in ("mask", "values", "std") if k not in data]
        if missing:
            raise ObservationError(f"observation file {path.name} lacks {', '.join(missing)}")
        data = {k: np.asarray(v) for k, v in data.items()}
        for key, kinds in (("mask", "biuf"), ("values", "fiu"), ("std", "fiu")):
            if data[key].dtype.kind not in kinds:
                raise ObservationError(f"{path.name}: {key} must be numbers, got dtype {data[key].dtype}")
        if isinstance(op, np.ndarray):
            if op.ndim:
                raise ObservationError(f"{path.name}: operator must be one string such as coarsen:8")
            op = op.item()
        if isinstance(op, bytes):
            op = op.decode(errors="replace")
        if op is not None:
            op = str(op)
            parse_operator(op)
        if data["mask"].ndim < 2:
            raise ObservationError(f"{path.name}: mask must have shape (L, *state_shape), got {data['mask'].shape}")
        if data["mask"].dtype != bool and not np.isin(data["mask"], (0, 1)).all():
            raise ObservationError("mask must be boolean (or 0/1)")
        return cls(mask=data["mask"], values=data["values"], std=data["std"], operator=op)

    # torch side --------------------------------------------------------------------------
    def apply(self, x: torch.Tensor, state_ndim: int) -> torch.Tensor:
        """``A(x)`` for trajectories ``(..., L, *state_shape)`` → ``(..., count)``."""
        out = self.op(x, state_ndim)
        mask = torch.as_tensor(self.mask, device=x.device)
        return out[..., mask]


def synthesize(truth, mask, std, seed: int = 0, operator: Optional[str] = None) -> Observation:
    """Noisy observations of a truth trajectory ``(L, *state_shape)`` through a pattern."""
    truth_t = torch.as_tensor(np.asarray(truth), dtype=torch.float64)
    op = parse_operator(operator)
    clean = op(truth_t, truth_t.ndim - 1).numpy()
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != clean.shape:
        raise ObservationError(f"pattern shape {mask.shape} does not match the observed grid {clean.shape}")
    rng = np.random.default_rng(seed)
    std_arr = np.broadcast_to(np.asarray(std, dtype=np.float64), mask.shape)
    values = np.where(mask, clean + std_arr * rng.standard_normal(mask.shape), 0.0)
    return Observation(mask=mask, values=values, std=std, operator=op.spec)


def every_nth_state_mask(length: int, state_shape: tuple, every: int = 1, variables=None) -> np.ndarray:
    """Mask observing the given variables (indices along the first state axis) every n-th state."""
    mask = np.zeros((length, *state_shape), dtype=bool)
    sel = slice(None) if variables is None else list(variables)
    mask[::every, sel] = True
    return mask
