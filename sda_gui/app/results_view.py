"""Results viewer: animated posterior samples with playback controls and a metrics box.

Shows the last finished results, or, while the sampler runs, the current denoised
estimate (marked as a preview). The plots live in ``plots`` (one kind per state);
this module picks the kind for the system and drives it from an
``AnimationController``. The metrics come computed with the result
(``result_metrics``, on the worker); the view shows them in one line, the time shown
beside it, and a warning banner when the run blew up. Metrics line, time and plots
form one widget (``plot_widget``), so exported frames carry all three.

The view remembers the posterior mean and spread of the last two finished results
it showed (``_finals``): the one before the result shown — or, while a run previews,
the last one — is the *ghost* that the curve plots draw faintly as "previous"
(*Show previous* toggles it), so each rerun is seen against the one it replaces.
Field images draw no ghost.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QSpinBox,
                               QStackedWidget, QStyle, QToolButton, QVBoxLayout, QWidget)

from .animation import AnimationController
from .plots import MODES, plots_for_system
from .result_metrics import compute_metrics, result_warnings
from .state import AppState, Results

__all__ = ["ResultsView", "plots_for_system"]


PREVIEW_STATUS = ("<b>Preview while sampling</b>: the current denoised estimate, updated as the sampler runs "
                  "· metrics appear when it finishes")


WARN_STYLE = "padding: 3px; background: #f8d7da; color: #58151c; border: 1px solid #f1aeb5;"
METRICS_TIP = ("RMSE: root mean square error of the posterior mean against the truth · spread: RMS of the "
               "std over samples · residual: the std (RMS) of A(x) − y over the observed entries, near σ_y "
               "when the samples explain the observations as well as the truth does")


def metrics_html(m: dict, settings: dict, preview: bool) -> str:
    """One compact line: the numbers a user compares between runs (red where a warning concerns them)."""
    parts = []
    if m.get("bad_values"):
        parts.append(f"<span style='color:#b00020'><b>{m['bad_values']} non-finite or huge values</b></span>")
    if "rmse" in m:
        parts.append(f"RMSE <b>{m['rmse']:.3f}</b>")
    parts.append(f"spread <b>{m['spread']:.3f}</b>")
    if "residual_std" in m:
        through = f", A = {m['operator']}" if m.get("operator") else ""
        r, s = m["residual_std"], m["obs_std"]
        far = not (np.isfinite(r) and 0.3 * s <= r <= 3.0 * s)
        value = f"<span style='color:#b00020'>{r:.3f}</span>" if far else f"{r:.3f}"
        parts.append(f"residual <b>{value}</b> vs σ_y {s:.3g} ({m['n_obs']} obs{through})")
    parts.append(f"{m['samples']} samples")
    if settings.get("guidance"):
        sampler = f"{settings['guidance'].upper()}, {settings.get('steps')} steps, C = {settings.get('corrections')}"
        if int(settings.get("final_corrections", -1)) >= 0:
            sampler += f" (final {settings['final_corrections']})"
        if float(settings.get("dynamics_std", 0.0)) > 0:
            sampler += f", dyn. q {settings['dynamics_std']:g}"
        if int(settings.get("refine_iterations", 0)) > 0:
            sampler += f", refined {int(settings['refine_iterations'])}"
        parts.append(sampler)
    if settings.get("seconds") is not None and not preview:
        parts.append(f"{settings['seconds']:.1f} s")
    head = "<b>Preview</b> · " if preview else ""
    return head + " · ".join(parts)


class ResultsView(QWidget):
    """Playback controls + the plots for the current system + metrics."""

    frameShown = Signal(int)

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.controller = AnimationController(self, fps=10.0, loop=True)
        self.plots = None
        self._plots_key = None
        self.metrics: dict = {}
        #: the warning lines the banner shows (empty when none)
        self.warnings: list = []
        self.shown: Optional[Results] = None
        self._stale = False   # a preview came while hidden
        #: (results, {"mean", "std"}) of the last two finished results shown, oldest first
        self._finals: list = []
        #: what the plots draw as the previous result (None: nothing to compare with, or hidden)
        self.ghost: Optional[dict] = None

        sp = QStyle.StandardPixmap
        self._play_icon = self.style().standardIcon(sp.SP_MediaPlay)
        self._pause_icon = self.style().standardIcon(sp.SP_MediaPause)
        self.first_button = _tool(self.style().standardIcon(sp.SP_MediaSkipBackward), "First time step")
        self.back_button = _tool(self.style().standardIcon(sp.SP_MediaSeekBackward), "Step back one time step")
        self.play_button = _tool(self._play_icon, "Play / pause (Space)")
        self.forward_button = _tool(self.style().standardIcon(sp.SP_MediaSeekForward), "Step forward one time step")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Time step shown")
        self.time_label = QLabel("—")
        self.time_label.setMinimumWidth(150)
        self.speed_spin = QSpinBox()
        self.speed_spin.setRange(1, 240)
        self.speed_spin.setValue(10)
        self.speed_spin.setSuffix(" fps")
        self.speed_spin.setToolTip("Playback speed in time steps per second")
        self.loop_check = QCheckBox("loop")
        self.loop_check.setChecked(True)
        self.mode_combo = QComboBox()
        for key, label in MODES.items():
            self.mode_combo.addItem(label, key)
        self.mode_combo.setToolTip("Show all samples, one sample, or the mean with a ±1 std band")
        self.sample_spin = QSpinBox()
        self.sample_spin.setRange(1, 1)
        self.sample_spin.setPrefix("#")
        self.sample_spin.setToolTip("Which sample the 'one sample' view and the sample panel show")
        self.previous_check = QCheckBox("Show previous")
        self.previous_check.setChecked(True)
        self.previous_check.setToolTip("Draw the previous result's posterior mean as a dashed grey curve "
                                       "(\"previous\"), to compare with this one")
        self.metrics_label = QLabel()
        self.metrics_label.setTextFormat(Qt.TextFormat.RichText)
        self.metrics_label.setStyleSheet("padding: 2px;")
        # fixed heights: a label that changes size with its text would relayout every plot
        # below it on each preview
        line = self.fontMetrics().height() + 8
        self.metrics_label.setFixedHeight(line)
        # nor its width: a new text (each preview says its step) must not relayout the view
        self.metrics_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.metrics_label.setToolTip(METRICS_TIP)
        # the time shown, beside the metrics: part of every exported frame
        self.frame_label = QLabel()
        self.frame_label.setFixedHeight(line)
        self.frame_label.setFixedWidth(self.fontMetrics().horizontalAdvance("t = 00000.00 · step 00000 / 00000") + 12)
        self.frame_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # a blown-up run says so in words, with what helps (result_metrics.result_warnings)
        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        self.warning_label.setTextFormat(Qt.TextFormat.RichText)
        self.warning_label.setStyleSheet(WARN_STYLE)
        self.warning_label.setVisible(False)
        self.empty = QLabel("No results yet.\n\nPaint an observation pattern, then press Assimilate.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.figure = QWidget()
        self.figure.setAutoFillBackground(True)
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.metrics_label, 1)
        head.addWidget(self.frame_label)
        fig = QVBoxLayout(self.figure)
        fig.setContentsMargins(0, 0, 0, 0)
        fig.setSpacing(2)
        fig.addLayout(head)
        fig.addWidget(self.warning_label)
        fig.addWidget(self.stack, 1)

        bar = QHBoxLayout()
        for w in (self.first_button, self.back_button, self.play_button, self.forward_button):
            bar.addWidget(w)
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.time_label)
        bar.addWidget(self.speed_spin)
        bar.addWidget(self.loop_check)
        bar.addWidget(QLabel("show"))
        bar.addWidget(self.mode_combo)
        bar.addWidget(self.sample_spin)
        bar.addWidget(self.previous_check)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.figure, 1)
        layout.addLayout(bar)

        self.first_button.clicked.connect(lambda: self.controller.set_frame(0))
        self.back_button.clicked.connect(lambda: self.controller.step(-1))
        self.forward_button.clicked.connect(lambda: self.controller.step(1))
        self.play_button.clicked.connect(self.controller.toggle)
        self.slider.valueChanged.connect(self._slider_moved)
        self.speed_spin.valueChanged.connect(self.controller.set_speed)
        self.loop_check.toggled.connect(self.controller.set_loop)
        self.mode_combo.currentIndexChanged.connect(lambda _: self._mode_changed())
        self.sample_spin.valueChanged.connect(lambda _: self._mode_changed())
        self.previous_check.toggled.connect(lambda _: self._show_ghost())
        self.controller.frameChanged.connect(self.show_frame)
        self.controller.playingChanged.connect(
            lambda p: self.play_button.setIcon(self._pause_icon if p else self._play_icon))
        state.resultsChanged.connect(self.refresh)
        state.previewChanged.connect(self.refresh)
        state.systemChanged.connect(self._system_changed)
        self._update_controls()
        self._ensure_plots(state.system)

    # public API -------------------------------------------------------------------------
    def play(self):
        self.controller.play()

    def pause(self):
        self.controller.pause()

    def step(self, delta: int = 1):
        self.controller.step(delta)

    def set_frame(self, t: int):
        self.controller.set_frame(t)

    def set_speed(self, fps: float):
        self.speed_spin.setValue(int(fps))

    def set_loop(self, loop: bool):
        self.loop_check.setChecked(loop)

    def set_mode(self, mode: str, sample: Optional[int] = None):
        if sample is not None:
            self.sample_spin.setValue(int(sample) + 1)
        i = self.mode_combo.findData(mode)
        if i < 0:
            raise ValueError(f"unknown display mode '{mode}' (known: {', '.join(MODES)})")
        self.mode_combo.setCurrentIndex(i)

    @property
    def frame(self) -> int:
        return self.controller.frame

    def plot_widget(self):
        """The figure to export as PNG/GIF/MP4: metrics line, time shown, warnings and plots."""
        return self.figure

    def scene_widget(self):
        """The pyqtgraph view of the plots (SVG export), or None before any plots exist."""
        return self.plots.widget if self.plots is not None else None

    # updates ----------------------------------------------------------------------------
    def _system_changed(self):
        # results of another system stay in the state but cannot be drawn with the new one's plots
        if self.state.results is not None and tuple(self.state.results.samples.shape[2:]) != tuple(self.state.state_shape):
            self.state.set_results(None)
        # build the plots now rather than on the first preview, in the middle of a run
        self._ensure_plots(self.state.system)
        self.refresh()

    def _ensure_plots(self, system):
        key = (system.name, tuple(system.state_shape), system.dt)
        if key == self._plots_key:
            return
        if self.plots is not None:
            self.stack.removeWidget(self.plots.widget)
            self.plots.widget.deleteLater()
        self.plots = plots_for_system(system)
        self._plots_key = key
        self.stack.addWidget(self.plots.widget)
        self.previous_check.setEnabled(self.plots.has_ghost)

    def refresh(self):
        """Shows the preview while a run is going on, else the last results.

        A preview arriving while the view is hidden (another tab) waits until it shows.
        """
        if self.state.preview is not None and not self.isVisible():
            self._stale = True
            return
        self._stale = False
        res = self.state.preview or self.state.results
        if res is not None and tuple(res.samples.shape[2:]) != tuple(self.state.state_shape):
            res = None
        self.shown = res
        if res is None:
            self._finals.clear()   # cleared results (a new scenario, another system): nothing to compare with
            self.ghost = None
            if self.plots is not None:
                self.plots.ghost = None
            self.stack.setCurrentWidget(self.empty)
            self.set_status("")
            self.set_warnings([])
            self.frame_label.setText("")
            self.controller.set_frame_count(0)
            self._update_controls()
            return
        self._ensure_plots(self.state.system)
        self.stack.setCurrentWidget(self.plots.widget)
        self.sample_spin.setRange(1, res.samples.shape[0])
        self.plots.mode = self.mode_combo.currentData()
        self.plots.sample = self.sample_spin.value() - 1
        self.controller.set_frame_count(res.length)
        self.plots.frame = min(self.controller.frame, res.length - 1)
        # the ghost goes in first, so that the axes fitted to this result make room for it
        self.ghost = self._ghost_for(res)
        self.plots.ghost = self.ghost if self.previous_check.isChecked() else None
        self.plots.set_results(res)
        self._remember(res)
        if res.preview:
            # metrics wait for the final samples: the UI thread stays free while the sampler runs.
            # One text for the whole run (the step shows in the Assimilate panel): a label whose
            # text changes asks the whole view to lay out and repaint again
            self.set_status(PREVIEW_STATUS, preview=True)
            self.set_warnings([])
        else:
            try:
                if res.metrics is None:  # e.g. a reopened session
                    res.metrics = compute_metrics(res, system=self.state.system)
                self.metrics = res.metrics
                self.set_status(metrics_html(self.metrics, res.settings, res.preview))
                # the run's own settings name what it did not try yet
                warnings = result_warnings(self.metrics, res.settings) if res.settings \
                    else self.metrics.get("warnings", [])
                self.set_warnings(warnings)
            except Exception as exc:  # noqa: BLE001 - a metric failing must not hide the samples
                self.metrics = {}
                self.set_status(f"metrics unavailable: {exc}")
                self.set_warnings([])
        self._update_controls()
        self.show_frame(self.plots.frame)

    # the previous result ------------------------------------------------------------------
    def _ghost_for(self, res: Results) -> Optional[dict]:
        """The last finished result before ``res``, when it has ``res``'s shape (else None)."""
        if not self.plots.has_ghost:
            return None
        earlier = [g for r, g in self._finals if r is not res]
        if not earlier or earlier[-1]["mean"].shape != tuple(res.samples.shape[1:]):
            return None
        return earlier[-1]

    def _remember(self, res: Results):
        """Keeps a finished result's mean and spread (computed with its plot data) for the next ghost."""
        d = self.plots.last_data
        if res.preview or not self.plots.has_ghost or d is None or "mean" not in d.arrays:
            return
        if self._finals and self._finals[-1][0] is res:
            return
        self._finals = (self._finals + [(res, {"mean": d.arrays["mean"], "std": d.arrays["std"]})])[-2:]

    def _show_ghost(self):
        """*Show previous* toggled: draws or hides the ghost without refitting the axes."""
        if self.plots is not None and self.shown is not None:
            self.plots.set_ghost(self.ghost if self.previous_check.isChecked() else None)

    def showEvent(self, event):
        super().showEvent(event)
        if self._stale:
            self.refresh()

    def prepare_for_run(self, results_like: Results):
        """Lays out and paints the plots before the sampler starts; returns the worker's preparer.

        The first layout and paint of the plots cost a few hundred milliseconds; paying
        them at the click, rather than when the first preview arrives mid-run, keeps the
        window responsive while sampling. The plots get the run's truth and observations
        with blank (NaN) samples, so nothing on screen pretends to be a result, and fix
        the colour scales of the run. ``prepare(samples)`` computes on the worker thread
        what a preview (or the final result) of these plots shows.
        """
        self._ensure_plots(self.state.system)
        self.plots.begin_run(results_like)
        if self.state.results is None:
            self.shown = results_like
            self.stack.setCurrentWidget(self.plots.widget)
            self.controller.set_frame_count(results_like.length)
            self.plots.set_results(results_like)
            self._update_controls()
        self.set_status("<b>Sampling…</b> the first estimate appears after the first sampler step", preview=True)
        self.set_warnings([])
        self.plots.widget.repaint()
        return self.plots.preparer(results_like)

    def set_status(self, html: str, preview: bool = False):
        """The line above the plots: metrics of the results, or where a running sampler is.

        One fixed-height line for both, so the plots never jump when a run ends.
        """
        style = "padding: 2px; background: #fff3cd; color: #664d03;" if preview else "padding: 2px;"
        if self.metrics_label.styleSheet() != style:  # a new style sheet re-polishes the label
            self.metrics_label.setStyleSheet(style)
        if self.metrics_label.text() != html:
            self.metrics_label.setText(html)

    def set_warnings(self, lines: list):
        """The banner under the metrics line: shown only when a finished run has something to say."""
        self.warnings = list(lines)
        html = "<br>".join(f"⚠ {line}" for line in lines)
        if self.warning_label.text() != html:
            self.warning_label.setText(html)
        self.warning_label.setVisible(bool(lines))

    def _mode_changed(self):
        if self.plots is not None and self.shown is not None:
            self.plots.set_mode(self.mode_combo.currentData(), self.sample_spin.value() - 1)
        self.sample_spin.setEnabled(True)

    def _slider_moved(self, value: int):
        if value != self.controller.frame:
            self.controller.set_frame(value)

    def show_frame(self, t: int):
        if self.plots is None or self.shown is None:
            return
        t = min(int(t), self.shown.length - 1)
        self.plots.show_frame(t)
        if self.slider.value() != t:
            self.slider.blockSignals(True)
            self.slider.setValue(t)
            self.slider.blockSignals(False)
        dt = self.state.system.dt
        self.time_label.setText(f"step {t} / {self.shown.length - 1}  (t = {t * dt:.2f})")
        self.frame_label.setText(f"t = {t * dt:.2f} · step {t} / {self.shown.length - 1}")
        self.frameShown.emit(t)

    def _update_controls(self):
        n = self.controller.n_frames
        self.slider.setRange(0, max(0, n - 1))
        for w in (self.first_button, self.back_button, self.play_button, self.forward_button, self.slider):
            w.setEnabled(n > 1)
        if n == 0:
            self.time_label.setText("—")


def _tool(icon, tip: str) -> QToolButton:
    b = QToolButton()
    b.setIcon(icon)
    b.setToolTip(tip)
    b.setMinimumWidth(30)
    return b
