"""The checks every subcommand's validation is built from: ranges, lists, system parameters, paths.

Each raises ``CliError`` with one line that names the option at fault. Range
rules are small callables ``rule(option, value)`` so that ``validate`` can state a
subcommand's numbers as a table; a value of ``None`` (an option not given) passes.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from pathlib import Path
from typing import Callable, Iterable, Optional

__all__ = ["CliError", "at_least", "above", "inside", "odd_at_least", "check_ranges", "int_list", "name_list",
           "parse_params", "check_system", "check_params", "check_input", "check_output", "check_out_dir",
           "load_plugins", "SEED_LIMIT"]

SEED_LIMIT = 2 ** 63
Rule = Callable[[str, object], None]


class CliError(Exception):
    """Bad command-line input; the message is the one line printed after ``error:``."""


def _number(option: str, value, integer: bool):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CliError(f"{option} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise CliError(f"{option} must be a finite number, got {value}")
    if integer and float(value) != int(value):
        raise CliError(f"{option} must be a whole number, got {value}")


def at_least(low: float, integer: bool = True) -> Rule:
    def rule(option, value):
        if value is None:
            return
        _number(option, value, integer)
        if value < low:
            raise CliError(f"{option} must be ≥ {low}, got {value}")
    return rule


def above(low: float) -> Rule:
    def rule(option, value):
        if value is None:
            return
        _number(option, value, False)
        if value <= low:
            raise CliError(f"{option} must be > {low}, got {value}")
    return rule


def inside(low: float, high: float) -> Rule:
    """The open interval ``(low, high)``."""
    def rule(option, value):
        if value is None:
            return
        _number(option, value, False)
        if not low < value < high:
            raise CliError(f"{option} must lie strictly between {low} and {high}, got {value}")
    return rule


def from_below(low: float, high: float) -> Rule:
    """The half-open interval ``[low, high)``."""
    def rule(option, value):
        if value is None:
            return
        _number(option, value, False)
        if not low <= value < high:
            raise CliError(f"{option} must be at least {low} and below {high}, got {value}")
    return rule


def odd_at_least(low: int) -> Rule:
    def rule(option, value):
        if value is None:
            return
        at_least(low)(option, value)
        if value % 2 == 0:
            raise CliError(f"{option} must be odd (a centred kernel), got {value}")
    return rule


def check_ranges(args, table: dict) -> None:
    """``table``: ``{dest: rule}``; the option's name is the dest with dashes."""
    for dest, rule in table.items():
        rule("--" + dest.replace("_", "-"), getattr(args, dest, None))


def int_list(text, option: str, low: int = 0) -> list[int]:
    items = [item.strip() for item in str(text).split(",")]
    try:
        values = [int(item) for item in items]
    except ValueError:
        raise CliError(f"{option} expects comma-separated whole numbers, got '{text}'") from None
    for v in values:
        if v < low:
            raise CliError(f"{option}: each value must be ≥ {low}, got {v}")
    return values


def name_list(text, option: str, allowed: Iterable[str]) -> list[str]:
    allowed = list(allowed)
    names = [item.strip().lower() for item in str(text).split(",")]
    if not names or any(not n for n in names):
        raise CliError(f"{option} expects comma-separated names among {', '.join(allowed)}, got '{text}'")
    for n in names:
        if n not in allowed:
            raise CliError(f"{option}: unknown '{n}' (choose among {', '.join(allowed)})")
    if len(set(names)) != len(names):
        raise CliError(f"{option} names a method twice: '{text}'")
    return names


def parse_params(items) -> dict:
    """``["forcing=8", "dt=0.05"]`` → ``{"forcing": 8, "dt": 0.05}`` (numbers parsed, text kept)."""
    params = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"--param expects key=value, got '{item}'")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            try:
                params[key] = float(value)       # nan, inf: refused below with the parameter's name
            except ValueError:
                params[key] = value
    return params


# parameters of the built-in systems with a range (any other must merely be a finite number)
_PARAM_RULES: dict[str, Rule] = {
    "dt": above(0), "burn_in": at_least(0), "resolution": at_least(1), "size": at_least(2), "n": at_least(4),
    "noise": at_least(0, integer=False), "reynolds": above(0), "drag": at_least(0, integer=False),
}


def _system_class(system_name: str):
    from sda_gui.core.systems import SYSTEMS, system_names

    if system_name not in SYSTEMS:
        system_names()                                   # installed packages' entry points, once
    cls = SYSTEMS.get(system_name)
    if cls is None:
        raise CliError(f"unknown system '{system_name}' (known: {', '.join(sorted(SYSTEMS))}; a plugin's system "
                       f"needs --system-file PATH.py)")
    return cls


def check_params(system_name: str, params: dict, where: str = "--param") -> dict:
    """Every value a finite number, known to the system, in range; integers where the system wants them.

    The ranges of ``_PARAM_RULES`` are the built-in systems'; a plugin's parameter must be a
    finite number, whole where its default is. A data system's parameters (names, lists of
    numbers) are checked by its own constructor.
    """
    from sda_gui.core.systems import BUILTIN_SYSTEMS

    cls = _system_class(system_name)
    if not getattr(cls, "has_dynamics", True):
        return dict(params)
    signature = inspect.signature(cls.__init__).parameters
    known = [n for n in signature if n != "self"]
    builtin = BUILTIN_SYSTEMS.get(system_name) is cls
    out = {}
    for key, value in params.items():
        if key not in known:
            raise CliError(f"{where}: {system_name} has no parameter '{key}' (its parameters: {', '.join(known)})")
        default = signature[key].default
        if builtin:
            rule = _PARAM_RULES.get(key)
            integer = key in ("burn_in", "resolution", "size", "n")
        else:
            rule = None
            integer = isinstance(default, int) and not isinstance(default, bool)
        option = f"{where} {key}"
        (rule or at_least(-math.inf, integer=False))(option, value)
        _number(option, value, integer)
        out[key] = int(value) if integer else value
    return out


def check_system(name: Optional[str], params: Optional[dict] = None, where: str = "--param"):
    """A system built from a checked name and checked parameters (one line when it cannot be built)."""
    from sda_gui.core.systems import make_system

    if not name:
        raise CliError("pass --system (a built-in system, or one from --system-file PATH.py)")
    from sda_gui.core.systems import BUILTIN_SYSTEMS

    params = check_params(name, params or {}, where)
    # a plugin's constructor may raise anything for a bad value; a built-in's raises these
    expected = (TypeError, ValueError, ArithmeticError) if name in BUILTIN_SYSTEMS else Exception
    try:
        system = make_system(name, **params)
    except expected as exc:
        raise CliError(f"bad parameter for {name}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    if not (math.isfinite(system.dt) and system.dt > 0):
        raise CliError(f"{name}: the time step must be finite and > 0, got {system.dt}")
    return system


def check_input(path, option: str) -> Path:
    """An existing file (not a folder)."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise CliError(f"{option}: file not found: {path}")
    if p.is_dir():
        raise CliError(f"{option}: {path} is a folder, not a file")
    return p


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _writable_folder(folder: Path, option: str, path) -> None:
    """The folder exists and is writable, or could be created (its nearest existing ancestor is a writable folder)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise CliError(f"{option}: cannot write {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CliError(f"{option}: cannot write {path}: the folder {probe} is not writable")


def check_output(path, suffixes: tuple, inputs: dict, option: str = "--out") -> Path:
    """The exact path given, with a suffix we write, never one of ``inputs`` (``{option: path}``)."""
    text = str(path)
    p = Path(text)
    if text.endswith(("/", os.sep)) or p.is_dir():
        raise CliError(f"{option}: {text} is a folder; give a file name ending in {' or '.join(suffixes)}")
    if p.suffix.lower() not in suffixes:
        found = f"'{p.suffix}'" if p.suffix else "no suffix"
        raise CliError(f"{option}: {text} has {found}; this command writes {' or '.join(suffixes)} files")
    for name, other in inputs.items():
        if other is not None and _same(p, Path(other)):
            raise CliError(f"{option} {text} is the input given to {name}; choose another output file")
    _writable_folder(p.parent if str(p.parent) else Path("."), option, text)
    return p


def check_out_dir(path, option: str = "--out-dir") -> Path:
    p = Path(str(path))
    if p.exists() and not p.is_dir():
        raise CliError(f"{option}: {path} is a file, not a folder")
    _writable_folder(p, option, path)
    return p


def load_plugins(args) -> list[str]:
    """Runs every ``--system-file`` and ``--operator-file`` given; the systems they registered."""
    from sda_gui.core.observation import ObservationError
    from sda_gui.core.systems.plugins import PluginError, load_system_file

    names = []
    for dest in ("system_file", "operator_file"):
        for path in getattr(args, dest, None) or []:
            try:
                names += load_system_file(path)
            except (PluginError, ObservationError) as exc:
                raise CliError(f"--{dest.replace('_', '-')}: {exc}") from None
    return names
