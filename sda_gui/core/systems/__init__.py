"""Built-in dynamical systems and a registry to rebuild them from a config."""

from __future__ import annotations

from .base import DynamicalSystem
from .lorenz63 import Lorenz63
from .lorenz96 import Lorenz96

__all__ = ["DynamicalSystem", "Lorenz63", "Lorenz96", "SYSTEMS", "make_system", "register_system"]

SYSTEMS: dict[str, type] = {"lorenz63": Lorenz63, "lorenz96": Lorenz96}


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


try:  # the Kolmogorov flow lives in its own module, written separately
    from .kolmogorov import KolmogorovFlow  # noqa: F401

    SYSTEMS["kolmogorov"] = KolmogorovFlow
    __all__.append("KolmogorovFlow")
except ImportError:
    pass
