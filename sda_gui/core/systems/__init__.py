"""Built-in dynamical systems and a registry to rebuild them from a config.

``SYSTEMS`` maps a name to its class: the built-in ones, those a script registers with
``register_system``, those of plugin files (``plugins.load_system_file``) and of installed
packages (entry-point group ``sda_gui.systems``, loaded on the first unknown name).
``make_system(name, **params)`` builds one; ``system_from_config(config)`` rebuilds the
system a checkpoint, posterior file or session stored, first making its source available
(``plugins.ensure_system``).
"""

from __future__ import annotations

from .base import DynamicalSystem, NoDynamicsError
from .kolmogorov import KolmogorovFlow
from .lorenz63 import Lorenz63
from .lorenz96 import Lorenz96

__all__ = ["DynamicalSystem", "KolmogorovFlow", "Lorenz63", "Lorenz96", "SYSTEMS", "BUILTIN_SYSTEMS", "make_system",
           "register_system", "system_names", "system_from_config", "NoDynamicsError"]

BUILTIN_SYSTEMS: dict[str, type] = {"lorenz63": Lorenz63, "lorenz96": Lorenz96, "kolmogorov": KolmogorovFlow}
SYSTEMS: dict[str, type] = dict(BUILTIN_SYSTEMS)


def register_system(cls: type) -> type:
    SYSTEMS[cls.name] = cls
    return cls


def system_names() -> list[str]:
    """Every system name a user can pick: built-in, registered, plugin files and entry points."""
    from .plugins import load_entry_points

    load_entry_points()
    return sorted(SYSTEMS)


def _lookup(name: str) -> type:
    if name not in SYSTEMS:
        from .plugins import load_entry_points

        load_entry_points()
    try:
        return SYSTEMS[name]
    except KeyError:
        raise ValueError(f"unknown system '{name}' (known: {', '.join(sorted(SYSTEMS))}; a plugin's system "
                         f"needs its file loaded: --system-file PATH.py)") from None


def make_system(name: str, **params) -> DynamicalSystem:
    """Builds a registered system by name with its parameters (unknown names raise ValueError).

    A data system (``core.systems.data``) rebuilds from its parameters alone, under any name.
    """
    if name not in SYSTEMS and {"variables", "mean", "scale", "shape"} <= set(params):
        from .data import DataSystem

        return DataSystem(name=name, **params)
    return _lookup(name)(**params)


def system_from_config(config: dict, **overrides) -> DynamicalSystem:
    """The system of a stored ``{name, params[, source]}``, its source loaded first (a plugin file
    still there and unchanged); ``plugins.PluginError`` (one line) when that source is missing."""
    from .plugins import ensure_system

    ensure_system(config)
    return make_system(config["name"], **dict(config.get("params") or {}, **overrides))
