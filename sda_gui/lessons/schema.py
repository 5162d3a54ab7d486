"""The lesson file format, checked whole, with the line of every problem.

A lesson is a TOML file (see ``sda_gui/lessons/__init__.py`` for the fields). This
module parses it (``tomllib``; ``tomli`` on Python 3.10) and checks every key's
name, type and range against the fixed vocabularies below — the scenario's
settings, the step actions the app can perform and the checks it can evaluate —
so that a teacher's typo is one message naming its line:

    my_lesson.toml, line 14: steps[2].check: unknown check 'rmse_under' (known: …)

``tomllib`` states the line of a syntax error; for a schema error the line is
found in the text (``KeyLines``: the line where the offending key, or the table
holding it, is written). Every problem in the file is collected; the first (by
line) is reported, with how many more there are.
"""

from __future__ import annotations

import re
from typing import Any, Optional

try:  # Python ≥ 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["LessonError", "KeyLines", "parse_toml", "Problems", "SYSTEMS", "METHODS", "VIEWS", "RUNS",
           "GUIDANCES", "SET_KEYS", "PATTERN_KEYS", "CHECKS", "SCENARIO_KEYS", "text_check"]

#: built-in systems (the core's registry may hold more; these are the ones lessons ship for)
SYSTEMS = ("lorenz63", "lorenz96", "kolmogorov")
#: registry names of the assimilation methods a comparison may list
METHODS = ("sda", "enkf", "letkf", "enks", "ienks", "4dvar", "wc4dvar", "bpf", "rpf")
#: views a lesson can show or a step can bring to the front
VIEWS = ("results", "compare", "editor", "scrubber")
#: what a step can run
RUNS = ("assimilate", "compare")
GUIDANCES = ("sda", "dps", "mmps")
_OPERATOR = re.compile(r"^(identity|(coarsen|subsample):[1-9][0-9]*)$")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class LessonError(ValueError):
    """A lesson file that cannot be used: one line, naming the file and the line."""

    def __init__(self, message: str, line: Optional[int] = None):
        super().__init__(message)
        self.line = line


# ---------------------------------------------------------------------------- value checks
def _int(lo=None):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int):
            return "must be a whole number"
        if lo is not None and v < lo:
            return f"must be ≥ {lo}"
    return check


def _number(lo=None, above=None, hi=None):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "must be a number"
        if v != v or v in (float("inf"), float("-inf")):
            return "must be finite"
        if lo is not None and v < lo:
            return f"must be ≥ {lo}"
        if above is not None and v <= above:
            return f"must be > {above}"
        if hi is not None and v > hi:
            return f"must be ≤ {hi}"
    return check


def _text(one_line=False):
    def check(v):
        if not isinstance(v, str) or not v.strip():
            return "must be non-empty text"
        if one_line and "\n" in v.strip():
            return "must be one line"
    return check


text_check = _text


def _choice(options):
    def check(v):
        if v not in options:
            return f"must be one of {', '.join(options)}, got {v!r}"
    return check


def _list_of(item, lo=1):
    def check(v):
        if not isinstance(v, list) or len(v) < lo:
            return f"must be a list of at least {lo} item{'s' if lo > 1 else ''}"
        for x in v:
            why = item(x)
            if why:
                return f"item {x!r} {why}"
    return check


def _operator(v):
    if not isinstance(v, str) or not _OPERATOR.match(v):
        return f"must be identity, coarsen:N or subsample:N, got {v!r}"


def _params(v):
    if not isinstance(v, dict):
        return "must be a table of parameters (e.g. { n = 40, forcing = 8.0 })"
    for k, x in v.items():
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            return f"parameter {k} must be a number"


def _pair(v):
    if not isinstance(v, list) or len(v) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, float))
                                                     for x in v):
        return "must be two numbers [low, high]"
    if not 0 < v[0] < v[1]:
        return "must satisfy 0 < low < high"


def _two_methods(v):
    if not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, str) for x in v):
        return "must be two method names [better, worse]"
    for x in v:
        if x not in METHODS:
            return f"names an unknown method {x!r} (known: {', '.join(METHODS)})"
    if v[0] == v[1]:
        return "must name two different methods"


PATTERN_KEYS = {
    "every_states": _int(1),        # observe every n-th state (time)
    "states": _list_of(_int(0)),    # observe only these states
    "every_variables": _int(1),     # every n-th entry along the spatial axes (variables, pixels)
    "variables": _list_of(_int(0)),  # only these entries of the first state axis (x, y, z / u, v)
    "density": _number(above=0, hi=1),  # a random pattern of this fraction (seeded)
    "seed": _int(0),
    "operator": _operator,          # observe through coarsen:N / subsample:N
}
#: sampler and comparison settings a scenario or a ``set`` action may give
SET_KEYS = {
    "steps": _int(1), "corrections": _int(0), "samples": _int(1), "guidance": _choice(GUIDANCES),
    "tau": _number(above=0), "gamma": _number(lo=0), "members": _int(2),
    "methods": _list_of(_choice(METHODS)),
}
SCENARIO_KEYS = {
    "system": _choice(SYSTEMS), "params": _params, "seed": _int(0), "length": _int(5),
    "pattern": None,  # a table, checked with PATTERN_KEYS
    "obs_std": _number(above=0), "obs_seed": _int(0),
    "model": _text(True), "views": _list_of(_choice(VIEWS)), "record": _int(0),
    **SET_KEYS,
}
#: checks the app evaluates on the last result (or comparison)
CHECKS = {
    "residual_within": _number(above=0),      # |residual std / σ_y − 1| ≤ value
    "rmse_below": _number(above=0),
    "rmse_above": _number(above=0),
    "spread_below": _number(above=0),
    "spread_above": _number(above=0),
    "spread_ratio_between": _pair,            # spread / RMSE inside [low, high]
    "method_beats": _two_methods,             # RMSE of the first below that of the second
}
ACTION_KEYS = ("model", "set", "pattern", "view", "run")
STEP_KEYS = ("title", "text", "action", "question", "answer", "check")
TOP_KEYS = ("id", "title", "summary", "introduction", "scenario", "steps")


# ---------------------------------------------------------------------------- lines
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
_KEY = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")


def _split_key(text: str) -> tuple:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


class KeyLines:
    """Where each key of a TOML text is written: ``line(("steps", 2, "check"))`` → 1-based line.

    Tables of ``[[steps]]`` are counted (``("steps", 0)`` is the first). A key
    inside an inline table (``action = { set = { corrections = 2 } }``) maps to the
    line of the outermost key; a key not written maps to the line of its table.
    """

    def __init__(self, text: str):
        self.lines: dict = {}
        self.n_lines = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        counts: dict = {}
        table: tuple = ()
        in_string = None
        for no, raw in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if raw.count(in_string) % 2 == 1:
                    in_string = None
                continue
            m = _HEADER.match(raw)
            if m and not _KEY.match(raw):
                path = _split_key(m.group(2))
                if m.group(1) == "[[":
                    i = counts.get(path, -1) + 1
                    counts[path] = i
                    table = path + (i,)
                else:
                    # a sub-table of the last array element: [steps.check] after [[steps]]
                    head = path[:1]
                    table = (head + (counts[head],) + path[1:]) if head in counts and len(path) > 1 else path
                self.lines.setdefault(table, no)
                continue
            k = _KEY.match(raw)
            if k:
                self.lines.setdefault(table + _split_key(k.group(1)), no)
                rest = raw[k.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        in_string = quote
                        break

    def line(self, path: tuple) -> int:
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1


# ---------------------------------------------------------------------------- parsing
_AT_LINE = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")
_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


def parse_toml(text: str, name: str) -> dict:
    """The TOML document; LessonError naming the line for a syntax error or a truncated file."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else "not valid TOML"
        m = _AT_LINE.search(msg)
        if m:
            line = int(m.group(1))
            msg = msg[:m.start()]
        elif _AT_END.search(msg):
            line = max(1, text.rstrip("\n").count("\n") + 1)
            msg = msg[:_AT_END.search(msg).start()] + " (the file ends too early: is it cut short?)"
        else:
            line = getattr(exc, "lineno", 1) or 1
        raise LessonError(f"{name}, line {line}: not valid TOML: {msg[:1].lower() + msg[1:]}", line) from None


class Problems:
    """Every problem of one file, each with the line of the key it concerns."""

    def __init__(self, name: str, lines: KeyLines):
        self.name, self.where, self.items = name, lines, []

    def add(self, path: tuple, message: str) -> None:
        label = ""
        for part in path:
            label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else str(part))
        self.items.append((self.where.line(path), f"{label}: {message}" if label else message))

    def value(self, path: tuple, value: Any, check) -> bool:
        why = check(value) if check is not None else None
        if why:
            self.add(path, why)
        return not why

    def raise_first(self) -> None:
        if not self.items:
            return
        self.items.sort(key=lambda item: item[0])
        line, message = self.items[0]
        more = len(self.items) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''} below)" if more else ""
        raise LessonError(f"{self.name}, line {line}: {message}{tail}", line)


def unknown(problems: Problems, path: tuple, table: dict, known) -> None:
    for key in table:
        if key not in known:
            problems.add(path + (key,), f"unknown key '{key}' (known: {', '.join(known)})")


def valid_id(value) -> Optional[str]:
    if not isinstance(value, str) or not _ID.match(value):
        return "must be lower-case letters, digits, '-' or '_' (e.g. 'posterior')"
    return None
