"""Several assimilation methods on one problem, scored side by side, and the report of it.

``compare`` runs each named method through ``registry.run_method`` one after
another, on the same system, observation, ensemble size and seed, and scores
its members against the truth with ``core.calibration``: RMSE and spread
(DAPPER's convention, per state averaged over the window), fair CRPS,
spread/RMSE, coverage of the central 50 % and 90 % intervals and the
rank-histogram flatness ``χ²/dof``, plus its wall time and device. A method
that cannot run on the problem (``MethodError``, a divergence as
``FloatingPointError``, a singular matrix) gives a row holding its one-line
error instead of stopping the others; a cancel stops the whole comparison.

``write_compare_report`` writes ``compare.md`` (a Markdown table), ``compare.csv``
and ``compare.png``: each method's mean ± spread against the truth for a few
variables, and the rank histograms (matplotlib's Agg canvas, no GUI backend).
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import calibration
from .atomic import atomic_path
from .methods.base import MethodError
from .methods.registry import get_method, run_method
from .observation import Observation, ObservationError

__all__ = ["Row", "compare", "members_by_method", "write_compare_report", "COLUMNS"]

#: (attribute, column header, format) of the table and the CSV
COLUMNS = (
    ("title", "method", "{}"),
    ("n_members", "members", "{}"),
    ("rmse", "RMSE", "{:.3f}"),
    ("spread", "spread", "{:.3f}"),
    ("crps", "CRPS", "{:.3f}"),
    ("spread_skill", "spread/RMSE", "{:.2f}"),
    ("coverage_50", "cover 50%", "{:.2f}"),
    ("coverage_90", "cover 90%", "{:.2f}"),
    ("rank_flatness", "rank χ²/dof", "{:.1f}"),
    ("rank_p", "rank p", "{:.2f}"),
    ("seconds", "time (s)", "{:.1f}"),
    ("device", "device", "{}"),
    ("error", "error", "{}"),
)

ProgressFn = Callable[[str, int, int], None]


@dataclass
class Row:
    """One method's scores on the problem (``error`` set, scores NaN, when it could not run)."""

    method: str
    title: str
    n_members: int
    rmse: float = math.nan
    spread: float = math.nan
    crps: float = math.nan
    spread_skill: float = math.nan
    coverage_50: float = math.nan
    coverage_90: float = math.nan
    rank_flatness: float = math.nan
    #: the truth's permutation p-value among the members (``calibration.rank_exchangeability``)
    rank_p: float = math.nan
    seconds: float = math.nan
    device: str = ""
    error: str = ""
    rank_counts: list = field(default_factory=list)
    diagnostics: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    #: posterior members ``(N, L, *state_shape)`` (None after an error); not written to the table
    members: Optional[torch.Tensor] = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not self.error


def _check_truth(truth, observation: Observation, state_shape: tuple) -> np.ndarray:
    t = truth.detach().cpu().numpy() if torch.is_tensor(truth) else np.asarray(truth)
    expected = (observation.length, *state_shape)
    if t.shape != expected:
        raise ObservationError(f"truth has shape {t.shape}, expected {expected} (the observation's window)")
    if not np.all(np.isfinite(t)):
        raise ObservationError("truth contains NaN or infinity")
    return t.astype(np.float64)


def compare(system, observation: Observation, truth, methods: list, n_members: int,
            settings: Optional[dict] = None, model=None, device="cpu", seed: int = 0,
            progress: Optional[ProgressFn] = None, should_stop: Optional[Callable[[], bool]] = None) -> list:
    """Runs and scores ``methods`` in order; returns one ``Row`` per method.

    ``settings`` maps a method name to its overrides (``{"4dvar": {"iterations": 10}}``);
    ``progress(method, done, total)`` relays each method's own progress. Unknown
    names, a bad ensemble size, observation or truth raise before anything runs.
    """
    state_shape = tuple(system.state_shape)
    names = [str(m).strip().lower() for m in methods]
    if not names:
        raise MethodError("no methods to compare")
    classes = [get_method(name) for name in names]  # unknown names raise here
    # settings of methods not compared are ignored (a caller may keep them for every method)
    settings = {str(k).strip().lower(): v for k, v in (settings or {}).items()}
    if isinstance(n_members, bool) or int(n_members) < 1:
        raise MethodError("the number of members (samples) must be ≥ 1")
    observation.validate(state_shape)
    truth = _check_truth(truth, observation, state_shape)
    rows = []
    for name, cls in zip(names, classes):
        def relay(done, total, _estimate, name=name):
            if progress is not None:
                progress(name, done, total)

        t0 = time.perf_counter()
        try:
            result = run_method(name, system, observation, n_members, settings.get(name), model=model,
                                device=device, seed=seed, progress=relay, should_stop=should_stop)
        except (MethodError, FloatingPointError, torch.linalg.LinAlgError) as exc:
            rows.append(Row(name, cls.title, int(n_members), seconds=time.perf_counter() - t0, device=str(device),
                            error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
            continue
        s = calibration.scores(result.members, truth, seed=seed)
        rows.append(Row(name, cls.title, int(n_members), rmse=s["rmse"], spread=s["spread"], crps=s["crps"],
                        spread_skill=s["spread_skill"], coverage_50=s["coverage_50"], coverage_90=s["coverage_90"],
                        rank_flatness=s["rank_flatness"], rank_p=s["rank_p"],
                        seconds=float(result.diagnostics.get("seconds", math.nan)),
                        device=str(result.diagnostics.get("device", device)), rank_counts=s["rank_counts"],
                        diagnostics=dict(result.diagnostics), settings=dict(result.settings), members=result.members))
    return rows


def members_by_method(rows: list) -> dict:
    """``{method: members}`` of the rows that produced members."""
    return {r.method: r.members for r in rows if r.members is not None}


def _cell(row: Row, attr: str, fmt: str) -> str:
    value = getattr(row, attr)
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return fmt.format(value)


def _markdown(rows: list) -> str:
    cols = [c for c in COLUMNS if c[0] != "error" or any(r.error for r in rows)]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r, a, f).replace("|", "/") for a, _, f in cols) + " |")
    note = ("RMSE and spread: per state over its variables, averaged over the window (DAPPER's convention); "
            "CRPS: fair ensemble CRPS; spread/RMSE: 1 when calibrated; cover: fraction of the truth inside "
            "the members' central interval; rank χ²/dof: 1 for a flat rank histogram of independent entries "
            "(more for correlated ones, even when calibrated); rank p: the share of the members whose own "
            "rank histogram among the other draws is at least as shaped as the truth's (small: the truth "
            "does not look like one more member).")
    return "\n".join(lines) + "\n\n" + note + "\n"


def _entries(state_shape: tuple, count: int = 3) -> list:
    """A few entries to plot: evenly spaced variables of a vector, the centre point of each channel of a field."""
    if len(state_shape) == 1:
        n = state_shape[0]
        return [(j,) for j in sorted({round(k * n / count) for k in range(count)} & set(range(n)))]
    centre = tuple(s // 2 for s in state_shape[1:])
    return [(c, *centre) for c in range(min(state_shape[0], count))]


def _label(entry: tuple, names: Optional[list]) -> str:
    head = names[entry[0]] if names and entry[0] < len(names) else f"variable {entry[0]}"
    return head if len(entry) == 1 else f"{head} at {tuple(entry[1:])}"


def _observed(observation: Observation, entry: tuple):
    """States and values where ``entry`` is observed directly (no operator), else None."""
    if observation.operator is not None:
        return None
    m = observation.mask[(slice(None), *entry)]
    idx = np.flatnonzero(m)
    return idx, observation.values[(idx, *entry)]


def _figure(rows: list, members: dict, truth: np.ndarray, observation: Observation, names: Optional[list]):
    from matplotlib.figure import Figure

    ok = [r for r in rows if r.method in members]
    entries = _entries(truth.shape[1:])
    n_hist = max(1, len(ok))
    cols = min(n_hist, 4)
    hist_rows = math.ceil(n_hist / cols)
    fig = Figure(figsize=(3.2 * max(cols, 3), 2.2 * (len(entries) + hist_rows)), constrained_layout=True)
    grid = fig.add_gridspec(len(entries) + hist_rows, cols)
    t = np.arange(truth.shape[0])
    colours = [f"C{k % 10}" for k in range(len(ok))]
    for e, entry in enumerate(entries):
        ax = fig.add_subplot(grid[e, :])
        ax.plot(t, truth[(slice(None), *entry)], color="black", lw=1.5, label="truth")
        seen = _observed(observation, entry)
        if seen is not None and len(seen[0]):
            ax.plot(seen[0], seen[1], "o", color="black", ms=3, mfc="none", label="observed")
        for r, colour in zip(ok, colours):
            x = members[r.method].detach().cpu().numpy()[(slice(None), slice(None), *entry)].astype(np.float64)
            mean = x.mean(0)
            sd = x.std(0, ddof=1) if len(x) > 1 else np.zeros_like(mean)
            ax.plot(t, mean, color=colour, lw=1.0, label=r.title)
            ax.fill_between(t, mean - sd, mean + sd, color=colour, alpha=0.2, lw=0)
        ax.set_ylabel(_label(entry, names))
        if e == 0:
            ax.legend(loc="upper right", fontsize="small", ncols=min(len(ok) + 2, 5))
        if e == len(entries) - 1:
            ax.set_xlabel("state")
    for k, (r, colour) in enumerate(zip(ok, colours)):
        ax = fig.add_subplot(grid[len(entries) + k // cols, k % cols])
        counts = np.asarray(r.rank_counts or calibration.rank_histogram(members[r.method], truth), dtype=np.float64)
        ax.bar(np.arange(len(counts)), counts / max(counts.sum(), 1.0), color=colour, width=1.0)
        ax.axhline(1.0 / len(counts), color="black", lw=0.8, ls="--")
        ax.set_title(f"{r.title}: rank histogram", fontsize="small")
        ax.set_xlabel("rank of the truth")
    return fig


def write_compare_report(rows: list, members_by_method: dict, truth, observation: Observation, out_dir,
                         variable_names: Optional[list] = None) -> dict:
    """Writes ``compare.md``, ``compare.csv`` and ``compare.png`` into ``out_dir``; returns their paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = truth.detach().cpu().numpy() if torch.is_tensor(truth) else np.asarray(truth, dtype=np.float64)
    paths = {"markdown": out / "compare.md", "csv": out / "compare.csv", "png": out / "compare.png"}
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(_markdown(rows), encoding="utf-8")
    with atomic_path(paths["csv"]) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["method"] + [a for a, _, _ in COLUMNS if a != "title"] + ["title"])
            for r in rows:
                writer.writerow([r.method] + [getattr(r, a) for a, _, _ in COLUMNS if a != "title"] + [r.title])
    fig = _figure(rows, members_by_method, truth.astype(np.float64), observation, variable_names)
    FigureCanvasAgg(fig)
    with atomic_path(paths["png"]) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return {k: str(v) for k, v in paths.items()}
