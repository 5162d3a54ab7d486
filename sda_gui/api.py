"""The script API: a whole experiment in about five lines of a notebook.

    import sda_gui as sda

    system = sda.system("lorenz96")                     # or sda.load_system_file("my_model.py")
    truth = sda.simulate(system, n=1, length=33, seed=1)[0]
    obs = sda.observe(truth, every_states=4, every_variables=2, std=1.0, seed=2)
    result = sda.assimilate(system, obs, method="sda", n=16)
    sda.scores(result, truth)                           # RMSE, spread, CRPS, coverage, …

``result.members`` ``(N, L, *state)``, ``result.mean``, ``result.spread`` are numpy
arrays in physical units; ``result.to_xarray()`` is an xarray Dataset with the
system's coordinates (``sample``, ``time``, the state's dims), the mean and spread as
variables, and the run's provenance as attributes. Every method of the command line
runs through the same ``run_method``; ``settings`` are the method's (``steps``,
``corrections``, ``inflation``, …). The functions import torch on first use, so
``import sda_gui`` itself stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

__all__ = ["system", "load_system_file", "simulate", "observe", "observation_mask", "load_model", "assimilate",
           "scores", "Result"]


def system(name: str, **params):
    """A registered system by name (built-in, from a loaded plugin file or an installed package)."""
    from sda_gui.core.systems import make_system

    return make_system(name, **params)


def load_system_file(path) -> list:
    """Runs a plugin file (``DynamicalSystem``/``Operator`` subclasses) and returns the systems it defines,
    built with their default parameters when they have them (else the names)."""
    from sda_gui.core.systems import make_system
    from sda_gui.core.systems.plugins import load_system_file as load

    out = []
    for name in load(path):
        try:
            out.append(make_system(name))
        except TypeError:                      # a constructor without defaults: the name to build it with
            out.append(name)
    return out


def _system(value):
    return system(value) if isinstance(value, str) else value


def simulate(system, n: int = 1, length: int = 64, seed: int = 0, device="cpu") -> np.ndarray:
    """``n`` trajectories of ``length`` states ``(n, length, *state_shape)``, float32, reproducible from ``seed``."""
    x = _system(system).simulate(int(n), int(length), seed=int(seed), device=device)
    return x.cpu().numpy().astype(np.float32)


def observation_mask(grid_shape: Sequence[int], every_states: int = 1, every_variables: int = 1,
                     density: Optional[float] = None, seed: int = 0) -> np.ndarray:
    """The pattern rule ``(L, *grid)``: every n-th state; of those, every m-th entry of a vector (every
    m-th point along each spatial axis of a field ``(C, H, W)``, all channels); then, when ``density``
    is given, each of those kept with that probability (seeded)."""
    shape = tuple(int(n) for n in grid_shape)
    if every_states < 1 or every_variables < 1:
        raise ValueError("every_states and every_variables must be ≥ 1")
    mask = np.zeros(shape, dtype=bool)
    picks = [slice(None, None, int(every_states))]
    if len(shape) >= 3:                        # (L, C, ..., H, W): the last two are the grid
        picks += [slice(None)] * (len(shape) - 3) + [slice(None, None, int(every_variables))] * 2
    else:
        picks += [slice(None, None, int(every_variables))] * (len(shape) - 1)
    mask[tuple(picks)] = True
    if density is not None:
        if not 0 < float(density) <= 1:
            raise ValueError(f"density must lie in (0, 1], got {density}")
        mask &= np.random.default_rng(int(seed) + 1).random(shape) < float(density)
    return mask


def observe(truth, every_states: int = 1, every_variables: int = 1, density: Optional[float] = None,
            operator: Optional[str] = None, std: float = 0.1, seed: int = 0):
    """Noisy observations ``y = A(truth)[mask] + σ ε`` of a trajectory ``(L, *state)`` (or ``(1, L, *state)``)
    through a pattern rule (``observation_mask``) on the operator's output grid; an ``Observation``."""
    from sda_gui.core.observation import parse_operator, synthesize

    truth = np.asarray(truth)
    if truth.ndim >= 3 and truth.shape[0] == 1:
        truth = truth[0]
    grid = parse_operator(operator).output_shape(tuple(truth.shape[1:]))
    mask = observation_mask((truth.shape[0], *grid), every_states, every_variables, density, seed)
    if not mask.any():
        raise ValueError("the pattern observes nothing; lower every_states/every_variables or raise density")
    return synthesize(truth, mask, std, seed=int(seed), operator=operator)


def load_model(path_or_system=None, device="cpu"):
    """A score model: from a checkpoint path, or a system's (or system name's) shipped model."""
    from pathlib import Path

    from sda_gui.core.diffusion.checkpoint import load_checkpoint, load_model_for, model_system

    if isinstance(path_or_system, (str, Path)) and (Path(path_or_system).suffix in (".pt", ".pth")
                                                    or Path(path_or_system).exists()):
        model = load_checkpoint(path_or_system, device)
        model_system(model)                    # its system available (a plugin file loaded from its record)
        return model
    name = path_or_system if isinstance(path_or_system, str) else getattr(path_or_system, "name", None)
    if not name:
        raise ValueError("load_model needs a checkpoint path or a system (or its name)")
    return load_model_for(name, None, device)


@dataclass
class Result:
    """Posterior members of one run, their summary and where they came from."""

    members: np.ndarray                    # (N, L, *state_shape), physical units
    system: Any
    observation: Any
    method: str
    settings: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    @property
    def mean(self) -> np.ndarray:
        return self.members.mean(0)

    @property
    def spread(self) -> np.ndarray:
        """The members' standard deviation per entry (ddof 1; zero for one member)."""
        n = self.members.shape[0]
        return self.members.std(0, ddof=1) if n > 1 else np.zeros_like(self.members[0])

    def to_xarray(self):
        """An xarray Dataset: ``samples(sample, time, *state)``, ``mean`` and ``spread`` (time, *state),
        the system's coordinates and the run's provenance (``meta``) as attributes."""
        from sda_gui.core.netcdf import samples_dataset

        ds = samples_dataset(self.members, self.system, self.provenance)
        dims = ds["samples"].dims[1:]
        ds["mean"] = (dims, self.mean.astype(np.float32), {"long_name": "posterior mean"})
        ds["spread"] = (dims, self.spread.astype(np.float32), {"long_name": "posterior standard deviation"})
        return ds

    def __repr__(self) -> str:
        return (f"Result({self.method}, {self.members.shape[0]} members of {self.members.shape[1]} states of "
                f"{getattr(self.system, 'name', '?')})")


def assimilate(system, observation, method: str = "sda", n: int = 16, model=None, seed: int = 0, device="cpu",
               **settings) -> Result:
    """``n`` posterior members given ``observation`` by ``method`` (sda, enkf, letkf, enks, ienks, 4dvar,
    wc4dvar, bpf, rpf). SDA uses ``model`` (a path or a loaded model; default: the system's shipped model); a system
    given as None is the model's."""
    from sda_gui.core.diffusion.checkpoint import check_model_for_system, model_system
    from sda_gui.core.methods import get_method, run_method
    from sda_gui.core.provenance import provenance

    cls = get_method(method)
    system = _system(system) if system is not None else None
    model_path = None
    if cls.needs_model:
        if model is None or isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            model_path = model
            model = load_model(model if model is not None else system, device)
        if system is None:
            system = model_system(model)
        check_model_for_system(model, system)
    elif system is None:
        raise ValueError(f"{method} needs the system")
    out = run_method(cls.name, system, observation, int(n), settings or None, model=model if cls.needs_model else None,
                     device=device, seed=int(seed))
    record = provenance(system=system, model=model if cls.needs_model else None, model_path=model_path,
                        settings={"method": out.method, "members": int(n), **out.settings}, seeds={"seed": int(seed)})
    return Result(members=out.members.numpy(), system=system, observation=observation, method=out.method,
                  settings=out.settings, diagnostics=out.diagnostics, provenance=record)


def scores(result: Union[Result, np.ndarray], truth) -> dict:
    """RMSE of the mean, spread, CRPS, spread–skill, coverage, rank flatness (``core.calibration``), and the
    RMS residual to the observations when the result has them."""
    from sda_gui.core.calibration import scores as calibration_scores

    members = result.members if isinstance(result, Result) else np.asarray(result)
    truth = np.asarray(truth)
    if truth.ndim == members.ndim:
        truth = truth[0]
    out = calibration_scores(members, truth)
    observation = getattr(result, "observation", None)
    if observation is not None:
        from sda_gui.core.metrics import residual_std

        out["residual_std"] = residual_std(members, observation)
        out["obs_std"] = float(np.mean(observation.observed_std()))
    return out
