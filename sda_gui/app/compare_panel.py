"""Compare: SDA and the classical methods on the same observations, side by side.

Tick the methods and press *Compare*: on the worker thread each method runs in
turn through ``core.compare.compare`` (the same registry the command line uses)
on the current truth, pattern, σ and seed, with the ensemble size chosen here;
SDA takes the Assimilation tab's sampler settings and model. The table lists
RMSE and spread (per state, averaged over the window), CRPS, spread/RMSE,
coverage of the 50 % and 90 % intervals, rank-histogram flatness and wall time;
the plots (``compare_plots``) show each method's mean and spread beside the truth
on shared colour scales, and the rank histograms.

For a system with a few variables (Lorenz-63), a particle filter with many
particles can be run as the *reference posterior*: each method's W1 distance to
its members is added to the table (the paper's measure of sampling accuracy).

Progress, cancel and errors behave as for SDA: one line on failure, nothing else
in the app changes. ``comparison`` holds the last finished comparison (what a
session saves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QSlider, QSpinBox, QSplitter, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from . import engine
from .compare_plots import ComparePlots, MethodCurves
from .sampler_config import dynamics_apply, refine_apply
from .state import AppState
from .workers import JobRunner

__all__ = ["ComparePanel", "Comparison", "METHODS", "REFERENCE_PARTICLES"]

#: (registry name, label, ticked by default) — the registry is the authority once the engine is loaded
METHODS = [("sda", "SDA", True), ("enkf", "EnKF", False), ("letkf", "LETKF", True), ("enks", "EnKS", False),
           ("ienks", "iEnKS", True), ("4dvar", "4D-Var (EDA)", True), ("wc4dvar", "Weak-constraint 4D-Var", True),
           ("bpf", "Particle filter", False),
           ("rpf", "Regularised PF", False)]
#: particles of the reference posterior (the paper's ground truth for Lorenz-63)
REFERENCE_PARTICLES = 16384
#: table columns: (key of a row dict, header, format)
COLUMNS = [("title", "method", "{}"), ("rmse", "RMSE", "{:.3f}"), ("spread", "spread", "{:.3f}"),
           ("crps", "CRPS", "{:.3f}"), ("spread_skill", "spread/RMSE", "{:.2f}"),
           ("coverage_90", "90 % cover", "{:.2f}"), ("rank_flatness", "rank χ²/dof", "{:.1f}"),
           ("rank_p", "rank p", "{:.2f}"), ("w1_reference", "W1 to ref.", "{:.2f}"), ("seconds", "time (s)", "{:.1f}"),
           ("error", "note", "{}")]

#: what a column's header explains when hovered
COLUMN_TIPS = {
    "spread_skill": "Spread over error of the members' mean: 1 when calibrated, below 1 over-confident",
    "rank_flatness": "χ²/dof of the truth's rank histogram: 1 for independent entries; states and variables "
                     "are correlated, so a calibrated ensemble scores more (read it with rank p)",
    "rank_p": "Share of the members whose own rank histogram among the other draws is at least as shaped as "
              "the truth's: small (below 0.05) when the truth does not look like one more member",
}


@dataclass
class Comparison:
    """A finished comparison: one dict of scores per method, and what the plots draw."""

    rows: list                       # dicts with the COLUMNS keys (NaN where unknown), plus "method"
    curves: list                     # MethodCurves of the methods that produced members
    truth: np.ndarray
    settings: dict = field(default_factory=dict)
    members: dict = field(default_factory=dict)   # method -> (N, L, *s) float32, for reports and sessions


def _row_dict(row) -> dict:
    keys = [k for k, _, _ in COLUMNS if k != "w1_reference"] + ["method", "coverage_50", "n_members", "device"]
    out = {k: getattr(row, k) for k in keys}
    out["w1_reference"] = math.nan
    out["rank_counts"] = [int(c) for c in row.rank_counts]
    return out


def _observed_points(obs, state_shape) -> Optional[tuple]:
    """``(times, variable, values)`` of direct observations of a low-dimensional state."""
    if obs is None or obs.operator or len(state_shape) != 1:
        return None
    t, j = np.nonzero(obs.mask)
    return t, j, obs.values[t, j]


class ComparePanel(QWidget):
    """Method ticks, ensemble size, run/cancel, the scores table and the comparison plots."""

    comparisonChanged = Signal()

    def __init__(self, state: AppState, sda_settings: Optional[Callable[[], dict]] = None, parent=None):
        super().__init__(parent)
        self.state = state
        self.sda_settings = sda_settings or (lambda: {})
        self.runner = JobRunner(self)
        self.comparison: Optional[Comparison] = None
        self._progress = {}

        box = QGroupBox("Methods")
        grid = QGridLayout(box)
        self.method_checks: dict[str, QCheckBox] = {}
        for i, (name, label, ticked) in enumerate(METHODS):
            check = QCheckBox(label)
            check.setChecked(ticked)
            self.method_checks[name] = check
            grid.addWidget(check, i // 4, i % 4)
        self.reference_check = QCheckBox(f"reference posterior: particle filter, {REFERENCE_PARTICLES} particles")
        self.reference_check.setToolTip("The exact posterior for a low-dimensional system; each method's W1 distance "
                                        "to it measures how well it samples")
        grid.addWidget(self.reference_check, 2, 0, 1, 4)
        self.members_spin = QSpinBox()
        self.members_spin.setRange(2, 4096)
        self.members_spin.setValue(32)
        self.members_spin.setToolTip("Ensemble size of every method (SDA: samples; particle filters draw this many "
                                     "members from their particles)")
        form = QFormLayout()
        form.addRow("members", self.members_spin)
        self.run_button = QPushButton("Compare")
        self.run_button.setStyleSheet("font-weight: bold;")
        self.run_button.setToolTip("Run the ticked methods one after another on the current observations")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.export_button = QPushButton("Export report…")
        self.export_button.setToolTip("Write compare.md, compare.csv and compare.png into a folder")
        self.export_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = QLabel("Tick the methods to compare and press Compare.")
        self.status.setWordWrap(True)
        controls = QHBoxLayout()
        controls.addWidget(box, 3)
        side = QVBoxLayout()
        side.addLayout(form)
        buttons = QHBoxLayout()
        for b in (self.run_button, self.cancel_button, self.export_button):
            buttons.addWidget(b)
        side.addLayout(buttons)
        side.addWidget(self.progress)
        side.addWidget(self.status)
        controls.addLayout(side, 2)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([h for _, h, _ in COLUMNS])
        for j, (key, _, _) in enumerate(COLUMNS):
            if key in COLUMN_TIPS:
                self.table.horizontalHeaderItem(j).setToolTip(COLUMN_TIPS[key])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.plots = ComparePlots()
        self.time_slider = QSlider(Qt.Orientation.Horizontal)
        self.time_slider.setToolTip("State shown for a 2-D field")
        self.time_slider.setVisible(False)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.plots, 1)
        lower_layout.addWidget(self.time_slider)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(lower)
        split.setSizes([150, 500])
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(split, 1)

        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(lambda: self.export_report())
        self.time_slider.valueChanged.connect(self.plots.set_time_index)
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        state.systemChanged.connect(self._system_changed)
        state.systemChanged.connect(self._sync_methods)
        state.engineReady.connect(self._sync_methods)
        self._system_changed()

    # ------------------------------------------------------------------ settings
    def selected_methods(self) -> list[str]:
        return [name for name, check in self.method_checks.items() if check.isChecked() and check.isEnabled()]

    def set_methods(self, names) -> None:
        for name, check in self.method_checks.items():
            check.setChecked(name in names)

    def _system_changed(self):
        low_dim = len(self.state.state_shape) == 1 and self.state.state_shape[0] <= 4
        self.reference_check.setVisible(low_dim)
        if not low_dim:
            self.reference_check.setChecked(False)

    def _sync_methods(self, *_):
        """Disables ticks of methods the core does not register, and of the classical methods
        on a data system: they step a transition, and trajectories from a file have none."""
        if not self.state.engine_loaded:
            return
        from sda_gui.core.methods import get_method, method_names

        known = set(method_names())
        dynamics = getattr(self.state.system, "has_dynamics", True)
        for name, check in self.method_checks.items():
            usable = name in known and (dynamics or get_method(name).needs_model)
            check.setEnabled(usable)
            if name not in known:
                check.setToolTip("not available in this version of the core")
            elif not usable:
                check.setToolTip("needs the system's dynamics: trajectories loaded from a file have none")
            else:
                check.setToolTip("")

    # ------------------------------------------------------------------ running
    def run(self) -> bool:
        """Starts the comparison on the worker; False (with a message) when it cannot start."""
        if self.runner.running:
            return False
        self.state.ensure_engine()
        self._sync_methods()
        methods = self.selected_methods()
        if not methods:
            self.show_error("tick at least one method")
            return False
        if self.state.truth is None:
            self.show_error("no truth to compare against: simulate or load one in the System tab")
            return False
        try:
            obs = self.state.observation()
        except (ValueError, RuntimeError) as exc:
            self.show_error(str(exc).splitlines()[0])
            return False
        sda = dict(self.sda_settings() or {})
        # what the Assimilate form greys out is not part of SDA's run here either
        if "dynamics_std" in sda and not dynamics_apply(sda, self.state.system):
            sda["dynamics_std"] = 0.0
        if "refine_iterations" in sda and not refine_apply(sda, self.state.system):
            sda["refine_iterations"] = 0
        device, seed = sda.pop("device", "cpu") or "cpu", int(sda.pop("seed", 0))
        sda.pop("n_samples", None)
        if "sda" in methods and self.state.model is None:
            self.show_error("SDA needs a score model: choose or train one, or untick SDA")
            return False
        n = self.members_spin.value()
        reference = self.reference_check.isChecked() and self.reference_check.isVisible()
        system, model, truth = self.state.system, self.state.model, self.state.truth.copy()
        settings = {"sda": sda}
        run_settings = {"methods": methods, "members": n, "seed": seed, "device": str(device), "sda": sda,
                        "reference": reference, "obs_std": self.state.obs_std}

        def job(report, should_stop):
            from sda_gui.core import metrics
            from sda_gui.core.assimilation import resolve_device
            from sda_gui.core.compare import compare
            from sda_gui.core.threads import apply_threads, auto_threads

            apply_threads(auto_threads())  # the idle cores now, as for SDA runs
            dev = resolve_device(device)
            names = methods + (["bpf"] if reference else [])
            extra = {"bpf": {"particles": REFERENCE_PARTICLES}} if reference else {}
            rows = compare(system, obs, truth, names, n, {**settings, **extra}, model=model, device=dev, seed=seed,
                           progress=lambda name, done, total: report((name, done, total)), should_stop=should_stop)
            ref = rows.pop() if reference else None
            out = []
            for row in rows:
                d = _row_dict(row)
                if ref is not None and ref.members is not None and row.members is not None:
                    d["w1_reference"] = metrics.w1(row.members, ref.members, seed=seed)
                out.append(d)
            curves, members = [], {}
            for row in rows:
                if row.members is not None:
                    m = row.members.numpy()
                    members[row.method] = m.astype(np.float32)
                    curves.append(MethodCurves(row.title, m.mean(0), m.std(0, ddof=1) if len(m) > 1 else 0 * m[0],
                                               np.asarray(row.rank_counts)))
            return Comparison(out, curves, truth, run_settings, members)

        self._progress = {"methods": methods + (["bpf"] if reference else []), "obs": obs}
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.status.setText(f"Comparing {len(methods)} method{'s' if len(methods) > 1 else ''}…")
        self.runner.start(job, "compare")
        self._set_busy(True)
        return True

    def cancel(self):
        self.runner.cancel()

    def _set_busy(self, busy: bool):
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.export_button.setEnabled(not busy and self.comparison is not None)

    def _on_progress(self, payload):
        name, done, total = payload
        order = self._progress.get("methods", [name])
        i = order.index(name) if name in order else 0
        frac = (i + done / max(total, 1)) / max(len(order), 1)
        self.progress.setValue(int(1000 * frac))
        label = dict((m, l) for m, l, _ in METHODS).get(name, name)
        self.progress.setFormat(f"{label}: {done} / {total} · method {i + 1} of {len(order)}")

    def _on_finished(self, comparison: Comparison):
        self._set_busy(False)
        self.progress.setValue(1000)
        self.show_comparison(comparison, self._progress.get("obs"))
        failed = [r["title"] for r in comparison.rows if r["error"]]
        best = min((r for r in comparison.rows if not r["error"]), key=lambda r: r["rmse"], default=None)
        text = f"Done: lowest RMSE {best['title']} ({best['rmse']:.3f})." if best else "No method produced members."
        if failed:
            text += f" Could not run: {', '.join(failed)} (see the note column)."
        self.status.setText(text)
        self.comparisonChanged.emit()

    def _on_failed(self, message: str):
        self._set_busy(False)
        self.show_error(message)

    def _on_cancelled(self):
        self._set_busy(False)
        kept = " The previous comparison is still shown." if self.comparison is not None else ""
        self.status.setText("Cancelled." + kept)

    def show_error(self, text: str):
        self.status.setText(f"<span style='color:#b00'>{text}</span>")

    # ------------------------------------------------------------------ showing
    def show_comparison(self, comparison: Comparison, obs=None):
        self.comparison = comparison
        self.export_button.setEnabled(True)
        self.table.setRowCount(len(comparison.rows))
        for i, row in enumerate(comparison.rows):
            for j, (key, _, fmt) in enumerate(COLUMNS):
                value = row.get(key, "")
                if isinstance(value, float) and not math.isfinite(value):
                    text = "–"
                else:
                    text = fmt.format(value) if value != "" else ""
                item = QTableWidgetItem(text)
                if key not in ("title", "error"):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        truth = comparison.truth
        field_state = truth.ndim > 2
        self.time_slider.setVisible(field_state)
        if field_state:
            self.time_slider.setRange(0, len(truth) - 1)
        names = list(getattr(self.state.system, "variable_names", []) or [])
        self.plots.show_comparison(truth, comparison.curves, names, float(getattr(self.state.system, "dt", 1.0)),
                                   _observed_points(obs, self.state.state_shape), self.time_slider.value())

    def restore(self, saved: Optional[dict]) -> None:
        """Shows a comparison saved in a session (``None``: clears the tab)."""
        if saved is None:
            self.comparison = None
            self.table.setRowCount(0)
            self.plots.show_comparison(np.zeros((1, 1)), [], [])
            self.export_button.setEnabled(False)
            self.status.setText("Tick the methods to compare and press Compare.")
            return
        rows = [{**{k: math.nan for k, _, _ in COLUMNS}, "error": "", **row} for row in saved["rows"]]
        rows = [{k: (math.nan if v is None else v) for k, v in row.items()} for row in rows]
        curves = []
        for row in rows:
            m = saved["members"].get(row["method"])
            if m is not None:
                m = np.asarray(m, dtype=np.float64)
                curves.append(MethodCurves(row["title"], m.mean(0), m.std(0, ddof=1) if len(m) > 1 else 0 * m[0],
                                           np.asarray(row.get("rank_counts") or [], dtype=np.float64)))
        members = {k: np.asarray(v, np.float32) for k, v in saved["members"].items()}
        self.show_comparison(Comparison(rows, curves, np.asarray(saved["truth"]), dict(saved["settings"]), members))
        self.status.setText("Comparison from the session.")

    def export_report(self, folder: Optional[str] = None) -> Optional[dict]:
        """Writes the Markdown table, CSV and PNG of the last comparison; returns their paths."""
        if self.comparison is None:
            return None
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Folder for the comparison report")
            if not folder:
                return None
        engine.ENGINE.wait()
        import torch

        from sda_gui.core.compare import Row, write_compare_report

        fields = ("method", "title", "n_members", "rmse", "spread", "crps", "spread_skill", "coverage_50",
                  "coverage_90", "rank_flatness", "rank_p", "seconds", "device", "error", "rank_counts")
        rows = [Row(**{k: r[k] for k in fields}) for r in self.comparison.rows]
        members = {k: torch.as_tensor(v) for k, v in self.comparison.members.items()}
        try:
            obs = self.state.observation(regenerate=False)
            paths = write_compare_report(rows, members, self.comparison.truth, obs, Path(folder),
                                         list(getattr(self.state.system, "variable_names", []) or []))
        except (OSError, ValueError) as exc:
            self.show_error(f"could not write the report: {str(exc).splitlines()[0]}")
            return None
        self.status.setText(f"Report written to {folder}.")
        return paths
