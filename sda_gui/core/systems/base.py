"""The common interface of a dynamical system.

A system is a Markov chain ``x_{i+1} = f(x_i) + w_i`` over states of a fixed
``state_shape``. It knows how to draw initial states (``prior``), take one
transition, simulate batches of trajectories reproducibly from a seed, and
normalise states per variable (``(x - mean) / scale``) for the score network.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Optional

import torch

__all__ = ["DynamicalSystem", "ProgressFn", "NoDynamicsError"]

# progress(done, total) -> None
ProgressFn = Callable[[int, int], None]


class NoDynamicsError(ValueError):
    """The system has no transition (it was built from data); one line for the user."""


class DynamicalSystem(ABC):
    """A stochastic dynamical system with a batched torch transition."""

    #: registry name, e.g. "lorenz63"
    name: str = ""
    #: human readable title
    title: str = ""
    #: whether ``prior`` and ``transition`` exist (False for a system built from trajectories)
    has_dynamics: bool = True
    #: names of the state's axes in files (None: ``variable`` for a vector, ``channel, y, x`` for a field)
    state_dims: Optional[tuple] = None
    #: units of the states and of time in files (None: dimensionless, model time units)
    units: Optional[str] = None
    time_units: Optional[str] = None

    @property
    @abstractmethod
    def state_shape(self) -> tuple[int, ...]:
        """Shape of one state, e.g. (3,) or (2, 64, 64)."""

    @property
    @abstractmethod
    def variable_names(self) -> list[str]:
        """One name per entry of the first state axis (e.g. x, y, z or u, v)."""

    @property
    @abstractmethod
    def params(self) -> dict:
        """The parameters that rebuild this system through ``make_system``."""

    @property
    def dt(self) -> float:
        """Physical time between two consecutive states."""
        return float(self.params.get("dt", 1.0))

    @abstractmethod
    def normalization(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, scale)`` broadcastable to ``state_shape``."""

    @abstractmethod
    def prior(self, n: int, generator: torch.Generator, device="cpu") -> torch.Tensor:
        """``n`` initial states, shape ``(n, *state_shape)``."""

    @abstractmethod
    def transition(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One step of the chain for a batch ``(n, *state_shape)``; noisy when a generator is given."""

    def burn_in(self) -> int:
        """Transitions applied to prior draws before a trajectory starts (onto the attractor)."""
        return int(self.params.get("burn_in", 0))

    def initial_states(self, n: int, generator: torch.Generator, device="cpu", progress: Optional[ProgressFn] = None) -> torch.Tensor:
        """Draws from the stationary distribution: prior, then ``burn_in`` noisy transitions."""
        x = self.prior(n, generator, device)
        total = self.burn_in()
        for i in range(total):
            x = self.transition(x, generator)
            if progress is not None and (i % 64 == 0):
                progress(i, total)
        return x

    def simulate(
        self,
        n: int,
        length: int,
        seed: int = 0,
        device="cpu",
        progress: Optional[ProgressFn] = None,
        should_stop: Optional[Callable[[], bool]] = None,
    ) -> torch.Tensor:
        """``n`` trajectories of ``length`` states, shape ``(n, length, *state_shape)``.

        The same seed gives the same trajectories on the same device.
        """
        device = torch.device(device)
        gen = torch.Generator(device=device).manual_seed(int(seed))
        burn = self.burn_in()
        total = burn + length

        def report(i, _):
            if progress is not None:
                progress(i, total)

        x = self.initial_states(n, gen, device, report)
        out = torch.empty((n, length, *self.state_shape), dtype=x.dtype, device=device)
        for i in range(length):
            if should_stop is not None and should_stop():
                raise InterruptedError("simulation cancelled")
            if i > 0:
                x = self.transition(x, gen)
            out[:, i] = x
            if progress is not None:
                progress(burn + i + 1, total)
        return out

    def augment(self, windows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Windows ``(B, W, *state_shape)`` mapped by random exact symmetries of the dynamics.

        Training uses it to see more of the attractor than the data holds; the
        windows are in normalised units. None by default.
        """
        return windows

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, scale = (v.to(x) for v in self.normalization())
        return (x - mean) / scale

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, scale = (v.to(x) for v in self.normalization())
        return x * scale + mean

    def config(self) -> dict:
        """``{"name": ..., "params": {...}}``: everything ``make_system`` needs, plus ``source``
        (where the class came from: a plugin file and its sha256, an entry point, data) for
        any system that is not built in (``plugins.source_of``)."""
        from .plugins import source_of

        cfg = {"name": self.name, "params": dict(self.params)}
        source = source_of(self)
        if source.get("kind") != "builtin":
            cfg["source"] = source
        return cfg

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"
