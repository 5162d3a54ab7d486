"""User systems (and observation operators) from plugin files and installed packages.

A *plugin file* is a Python file that defines ``DynamicalSystem`` subclasses (and,
optionally, ``Operator`` subclasses for ``plugin:NAME`` observations). Loading it
runs the file as a module of its own and registers every concrete system class it
defines under the class's ``name``, as ``register_system`` does for a built-in one.
An installed package can do the same through the entry-point group
``sda_gui.systems`` (each entry a system class or a module defining them).

Every registered system has a *source*, recorded in its config (``config()["source"]``)
and so in checkpoints, posterior files and sessions:

- ``{"kind": "builtin"}`` (not written: a config without a source is a built-in's);
- ``{"kind": "file", "path": "/abs/lorenz84.py", "sha256": "…"}``;
- ``{"kind": "entry_point", "entry_point": "name = module:Class", "package": "…", "version": "…"}``;
- ``{"kind": "script", "module": "…"}`` for a class registered by a running script;
- ``{"kind": "data", …}`` for a ``DataSystem`` (``core.systems.data``).

``ensure_system(config)`` makes a stored config's system available again (loading its
plugin file when it is still there and unchanged) or raises ``PluginError`` with one
line that says what is missing. Every failure to load is one ``PluginError`` line too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import sys
import traceback
from pathlib import Path
from typing import Optional

from .base import DynamicalSystem

__all__ = ["PluginError", "load_system_file", "load_entry_points", "source_of", "ensure_system", "sha256_file",
           "ENTRY_POINT_GROUP", "entry_point_errors", "describe_source"]

ENTRY_POINT_GROUP = "sda_gui.systems"
_NAME = re.compile(r"^[A-Za-z][\w.-]*$")

#: system name → its source (systems absent here are built-in or registered by a script)
_SOURCES: dict[str, dict] = {}
#: (resolved path, sha256) → names the file registered, so loading a file twice runs it once
_LOADED: dict[tuple, list] = {}
_entry_points_loaded = False
_entry_point_errors: list[str] = []


class PluginError(ValueError):
    """A plugin that cannot be used; the message is one line for the user."""


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _builtin_names() -> set:
    from . import BUILTIN_SYSTEMS

    return set(BUILTIN_SYSTEMS)


def _error_line(path: Path, exc: BaseException) -> str:
    """Where in the plugin file an import failed, and why, on one line."""
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__} at line {exc.lineno}: {exc.msg}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path]
    where = f" (line {frames[-1].lineno})" if frames else ""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}{where}: {text[0] if text else ''}".rstrip(": ")


def _system_classes(module, where: str) -> list:
    """The concrete ``DynamicalSystem`` subclasses a module defines; PluginError for one that is
    meant to be a system (it has a name) but lacks abstract members or a usable name."""
    found, unfinished = [], []
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if not issubclass(cls, DynamicalSystem) or cls.__module__ != module.__name__:
            continue
        name = cls.__dict__.get("name", getattr(cls, "name", ""))
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(cls.__abstractmethods__))
            if name:
                raise PluginError(f"{where}: system class {cls.__name__} ('{name}') lacks {missing} "
                                  f"(every DynamicalSystem must define them)")
            unfinished.append(f"{cls.__name__} (lacks {missing})")
            continue
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(f"{where}: system class {cls.__name__} needs a class attribute name = \"…\" "
                              f"(letters, digits, _ . -), got {name!r}")
        found.append(cls)
    if not found and unfinished:
        raise PluginError(f"{where} defines no complete system: {'; '.join(unfinished)}")
    return found


def _register(cls, source: dict, where: str) -> str:
    from . import SYSTEMS

    if cls.name in _builtin_names():
        raise PluginError(f"{where}: the system name '{cls.name}' is a built-in system's; choose another name")
    SYSTEMS[cls.name] = cls
    _SOURCES[cls.name] = dict(source)
    return cls.name


def load_system_file(path) -> list[str]:
    """Runs a plugin file and registers its systems (and operators); returns the system names.

    PluginError (one line) when the file is missing, fails to import, or defines no system
    and no operator.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise PluginError(f"system file not found: {path}")
    if path.is_dir():
        raise PluginError(f"{path} is a folder, not a Python file")
    if path.suffix != ".py":
        raise PluginError(f"{path.name}: a system file is a Python file ending in .py")
    path = path.resolve()
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise PluginError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    if (str(path), digest) in _LOADED:
        return list(_LOADED[(str(path), digest)])
    stem = re.sub(r"\W", "_", path.stem)
    module_name = f"sda_gui_plugin_{stem}_{digest[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot load {path.name} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module           # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code may raise anything; it must end as one line
        sys.modules.pop(module_name, None)
        raise PluginError(f"cannot import {path.name}: {_error_line(path, exc)}") from None
    classes = _system_classes(module, path.name)
    from ..operators import operator_classes, register_operator

    operators = operator_classes(module, path.name)
    if not classes and not operators:
        sys.modules.pop(module_name, None)
        raise PluginError(f"{path.name} defines no DynamicalSystem subclass (and no Operator subclass with a name)")
    source = {"kind": "file", "path": str(path), "sha256": digest}
    names = [_register(cls, source, path.name) for cls in classes]
    for op in operators:
        register_operator(op, source)
    _LOADED[(str(path), digest)] = names
    return names


def entry_point_errors() -> list[str]:
    """One line for each entry point of ``sda_gui.systems`` that failed to load."""
    return list(_entry_point_errors)


def load_entry_points(force: bool = False) -> list[str]:
    """Registers the systems of every installed ``sda_gui.systems`` entry point (once per process).

    A broken entry point does not hide the others: its line goes to ``entry_point_errors``.
    """
    global _entry_points_loaded
    if _entry_points_loaded and not force:
        return []
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    names = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        source = {"kind": "entry_point", "entry_point": f"{ep.name} = {ep.value}",
                  "package": getattr(dist, "name", None) if dist else None,
                  "version": getattr(dist, "version", None) if dist else None}
        where = f"entry point '{ep.name}' ({ep.value})"
        try:
            obj = ep.load()
            if inspect.ismodule(obj):
                classes = _system_classes(obj, where)
            elif inspect.isclass(obj) and issubclass(obj, DynamicalSystem):
                classes = _system_classes(sys.modules[obj.__module__], where)
                classes = [c for c in classes if c is obj] or [obj]
                if inspect.isabstract(obj):
                    raise PluginError(f"{where}: {obj.__name__} lacks {', '.join(sorted(obj.__abstractmethods__))}")
            else:
                raise PluginError(f"{where} is neither a DynamicalSystem subclass nor a module")
            if not classes:
                raise PluginError(f"{where} defines no DynamicalSystem subclass")
            names += [_register(cls, source, where) for cls in classes]
        except PluginError as exc:
            _entry_point_errors.append(str(exc))
        except Exception as exc:  # an installed package's code may raise anything
            _entry_point_errors.append(f"{where}: cannot load: {type(exc).__name__}: {exc}".splitlines()[0])
    return names


def source_of(system) -> dict:
    """The source of a system (an instance or a class): see the module docstring."""
    cls = system if inspect.isclass(system) else type(system)
    own = getattr(system, "source", None)
    if isinstance(own, dict):                     # a DataSystem carries its own
        return dict(own)
    name = getattr(cls, "name", "")
    if name in _SOURCES and _is_registered(name, cls):
        return dict(_SOURCES[name])
    if name in _builtin_names() and cls.__module__.startswith("sda_gui.core.systems"):
        return {"kind": "builtin"}
    return {"kind": "script", "module": cls.__module__}


def _is_registered(name: str, cls) -> bool:
    from . import SYSTEMS

    return SYSTEMS.get(name) is cls


def describe_source(source: Optional[dict]) -> str:
    """A source in a few words, for messages and reports."""
    source = source or {"kind": "builtin"}
    kind = source.get("kind")
    if kind == "file":
        return f"the plugin file {source.get('path')}"
    if kind == "entry_point":
        return f"the entry point {source.get('entry_point')} of the package {source.get('package')}"
    if kind == "data":
        return f"the data file {source.get('path', '?')}"
    if kind == "script":
        return f"the script module {source.get('module')}"
    return "SDA Studio (built-in)"


def ensure_system(config: dict) -> None:
    """Makes the system of a stored config (``{name, params[, source]}``) available, or raises
    PluginError naming what is missing and how to supply it."""
    from . import SYSTEMS

    name = config.get("name") if isinstance(config, dict) else None
    if not isinstance(name, str) or not name:
        raise PluginError("the stored system has no name")
    source = config.get("source") if isinstance(config.get("source"), dict) else {"kind": "builtin"}
    kind = source.get("kind")
    if kind == "data":
        return                          # a data system rebuilds from its parameters alone
    if name in SYSTEMS:
        return
    load_entry_points()
    if name in SYSTEMS:
        return
    if kind == "file":
        path = Path(str(source.get("path", "")))
        if path.is_file() and sha256_file(path) == source.get("sha256"):
            load_system_file(path)
            if name in SYSTEMS:
                return
        state = "has changed since" if path.is_file() else "is not there any more"
        raise PluginError(f"the system '{name}' comes from the plugin file {path}, which {state}; "
                          f"load its file (--system-file PATH.py)")
    if kind == "entry_point":
        raise PluginError(f"the system '{name}' comes from {describe_source(source)}, which is not installed")
    if kind == "script":
        raise PluginError(f"the system '{name}' was registered by the script module {source.get('module')}; "
                          f"register it again (or load its file with --system-file PATH.py)")
    raise PluginError(f"unknown system '{name}' (known: {', '.join(sorted(SYSTEMS))}); "
                      f"load its file with --system-file PATH.py")
