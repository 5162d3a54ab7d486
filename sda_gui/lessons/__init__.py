"""Lessons as data: one TOML file per lesson, for teaching score-based data assimilation.

A lesson file holds::

    id = "posterior"                       # what `python -m sda_gui lessons` and `--lesson` use
    title = "What a posterior is"
    summary = "A few observations of Lorenz-63 and many samples."   # one line
    introduction = '''Markdown a teacher reads aloud.'''

    [scenario]                             # what the app sets up before the first step
    system = "lorenz63"                    # params = { … }, seed, length
    obs_std = 1.0                          # σ_y; obs_seed
    model = "lorenz63.pt"                  # a shipped model (resources/models) or a path beside the file
    steps = 64                             # sampler: steps, corrections, samples, guidance, tau, gamma
    methods = ["sda", "enkf", "bpf"]       # for a comparison; members
    views = ["results", "scrubber"]        # results, compare, editor, scrubber; record = samples recorded
    [scenario.pattern]                     # every_states, states, every_variables, variables,
    every_states = 8                       # density (random, with seed), operator (coarsen:N, subsample:N)

    [[steps]]
    title = "Many samples"                 # optional
    text = "Markdown of this step."
    action = { set = { samples = 256 }, run = "assimilate" }   # or "assimilate", "compare", a view name
    question = "Why do the samples differ most between observations?"
    answer = "Revealed on demand."
    check = { residual_within = 0.2 }      # see ``rules.evaluate_check``

An action's parts are performed in the order model, set, pattern, view, run;
``action = { model = "lorenz63_k1.pt", run = "assimilate" }`` runs the same case with
another model (a shipped one or a file beside the lesson, as the scenario's). The
whole file is checked on loading (``schema``): a problem is one ``LessonError`` line
naming the file and the line. Built-in lessons live beside this module
(``builtin_lessons``, ``find_lesson``). Pure Python: no Qt, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from .schema import (ACTION_KEYS, CHECKS, PATTERN_KEYS, RUNS, SCENARIO_KEYS, SET_KEYS, STEP_KEYS, TOP_KEYS, VIEWS,
                     KeyLines, LessonError, Problems, parse_toml, text_check, unknown, valid_id)

__all__ = ["Lesson", "LessonStep", "Scenario", "LessonError", "load_lesson", "parse_lesson", "builtin_lessons",
           "find_lesson", "LESSON_DIR", "shipped_models_folder", "DEFAULT_RECORD"]

LESSON_DIR = Path(__file__).resolve().parent
#: samples recorded for the scrubber when a lesson shows it and says no other number
DEFAULT_RECORD = 2


@dataclass(frozen=True)
class Scenario:
    system: str
    params: dict = field(default_factory=dict)
    seed: int = 0
    length: int = 64
    pattern: dict = field(default_factory=dict)
    obs_std: float = 1.0
    obs_seed: int = 0
    model: Optional[str] = None          # as written in the file
    model_path: Optional[Path] = None    # resolved file; None: the system's shipped default
    sampler: dict = field(default_factory=dict)   # steps, corrections, samples, guidance, tau, gamma
    methods: tuple = ()
    members: int = 32
    views: tuple = ("results",)
    record: int = 0


@dataclass(frozen=True)
class LessonStep:
    text: str
    title: str = ""
    #: normalised action: {"model": Path, "set": {...}, "pattern": {...}, "view": str, "run": str}, any subset
    action: dict = field(default_factory=dict)
    question: str = ""
    answer: str = ""
    #: (kind, value), e.g. ("residual_within", 0.2); None when the step has no check
    check: Optional[tuple] = None
    line: int = 1


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    summary: str
    introduction: str
    scenario: Scenario
    steps: tuple
    path: Optional[Path] = None


def shipped_models_folder() -> Path:
    """Where the shipped models are (the package data ``sda_gui/resources/models``)."""
    try:
        from importlib.resources import files

        folder = Path(str(files("sda_gui.resources").joinpath("models")))
        if folder.is_dir():
            return folder
    except (ModuleNotFoundError, TypeError):
        pass
    return LESSON_DIR.parents[1] / "resources" / "models"


def _resolve_model(name: str, base: Optional[Path]) -> Optional[Path]:
    shipped = shipped_models_folder() / name
    if shipped.is_file():
        return shipped
    path = Path(name).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path if path.is_file() else None


def _model(problems: Problems, path: tuple, value, base: Optional[Path]) -> Optional[Path]:
    if not problems.value(path, value, SCENARIO_KEYS["model"]):
        return None
    resolved = _resolve_model(value, base)
    if resolved is None:
        shipped = ", ".join(sorted(p.name for p in shipped_models_folder().glob("*.pt"))) or "none"
        problems.add(path, f"model '{value}' is neither a shipped model ({shipped}) nor a file beside the lesson")
    return resolved


def _pattern(problems: Problems, path: tuple, value) -> dict:
    if not isinstance(value, dict):
        problems.add(path, "must be a table of pattern rules (e.g. { every_states = 4 })")
        return {}
    unknown(problems, path, value, tuple(PATTERN_KEYS))
    out = {k: v for k, v in value.items() if k in PATTERN_KEYS and problems.value(path + (k,), v, PATTERN_KEYS[k])}
    if "states" in out and "every_states" in out:
        problems.add(path + ("states",), "give either states or every_states, not both")
    return out


def _settings(problems: Problems, path: tuple, table: dict, keys) -> dict:
    return {k: table[k] for k in keys if k in table and problems.value(path + (k,), table[k], SET_KEYS[k])}


def _action(problems: Problems, path: tuple, value, base: Optional[Path]) -> dict:
    if isinstance(value, str):
        if value in RUNS:
            return {"run": value}
        if value in VIEWS:
            return {"view": value}
        problems.add(path, f"unknown action '{value}' (known: {', '.join(dict.fromkeys(RUNS + VIEWS))}, or a table with "
                           f"{', '.join(ACTION_KEYS)})")
        return {}
    if not isinstance(value, dict) or not value:
        problems.add(path, f"must be an action name ({', '.join(RUNS)}) or a table with {', '.join(ACTION_KEYS)}")
        return {}
    unknown(problems, path, value, ACTION_KEYS)
    out: dict = {}
    if "model" in value:
        model = _model(problems, path + ("model",), value["model"], base)
        if model is not None:
            out["model"] = model
    if "set" in value:
        if isinstance(value["set"], dict) and value["set"]:
            unknown(problems, path + ("set",), value["set"], tuple(SET_KEYS))
            out["set"] = _settings(problems, path + ("set",), value["set"], SET_KEYS)
        else:
            problems.add(path + ("set",), f"must be a table of settings ({', '.join(SET_KEYS)})")
    if "pattern" in value:
        out["pattern"] = _pattern(problems, path + ("pattern",), value["pattern"])
    for key, options in (("view", VIEWS), ("run", RUNS)):
        if key in value:
            if value[key] in options:
                out[key] = value[key]
            else:
                problems.add(path + (key,), f"unknown {key} {value[key]!r} (known: {', '.join(options)})")
    return out


def _check(problems: Problems, path: tuple, value) -> Optional[tuple]:
    if not isinstance(value, dict) or len(value) != 1:
        problems.add(path, f"must be a table with one check ({', '.join(CHECKS)})")
        return None
    (kind, arg), = value.items()
    if kind not in CHECKS:
        problems.add(path + (kind,), f"unknown check '{kind}' (known: {', '.join(CHECKS)})")
        return None
    if not problems.value(path + (kind,), arg, CHECKS[kind]):
        return None
    return kind, tuple(arg) if isinstance(arg, list) else float(arg)


def _scenario(problems: Problems, value, base: Optional[Path]) -> Optional[Scenario]:
    path = ("scenario",)
    if not isinstance(value, dict):
        problems.add(path, "a [scenario] table is required (system, pattern, obs_std, …)")
        return None
    unknown(problems, path, value, tuple(SCENARIO_KEYS))
    if "system" not in value:
        problems.add(path, "scenario.system is required (lorenz63, lorenz96 or kolmogorov)")
    ok = {k: v for k, v in value.items() if k in SCENARIO_KEYS and k not in ("pattern", "model")
          and problems.value(path + (k,), v, SCENARIO_KEYS[k])}
    pattern = _pattern(problems, path + ("pattern",), value["pattern"]) if "pattern" in value else {}
    model = _model(problems, path + ("model",), value["model"], base) if "model" in value else None
    if "system" not in ok:
        return None
    views = tuple(ok.get("views", ("results",)))
    sampler = {k: ok[k] for k in ("steps", "corrections", "samples", "guidance", "tau", "gamma") if k in ok}
    return Scenario(system=ok["system"], params=dict(ok.get("params", {})), seed=ok.get("seed", 0),
                    length=ok.get("length", 64), pattern=pattern, obs_std=float(ok.get("obs_std", 1.0)),
                    obs_seed=ok.get("obs_seed", 0), model=value.get("model"), model_path=model, sampler=sampler,
                    methods=tuple(ok.get("methods", ())), members=ok.get("members", 32), views=views,
                    record=ok.get("record", DEFAULT_RECORD if "scrubber" in views else 0))


def _step(problems: Problems, lines: KeyLines, i: int, value, base: Optional[Path]) -> Optional[LessonStep]:
    path = ("steps", i)
    if not isinstance(value, dict):
        problems.add(path, "must be a [[steps]] table")
        return None
    unknown(problems, path, value, STEP_KEYS)
    if "text" not in value:
        problems.add(path, "every step needs a text")
    ok = {k: value[k] for k in ("title", "text", "question", "answer") if k in value
          and problems.value(path + (k,), value[k], text_check(one_line=k == "title"))}
    if "answer" in value and "question" not in value:
        problems.add(path + ("answer",), "an answer needs a question")
    action = _action(problems, path + ("action",), value["action"], base) if "action" in value else {}
    check = _check(problems, path + ("check",), value["check"]) if "check" in value else None
    if "text" not in ok:
        return None
    return LessonStep(text=ok["text"].strip(), title=ok.get("title", "").strip(), action=action,
                      question=ok.get("question", "").strip(), answer=ok.get("answer", "").strip(),
                      check=check, line=lines.line(path))


def parse_lesson(text: str, name: str = "lesson", base: Optional[Path] = None) -> Lesson:
    """A lesson from TOML ``text``; ``name`` labels messages, ``base`` resolves model paths."""
    data = parse_toml(text, name)
    lines = KeyLines(text)
    problems = Problems(name, lines)
    unknown(problems, (), data, TOP_KEYS)
    for key in ("id", "title", "summary", "introduction"):
        if key not in data:
            problems.add((), f"'{key}' is required")
    if "id" in data:
        problems.value(("id",), data["id"], valid_id)
    for key, one_line in (("title", True), ("summary", True), ("introduction", False)):
        if key in data:
            problems.value((key,), data[key], text_check(one_line))
    scenario = _scenario(problems, data.get("scenario"), base)
    raw_steps = data.get("steps")
    steps = []
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.add(("steps",) if "steps" in data else (), "at least one [[steps]] table is required")
    else:
        for i, raw in enumerate(raw_steps):
            step = _step(problems, lines, i, raw, base)
            if step is not None:
                steps.append(step)
    problems.raise_first()
    return Lesson(id=data["id"], title=data["title"].strip(), summary=data["summary"].strip(),
                  introduction=data["introduction"].strip(), scenario=scenario, steps=tuple(steps),
                  path=None)


def load_lesson(path: Union[str, Path]) -> Lesson:
    """The lesson in the TOML file ``path``; LessonError (one line, with the line number) otherwise."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LessonError(f"lesson file not found: {path}") from None
    except IsADirectoryError:
        raise LessonError(f"{path} is a folder, not a lesson file") from None
    except OSError as exc:
        raise LessonError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise LessonError(f"{path.name}, line {line}: not UTF-8 text", line) from None
    lesson = parse_lesson(text, path.name, base=path.resolve().parent)
    return Lesson(**{**lesson.__dict__, "path": path})


def builtin_lessons() -> list[Lesson]:
    """The lessons shipped with SDA Studio, in their order (file names start with their number)."""
    return [load_lesson(p) for p in sorted(LESSON_DIR.glob("*.toml"))]


def find_lesson(lesson_id: str) -> Lesson:
    """The built-in lesson ``lesson_id`` (or its number, "2"); LessonError listing the ids otherwise."""
    lessons = builtin_lessons()
    key = str(lesson_id).strip().lower()
    for i, lesson in enumerate(lessons, start=1):
        if lesson.id == key or key == str(i) or key == f"{i:02d}":
            return lesson
    raise LessonError(f"no lesson '{lesson_id}' (lessons: {', '.join(x.id for x in lessons)})")
