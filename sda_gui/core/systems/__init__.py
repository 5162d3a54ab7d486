"""Built-in dynamical systems and a registry to rebuild them from a config."""

from __future__ import annotations

from .base import DynamicalSystem
from .kolmogorov import KolmogorovFlow
from .lorenz63 import Lorenz63
from .lorenz96 import Lorenz96

__all__ = ["DynamicalSystem", "KolmogorovFlow", "Lorenz63", "Lorenz96", "SYSTEMS", "make_system", "register_system"]

SYSTEMS: dict[str, type] = {"lorenz63": Lorenz63, "lorenz96": Lorenz96, "kolmogorov": KolmogorovFlow}


def register_system(cls: type) -> type:
    SYSTEMS[cls.name] = cls
    return cls


def make_system(name: str, **params) -> DynamicalSystem:
    """Builds a registered system by name with its parameters (unknown names raise ValueError)."""
    try:
        cls = SYSTEMS[name]
    except KeyError:
        raise ValueError(f"unknown system '{name}' (known: {', '.join(sorted(SYSTEMS))})") from None
    return cls(**params)
