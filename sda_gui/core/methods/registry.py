"""The registry of assimilation methods and the one call every caller uses.

``run_method(name, system, observation, n_members, settings, …)`` builds the
method's settings (per-system defaults, then the caller's overrides, checked),
runs it, times it and returns a ``MethodResult`` whose ``members`` are
``(N, L, *state_shape)`` float32 CPU tensors in physical units. The CLI,
``compare``, the app's worker and the lessons call nothing else.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from typing import Callable, Optional

import torch

from ..observation import Observation, ObservationError
from .base import Method, MethodError, MethodResult, Progress, RunContext, settings_from

__all__ = ["register_method", "get_method", "method_names", "run_method", "METHODS"]

METHODS: dict[str, type[Method]] = {}

# modules that register the built-in methods when imported (loaded on first use)
_BUILTIN_MODULES = ("sda", "ensemble_kalman", "local", "smoothers", "variational", "weak_constraint", "particle")
_loaded = False


def register_method(cls: type[Method]) -> type[Method]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a registry name")
    METHODS[cls.name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as exc:
            # a family not written yet must not hide the others
            if exc.name != f"{__package__}.{mod}":
                raise


def method_names() -> list[str]:
    """Registered methods, SDA first, then in registration order."""
    _load_builtins()
    names = list(METHODS)
    return sorted(names, key=lambda n: (n != "sda", names.index(n)))


def get_method(name: str) -> type[Method]:
    _load_builtins()
    try:
        return METHODS[str(name).strip().lower()]
    except KeyError:
        raise MethodError(f"unknown method '{name}' (known: {', '.join(method_names())})") from None


def run_method(name: str, system, observation: Observation, n_members: int, settings: Optional[dict] = None, *,
               model=None, device="cpu", seed: int = 0, progress: Optional[Progress] = None,
               should_stop: Optional[Callable[[], bool]] = None) -> MethodResult:
    """Runs method ``name`` on one problem; see the module docstring."""
    cls = get_method(name)
    config = settings_from(cls, system, settings)
    if isinstance(n_members, bool) or int(n_members) < 1:
        raise MethodError("the number of members (samples) must be ≥ 1")
    if cls.needs_model and model is None:
        raise MethodError(f"{cls.title} needs a trained score model")
    if not cls.needs_model and not getattr(system, "has_dynamics", True):
        # every classical method steps the system's model forward; a data system has none
        raise MethodError(f"{cls.title} needs the system's dynamics, and {system.name} is a data system (built "
                          f"from trajectories, no transition): use sda with a model trained on the data")
    observation.validate(tuple(system.state_shape))
    if observation.length < 1:
        raise ObservationError("the observation covers no states")
    device = device if isinstance(device, torch.device) else torch.device(str(device))
    ctx = RunContext(system=system, observation=observation, n_members=int(n_members), device=device,
                     seed=int(seed), model=model, progress=progress, should_stop=should_stop)
    t0 = time.perf_counter()
    result = cls(config).run(ctx)
    seconds = time.perf_counter() - t0
    members = result.members.detach().float().cpu()
    expected = (int(n_members), observation.length, *system.state_shape)
    if tuple(members.shape) != expected:
        raise RuntimeError(f"{cls.name} returned members of shape {tuple(members.shape)}, expected {expected}")
    if not torch.isfinite(members).all():
        bad = int((~torch.isfinite(members)).flatten(1).any(1).sum())
        raise FloatingPointError(f"{cls.title} diverged: {bad} of {n_members} members hold NaN or infinity")
    diagnostics = dict(result.diagnostics)
    diagnostics.setdefault("seconds", seconds)
    diagnostics.setdefault("device", str(device))
    return MethodResult(members=members, diagnostics=diagnostics, method=cls.name,
                        settings=dataclasses.asdict(config))
