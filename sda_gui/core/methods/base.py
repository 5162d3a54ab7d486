"""One interface for every assimilation method (SDA and the classical ones).

A *method* maps a problem — a dynamical system, an observation
``y ~ N(A(x_{1:L}), diag(σ²))`` of a window of ``L`` states and an ensemble
size ``N`` — to ``N`` posterior *members* ``(N, L, *state_shape)`` in physical
units, plus diagnostics (a dict of numbers and short strings: iterations,
effective sample sizes, inflation used, …). Every method starts cold from what
SDA knows: the system's climatology (``system.initial_states``) and the
window's observations; none sees the truth.

Shape of a method (one module per family, registered with ``@register_method``)::

    @register_method
    class MyMethod(Method):
        name = "mine"; title = "My method"; family = "filter"

        @dataclass
        class Settings:
            inflation: float = 1.0

        @classmethod
        def default_settings(cls, system) -> "MyMethod.Settings": ...   # per-system defaults

        def run(self, ctx: RunContext) -> MethodResult: ...

``run`` reports with ``ctx.step(done, total, estimate)``, which also raises
``Cancelled`` when the caller asked to stop, so a cancel takes effect within one
step. Callers use ``registry.run_method``; none special-cases a method.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

import torch

from ..diffusion.sampler import Cancelled
from ..observation import Observation

__all__ = ["Method", "MethodError", "MethodResult", "RunContext", "Progress", "Cancelled", "settings_from"]

# progress(done, total, estimate (N, L, *state_shape) physical units on the CPU, or None)
Progress = Callable[[int, int, Optional[torch.Tensor]], None]


class MethodError(ValueError):
    """A method cannot run with these settings or on this problem; one line for the user."""


@dataclass
class MethodResult:
    #: posterior members ``(N, L, *state_shape)``, float32, CPU, physical units
    members: torch.Tensor
    #: method-specific numbers (and short strings), plus ``seconds`` and ``device`` from the registry
    diagnostics: dict = field(default_factory=dict)
    #: registry name of the method and the settings it ran with (JSON-serialisable)
    method: str = ""
    settings: dict = field(default_factory=dict)


@dataclass
class RunContext:
    """Everything a method's ``run`` gets: the problem and the caller's hooks."""

    system: Any                       # DynamicalSystem
    observation: Observation
    n_members: int
    device: torch.device
    seed: int = 0
    model: Any = None                 # LocalScoreModel, for methods with ``needs_model``
    progress: Optional[Progress] = None
    should_stop: Optional[Callable[[], bool]] = None
    generator: torch.Generator = None  # seeded from ``seed`` on ``device`` when not given

    def __post_init__(self):
        if self.generator is None:
            self.generator = torch.Generator(device=self.device).manual_seed(int(self.seed))

    @property
    def length(self) -> int:
        return self.observation.length

    @property
    def state_shape(self) -> tuple:
        return tuple(self.system.state_shape)

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled()

    def step(self, done: int, total: int, estimate: Optional[torch.Tensor] = None) -> None:
        """Reports progress (``estimate`` in physical units, any device) and honours a cancel."""
        self.check_stop()
        if self.progress is not None:
            self.progress(int(done), int(total), None if estimate is None else estimate.detach().float().cpu())


class Method(ABC):
    """An assimilation method: settings in, posterior members and diagnostics out."""

    #: registry name (``--method``), e.g. "letkf"
    name: ClassVar[str] = ""
    #: human readable name for tables and the app
    title: ClassVar[str] = ""
    #: "diffusion", "filter", "smoother", "variational" or "particle"
    family: ClassVar[str] = ""
    #: whether ``ctx.model`` (a trained score model) is required
    needs_model: ClassVar[bool] = False

    @dataclass
    class Settings:
        pass

    @classmethod
    def default_settings(cls, system) -> Any:
        """The settings a user gets for ``system`` when they pass none (override per method)."""
        return cls.Settings()

    @classmethod
    def fit_defaults(cls, settings, system, given: set) -> None:
        """Turns off, in place, a per-system default that the user's own choices (the names in
        ``given``) rule out, so that choosing e.g. another guidance does not fail on a default
        the user never set (override per method; nothing by default)."""

    @classmethod
    def check_settings(cls, settings, system) -> None:
        """Raises ``MethodError`` for a value no run could use (override to add checks)."""

    def __init__(self, settings=None):
        self.settings = settings if settings is not None else self.Settings()

    @abstractmethod
    def run(self, ctx: RunContext) -> MethodResult:
        """Posterior members for ``ctx``'s problem (``MethodResult.members`` on the CPU)."""


def settings_from(cls: type, system, overrides: Optional[dict] = None):
    """``cls.default_settings(system)`` with ``overrides`` applied, each checked by name and type.

    ``None`` values are skipped (an option the user did not give). Numbers are
    coerced to the field's type and must be finite; unknown names raise. A per-system
    default that the given values rule out is turned off (``fit_defaults``) before the
    whole is checked.
    """
    settings = cls.default_settings(system)
    fields = {f.name: f for f in dataclasses.fields(settings)}
    given = set()
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        given.add(key)
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise MethodError(f"{cls.name} has no setting '{key}' (its settings: {known})")
        current = getattr(settings, key)
        try:
            if isinstance(current, bool):
                if isinstance(value, str):
                    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[value.lower()]
                value = bool(value)
            elif isinstance(current, int):
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                value = int(value)
            elif isinstance(current, float):
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError
            elif isinstance(current, str):
                value = str(value)
        except (ValueError, TypeError, KeyError):
            raise MethodError(f"{cls.name}: setting {key} must be a finite {type(current).__name__}, got {value!r}") from None
        setattr(settings, key, value)
    cls.fit_defaults(settings, system, given)
    cls.check_settings(settings, system)
    return settings
