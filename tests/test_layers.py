"""Layer contracts, read from the imports of every module, and the map's paths.

Every ``sda_gui`` module is parsed (``ast``, nothing is imported) and each import
becomes an edge ``source → target`` marked *lazy* when it sits inside a function
(it runs on first use, not at module load). The contracts:

- ``sda_gui/core`` is pure science: no Qt, no ``sda_gui.app``, no CLI or benchmarks;
- the CLI and the benchmarks import no Qt and no ``sda_gui.app``, except the GUI
  benchmarks (``sda_gui.app.bench``), loaded lazily inside the ``bench`` command; the app
  does not import the command line;
- panels stand side by side: no panel imports another panel (or a module split from one);
- views draw, they compute no science: no ``sda_gui.core``, torch or scipy, only the
  app's helpers (``result_metrics``, ``operators``, ``engine``, ``state``);
- no import cycle among ``sda_gui`` modules at module load (lazy imports excluded).

The map (``docs/architecture.md``) names only paths that exist, and the scripts
call the command line with options it has.

The rules are data (``RULES``, ``VIEWS``, ``PANEL_EXTRA``, ``PANEL_XFAIL``): when modules are split or
renamed, adjust the patterns here. A rule whose patterns match no module fails, so a
rename cannot quietly switch a contract off.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sda_gui"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def under(*names: str) -> tuple:
    """Patterns for modules ``name`` and everything inside them."""
    return tuple(p for n in names for p in (n, n + ".*"))


QT = under("PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6")
SCIENCE = under("sda_gui.core", "torch", "scipy")
CLI = under("sda_gui.cli") + ("sda_gui.cli_*", "sda_gui.__main__")
BENCH = under("sda_gui.bench") + ("sda_gui.bench_*",)
APP = under("sda_gui.app")
#: the results viewer, its plots and the observation editor (modules split from them included)
VIEWS = ("sda_gui.app.result_plot*", "sda_gui.app.results_view*", "sda_gui.app.grid_editor*",
         *under("sda_gui.app.plots", "sda_gui.app.editor", "sda_gui.app.views"))
#: panel modules are found by name (``<name>_panel``, ``<name>_panel_*``, ``panels.<name>…``);
#: modules split from a panel under another name are listed here with their panel's name
#: (what several panels share belongs in ``common`` or ``sampler_config``, listed nowhere)
PANEL_EXTRA: dict[str, str] = {
    "sda_gui.app.assimilation_job": "assimilation",
    "sda_gui.app.assimilation_settings": "assimilation",
    "sda_gui.app.model_picker": "assimilation",
    "sda_gui.app.system_form": "system",
    "sda_gui.app.training_job": "training",
}
#: why the panels do not stand side by side yet (empty once they do)
PANEL_XFAIL = ""
_PANEL_NAME = re.compile(r"^sda_gui\.app\.(?:panels\.)?([a-z0-9]+)_panel(?:[._].*)?$")


@dataclass(frozen=True)
class Rule:
    name: str
    sources: tuple          # fnmatch patterns of the importing modules
    forbidden: tuple        # fnmatch patterns of what they may not import
    lazy_allowed: tuple = ()  # forbidden targets allowed all the same when imported inside a function
    xfail: str = ""         # why the code does not keep the rule yet (the lead removes it once it does)


RULES = (
    Rule("core is pure science", under("sda_gui.core"), APP + CLI + BENCH + QT),
    Rule("the CLI and the benchmarks import no Qt and no app", CLI + BENCH, APP + QT,
         lazy_allowed=("sda_gui.app.bench",)),
    Rule("the app does not import the command line", APP, CLI + BENCH),
    Rule("the benchmarks load models through the core, not the CLI", BENCH, CLI),
    Rule("views compute no science", VIEWS, SCIENCE),
)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    lazy: bool          # inside a function: runs on first use
    typing_only: bool   # under ``if TYPE_CHECKING:``: never runs


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(package: Path = PACKAGE) -> dict:
    """``{module name: path}`` of every module of the package."""
    return {module_name(p, package.parent): p for p in sorted(package.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def read_imports(source: str, module: str, is_package: bool, modules) -> list:
    """Every import of one module's source, resolved to absolute module names.

    ``from a import b`` points at ``a.b`` when that is a module of ``modules``, else at ``a``.
    """
    edges = []

    def visit(node, lazy, typing_only):
        if isinstance(node, ast.Import):
            for alias in node.names:
                edges.append(Edge(module, alias.name, node.lineno, lazy, typing_only))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            for alias in node.names:
                sub = f"{prefix}.{alias.name}"
                edges.append(Edge(module, sub if sub in modules else prefix, node.lineno, lazy, typing_only))
        for child in ast.iter_child_nodes(node):
            visit(child,
                  lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)),
                  typing_only or (isinstance(node, ast.If) and _is_type_checking(node.test)
                                  and child in node.body))

    visit(ast.parse(source), False, False)
    return edges


def all_edges(package: Path = PACKAGE) -> list:
    modules = discover(package)
    edges = []
    for name, path in modules.items():
        edges += read_imports(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", modules)
    return edges


def _matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def violations(rule: Rule, edges) -> list:
    out = []
    for e in edges:
        if not _matches(e.source, rule.sources) or not _matches(e.target, rule.forbidden):
            continue
        if e.lazy and _matches(e.target, rule.lazy_allowed):
            continue
        out.append(f"{e.source}:{e.line} imports {e.target}{' (lazily)' if e.lazy else ''}")
    return out


def panel_of(module: str):
    if module in PANEL_EXTRA:
        return PANEL_EXTRA[module]
    m = _PANEL_NAME.match(module)
    return m.group(1) if m else None


def panel_violations(edges) -> list:
    out = []
    for e in edges:
        a, b = panel_of(e.source), panel_of(e.target)
        if a is not None and b is not None and a != b:
            out.append(f"{e.source}:{e.line} ({a} panel) imports {e.target} ({b} panel)")
    return out


def import_cycles(edges, modules) -> list:
    """Strongly connected components (more than one module, or a self-import) of the load-time graph."""
    graph = {m: set() for m in modules}
    for e in edges:
        if not e.lazy and not e.typing_only and e.target in graph and e.source in graph:
            graph[e.source].add(e.target)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(v):   # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


@pytest.fixture(scope="module")
def edges():
    return all_edges()


@pytest.fixture(scope="module")
def modules():
    return discover()


# --- the contracts -----------------------------------------------------------------------------

@pytest.mark.parametrize("rule", [pytest.param(r, id=r.name, marks=[pytest.mark.xfail(reason=r.xfail, strict=False)]
                                               if r.xfail else []) for r in RULES])
def test_layer_rule(rule, edges, modules):
    assert any(_matches(m, rule.sources) for m in modules), f"'{rule.name}' applies to no module: update its patterns"
    found = violations(rule, edges)
    assert not found, f"{rule.name}:\n  " + "\n  ".join(found)


def test_the_gui_benchmarks_are_loaded_lazily_by_the_bench_command(edges):
    """The one exception of the CLI rule is used as described, or not at all."""
    uses = [e for e in edges if _matches(e.source, CLI + BENCH) and e.target == "sda_gui.app.bench"]
    assert all(e.lazy for e in uses), uses


@pytest.mark.xfail(bool(PANEL_XFAIL), reason=PANEL_XFAIL, strict=False)
def test_panels_do_not_import_each_other(edges, modules):
    panels = {panel_of(m) for m in modules} - {None}
    assert len(panels) >= 2, f"found panels {sorted(panels)}: update _PANEL_NAME or PANEL_EXTRA"
    found = panel_violations(edges)
    assert not found, "\n".join(found)


def test_no_import_cycle_at_module_load(edges, modules):
    cycles = import_cycles(edges, modules)
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


# --- the checks themselves can fail --------------------------------------------------------------

_SAMPLE = '''
from __future__ import annotations
from typing import TYPE_CHECKING
import PySide6.QtCore
from . import sibling
from .sibling import thing
from .. import other
if TYPE_CHECKING:
    from sda_gui.app import state
def later():
    from sda_gui.app.bench import run
    import torch
class Holder:
    import numpy
'''


def test_reading_imports_resolves_and_classifies_them():
    mods = {"sda_gui", "sda_gui.core", "sda_gui.core.pkg", "sda_gui.core.pkg.sibling", "sda_gui.core.other",
            "sda_gui.app", "sda_gui.app.state", "sda_gui.app.bench"}
    got = {(e.target, e.lazy, e.typing_only) for e in read_imports(_SAMPLE, "sda_gui.core.pkg.mod", False, mods)}
    assert got == {("__future__", False, False), ("typing", False, False), ("PySide6.QtCore", False, False),
                   ("sda_gui.core.pkg.sibling", False, False), ("sda_gui.core.other", False, False),
                   ("sda_gui.app.state", False, True), ("sda_gui.app.bench", True, False), ("torch", True, False),
                   ("numpy", False, False)}
    # an ``__init__`` resolves relative imports from its own package
    init = read_imports("from .sibling import thing", "sda_gui.core.pkg", True, mods)
    assert [e.target for e in init] == ["sda_gui.core.pkg.sibling"]


def test_a_rule_catches_what_it_forbids():
    core, cli, bench_rule = (next(r for r in RULES if r.name.startswith(p)) for p in
                             ("core is", "the CLI and", "the benchmarks load"))
    edges = [Edge("sda_gui.core.methods.sda", "PySide6.QtCore", 3, True, False),
             Edge("sda_gui.cli", "sda_gui.app.bench", 9, False, False),       # the exception, but at load time
             Edge("sda_gui.bench", "sda_gui.app.bench", 5, True, False),      # the exception as allowed
             Edge("sda_gui.bench", "sda_gui.cli", 7, True, False)]
    assert violations(core, edges) == ["sda_gui.core.methods.sda:3 imports PySide6.QtCore (lazily)"]
    assert violations(cli, edges) == ["sda_gui.cli:9 imports sda_gui.app.bench"]
    assert violations(bench_rule, edges) == ["sda_gui.bench:7 imports sda_gui.cli (lazily)"]
    panels = [Edge("sda_gui.app.system_panel", "sda_gui.app.assimilation_panel", 4, False, False),
              Edge("sda_gui.app.system_panel", "sda_gui.app.system_panel_form", 5, False, False),
              Edge("sda_gui.app.training_panel", "sda_gui.app.common", 6, False, False)]
    assert panel_violations(panels) == [
        "sda_gui.app.system_panel:4 (system panel) imports sda_gui.app.assimilation_panel (assimilation panel)"]
    loop = [Edge("a", "b", 1, False, False), Edge("b", "c", 1, False, False), Edge("c", "a", 1, False, False),
            Edge("c", "d", 1, True, False), Edge("d", "c", 1, False, False), Edge("e", "e", 1, False, False)]
    assert import_cycles(loop, ["a", "b", "c", "d", "e"]) == [["a", "b", "c"], ["e"]]


# --- the map -----------------------------------------------------------------------------------

#: paths the map names that are planned, not written yet
PLANNED: set = set()
_ROOTS = ("sda_gui/", "tests/", "scripts/", "docs/")


def _named_in_map() -> list:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    return re.findall(r"`([^`\n]+)`", text)


def _dotted_exists(name: str, modules: dict) -> bool:
    """``sda_gui.a.b`` is a module, or a module followed by names it defines at top level."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        mod = ".".join(parts[:cut])
        if mod in modules:
            rest = parts[cut:]
            if not rest:
                return True
            tree = ast.parse(modules[mod].read_text(encoding="utf-8"))
            defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
            defined |= {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                        for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
            defined |= {(a.asname or a.name).split(".")[0] for n in tree.body
                        if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
            return rest[0] in defined
    return False


def test_every_path_the_map_names_exists(modules):
    named = _named_in_map()
    paths = [s for s in named if s.startswith(_ROOTS)]
    dotted = [s.rstrip("()") for s in named if re.fullmatch(r"sda_gui(\.\w+)+(\(\))?", s)]
    assert len(paths) >= 10, "the map names too few paths to be a map"
    missing = []
    for p in paths:
        if p in PLANNED:
            continue
        clean = p.split("::")[0].split(" ")[0]
        hits = list(ROOT.glob(clean.rstrip("/"))) if any(c in clean for c in "*?[") else [ROOT / clean.rstrip("/")]
        if not any(h.exists() for h in hits):
            missing.append(p)
    missing += [d for d in dotted if not _dotted_exists(d, modules)]
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"


def test_planned_paths_are_named_as_planned():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    for p in PLANNED:
        for line in text.splitlines():
            if f"`{p}`" in line:
                assert "planned" in line.lower(), f"{p} is not written yet; the map must say it is planned"


# --- the scripts -------------------------------------------------------------------------------

SCRIPTS = ROOT / "scripts"
MODELS_README = ROOT / "sda_gui" / "resources" / "models" / "README.md"


def _cli_options() -> dict:
    """``{subcommand: its option strings}`` from the CLI's own parser."""
    import argparse

    from sda_gui.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {o for act in p._actions for o in act.option_strings} for name, p in sub.choices.items()}


def _script_calls(text: str) -> list:
    """``(subcommand, [options])`` of every ``-m sda_gui …`` call in a shell script."""
    calls = []
    for line in text.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("#"):
            continue
        for m in re.finditer(r"-m sda_gui (\w+)([^|;>&]*)", line):
            calls.append((m.group(1), re.findall(r"(?<![\w-])--[a-z][\w-]*", m.group(2))))
    return calls


def test_scripts_call_the_cli_with_options_it_has():
    options = _cli_options()
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert scripts
    calls, bad = 0, []
    for path in scripts:
        for command, opts in _script_calls(path.read_text(encoding="utf-8")):
            calls += 1
            if command not in options:
                bad.append(f"{path.name}: no subcommand '{command}'")
            bad += [f"{path.name}: {command} has no option {o}" for o in opts if o not in options.get(command, opts)]
    assert calls >= 10 and not bad, bad


def test_every_script_is_named_in_the_models_readme_and_exists():
    text = MODELS_README.read_text(encoding="utf-8")
    named = set(re.findall(r"`(scripts/[^`]+)`", text))
    assert named and all((ROOT / p).is_file() for p in named), sorted(p for p in named if not (ROOT / p).is_file())
    on_disk = {f"scripts/{p.name}" for p in SCRIPTS.glob("*.sh")}
    assert on_disk <= named, f"scripts the README does not mention: {sorted(on_disk - named)}"


def test_the_script_reader_sees_commands_and_options():
    text = """# python -m sda_gui ignored --comment
python3 -m sda_gui train --system lorenz63 --k 3 \\
    --steps 10 --out x.pt 2>&1 | tail -2
$PY -m sda_gui bench case --model m.pt --no-cuda-graph & wait
"""
    assert _script_calls(text) == [("train", ["--system", "--k", "--steps", "--out"]),
                                   ("bench", ["--model", "--no-cuda-graph"])]
