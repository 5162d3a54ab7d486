"""The main window of SDA Studio.

Layout (fits 1280×800): a dock on the left with the *System* and *Assimilate*
panels; the centre holds the *Observations* grid editor, the *Results* viewer and
the *Training* panel as tabs. Each panel owns its worker (``JobRunner``), so a long
training does not block a quick assimilation; all data live in one ``AppState``.

Start-up: nothing here imports torch or ``sda_gui.core`` at module load. By default
the window waits for the engine (``engine.ENGINE``) before it builds; ``run()`` builds
it with ``wait_engine=False`` instead, shows the default scenario from
``scenario.cached_default`` and calls ``start_engine()`` once that is painted.

The window's actions live beside it: ``menus`` (menus, toolbar, shortcuts),
``session_actions`` (save/open sessions, the default scenario), ``file_actions``
(dialogs, exports) and ``scripted`` (``--screenshot``). Every question before work is
discarded goes through ``confirm(text) -> bool`` (the panels' too), which a script or
a test may replace. Closing stops every job at once: the worker threads end within a
step of the sampler, trainer or solver.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QByteArray, QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QScrollArea, QTabWidget, QWidget

from .plotting import configure_pyqtgraph

configure_pyqtgraph()

from . import engine, scenario  # noqa: E402
from .assimilation_panel import AssimilationPanel  # noqa: E402
from .common import ask_user  # noqa: E402
from .file_actions import FileActions  # noqa: E402
from .grid_editor import GridEditor  # noqa: E402
from .menus import build_menus  # noqa: E402
from .compare_panel import ComparePanel  # noqa: E402
from .lesson_dock import LessonBrowser, LessonDock  # noqa: E402
from .lesson_runner import LessonRunner  # noqa: E402
from .results_view import ResultsView  # noqa: E402
from .scenario import DEFAULT_SCENARIO  # noqa: E402
from .scripted import ScriptedRuns  # noqa: E402
from .session_actions import SESSION_FILTER, SessionActions  # noqa: E402
from .settings import make_settings, read_value  # noqa: E402
from .state import AppState  # noqa: E402
from .system_panel import SystemPanel  # noqa: E402
from .training_panel import TrainingPanel  # noqa: E402

__all__ = ["MainWindow", "DEFAULT_SCENARIO", "on_next_paint", "SESSION_FILTER"]

#: how long closing waits for a job that does not stop at its next step
SHUTDOWN_TIMEOUT_S = 10.0
#: start the engine this long after the window was asked to, even if it has not painted
ENGINE_START_FALLBACK_MS = 1500


class _EngineSignal(QObject):
    """Carries "the engine has loaded" from the loading thread to the UI thread (queued)."""

    loaded = Signal()


class _PaintWatch(QObject):
    def __init__(self, callback):
        super().__init__()
        self.callback = callback

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            obj.removeEventFilter(self)
            # after the paint has finished, not in the middle of it
            QTimer.singleShot(0, self.callback)
            self.deleteLater()
        return False


def on_next_paint(widget: QWidget, callback):
    """Calls ``callback()`` once ``widget`` has been painted the next time (and asks for a paint)."""
    watch = _PaintWatch(callback)
    watch.setParent(widget)
    widget.installEventFilter(watch)
    widget.update()
    return watch


class MainWindow(SessionActions, FileActions, ScriptedRuns, QMainWindow):
    """``wait_engine=False`` builds the window while torch still loads (``run()`` does);
    the default waits for the engine first, so every panel is complete at once."""

    def __init__(self, settings=None, settings_path: Optional[str] = None, load_default: bool = True,
                 wait_engine: bool = True):
        super().__init__()
        if wait_engine:
            engine.ENGINE.wait()
        self.setWindowTitle("SDA Studio — score-based data assimilation")
        self.settings = settings if settings is not None else make_settings(settings_path)
        self.state = AppState(self)
        self._cached_truth = None   # the default truth taken from the scenario file, until checked
        self._engine_note = ""
        self._engine_signal = _EngineSignal(self)
        self._engine_signal.loaded.connect(self.state.ensure_engine)
        # before the panels' handlers: a run asked for meanwhile starts on the checked truth
        self.state.engineReady.connect(self._check_default_truth)

        self.system_panel = SystemPanel(self.state, settings=self.settings)
        self.assimilation_panel = AssimilationPanel(self.state, settings=self.settings)
        self.grid_editor = GridEditor(self.state, settings=self.settings)
        self.results_view = ResultsView(self.state)
        self.training_panel = TrainingPanel(self.state, settings=self.settings)
        # SDA in a comparison runs with the Assimilate tab's sampler settings and model
        self.compare_panel = ComparePanel(self.state, self.assimilation_panel.sampler_settings)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.grid_editor, "Observations")
        self.tabs.addTab(self.results_view, "Results")
        self.tabs.addTab(self.compare_panel, "Compare")
        self.tabs.addTab(self.training_panel, "Training")
        self.setCentralWidget(self.tabs)

        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(_scroll(self.system_panel), "System")
        self.side_tabs.addTab(_scroll(self.assimilation_panel), "Assimilate")
        self.dock = QDockWidget("Setup", self)
        self.dock.setObjectName("setup-dock")
        self.dock.setWidget(self.side_tabs)
        self.dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable |
                              QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.dock.setMinimumWidth(300)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)

        self.status_label = QLabel()
        self.statusBar().addWidget(self.status_label, 1)
        self.last_error = ""
        self._shut_down = False
        #: runner name → whether its thread ended at the last ``shutdown``
        self.shutdown_report: dict = {}
        # one place answers every "discard unsaved work?" question
        for panel in (self.system_panel, self.training_panel):
            panel.confirm = lambda text: self.confirm(text)

        # the lesson dock shares the left area with Setup: the window keeps its 1280-pixel width
        self.lesson_runner = LessonRunner(self)
        self.lesson_dock = LessonDock(self.lesson_runner, self)
        self.lesson_dock.setObjectName("lesson-dock")
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.lesson_dock)
        self.tabifyDockWidget(self.dock, self.lesson_dock)
        self.lesson_dock.hide()
        self.lesson_runner.changed.connect(self.lesson_dock.refresh_check)
        self.lesson_runner.message.connect(self.show_message)
        self.compare_panel.comparisonChanged.connect(self.lesson_runner.changed.emit)

        build_menus(self)
        self._update_actions(False)
        for panel in (self.system_panel, self.assimilation_panel, self.grid_editor, self.training_panel):
            panel.errorRaised.connect(self.show_error)
        # an error must be seen where it happened: bring its panel to the front
        self.system_panel.errorRaised.connect(lambda _: self.side_tabs.setCurrentIndex(0))
        self.assimilation_panel.errorRaised.connect(lambda _: self.side_tabs.setCurrentIndex(1))
        self.grid_editor.errorRaised.connect(lambda _: self.tabs.setCurrentWidget(self.grid_editor))
        self.training_panel.errorRaised.connect(lambda _: self.tabs.setCurrentWidget(self.training_panel))
        self.state.message.connect(self.show_message)
        self.assimilation_panel.runStarting.connect(self._run_starting)
        self.assimilation_panel.runStarted.connect(lambda: self.show_message("assimilating…"))
        self.assimilation_panel.runEnded.connect(self._run_ended)
        self.training_panel.modelSaved.connect(self._model_saved)
        self.assimilation_panel.runner.stateChanged.connect(self._update_actions)
        self.state.systemChanged.connect(self._system_changed)
        self.state.engineReady.connect(self._engine_ready)

        self.resize(1280, 800)
        self.resizeDocks([self.dock], [320], Qt.Orientation.Horizontal)
        self._restore_settings()
        if load_default:
            self.load_default_scenario()

    # actions ----------------------------------------------------------------------------
    def confirm(self, text: str) -> bool:
        """Asks before work is discarded; True to go on. Scripts and tests may replace it."""
        return ask_user(self, text)

    def _update_actions(self, running: bool):
        self.assimilate_action.setEnabled(not running)
        self.cancel_action.setEnabled(running)

    # messages ---------------------------------------------------------------------------
    def show_error(self, text: str):
        # the status bar holds one line, whatever a panel was given
        text = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
        self.last_error = text
        self.status_label.setStyleSheet("color: #b00020;")
        self.status_label.setText(text)

    def show_message(self, text: str):
        self.status_label.setStyleSheet("")
        self.status_label.setText(text)

    def about(self):
        QMessageBox.about(self, "SDA Studio",
                          "<b>SDA Studio</b><br>Score-based data assimilation (Rozet &amp; Louppe, NeurIPS 2023) "
                          "on your desktop: simulate a system, paint what is observed, and draw posterior "
                          "trajectories with a diffusion model.")

    # scenario ---------------------------------------------------------------------------
    def load_default_scenario(self):
        """Lorenz-96 truth from a fixed seed, a sparse random pattern, observations, the shipped model.

        The core simulates the truth; before the engine has loaded, the truth comes from
        the scenario file the core wrote (``scenario``), checked once the engine is up.
        """
        sc = DEFAULT_SCENARIO
        cached = None if self.state.engine_loaded else scenario.cached_default()
        if cached is None:
            self.state.ensure_engine()
            system, truth = scenario.simulate_default()
        else:
            system, truth = cached
        self._cached_truth = None if cached is None else truth
        self.state.set_truth(truth, system=system, source=f"simulated, seed {sc['seed']}")
        # the default scenario observes the states directly, whatever the last one did
        self.state.editor.reset(np.zeros(truth.shape, dtype=bool), space=None)
        self.system_panel.seed_spin.setValue(sc["seed"])
        self.grid_editor.random_pattern(sc["density"], sc["pattern_seed"])
        self.state.editor.reset(self.state.mask)  # the starting pattern is not an undo step
        self.grid_editor.generate_observations(seed=sc["obs_seed"], std=sc["obs_std"])
        self.state.set_results(None)
        self.state.mark_clean()   # nothing of the default scenario needs saving
        self.tabs.setCurrentWidget(self.grid_editor)
        self.side_tabs.setCurrentIndex(1)
        self._announce_scenario()

    def _announce_scenario(self):
        if not self.state.engine_loaded:
            self.show_message("Default scenario ready: Lorenz-96, 20 % of entries observed. "
                              "Loading the model…")
        elif self.state.model is None:
            self.show_message(f"No shipped model for {self.state.system.title}: train one in the Training tab.")
        else:
            self.show_message("Default scenario ready: Lorenz-96, 20 % of entries observed. Press Assimilate.")

    # engine -----------------------------------------------------------------------------
    def start_engine(self):
        """Loads torch and the core on a background thread; the panels complete when it is done.

        Called once the window (and the default scenario) has been painted: the loading
        thread competes with the UI thread for the interpreter, so it must not slow that.
        """
        if self.state.engine_loaded:
            return
        engine.ENGINE.on_ready(self._engine_signal.loaded.emit)
        tasks = [scenario.check_default_truth] if self._cached_truth is not None else []
        engine.ENGINE.start(tasks=tasks)

    def start_engine_after_paint(self, widget: Optional[QWidget] = None):
        """``start_engine`` once ``widget`` (default: the observation grid) has been painted."""
        target = widget if widget is not None else self.grid_editor.plot_widget.viewport()
        on_next_paint(target, self.start_engine)
        QTimer.singleShot(ENGINE_START_FALLBACK_MS, self, self.start_engine)

    def _check_default_truth(self):
        """The engine is in: a default truth taken from the file must be the core's."""
        cached, self._cached_truth = self._cached_truth, None
        if cached is None or self.state.truth is not cached:
            return
        core = scenario.core_default_truth()
        if core is None:
            core = scenario.simulate_default()[1]
        if core.shape == cached.shape and np.allclose(core, cached, rtol=0.0, atol=1e-4):
            return
        # another torch or CPU draws another trajectory: the core's is the truth
        if not self.state.editor.can_undo and self.state.results is None and not self.assimilation_panel.runner.running:
            self.load_default_scenario()
            self._engine_note = "Default scenario re-simulated by the engine (it differs from the stored one)."
        else:
            self._engine_note = ("Note: the engine simulates a different default truth on this machine; "
                                 "File › New default scenario uses it.")

    def _engine_ready(self):
        """The panels are complete (model loaded): say so where the scenario waits for it."""
        note, self._engine_note = self._engine_note, ""
        if note:
            self.show_message(note)
        elif self.state.truth is not None and self.tabs.currentWidget() is self.grid_editor:
            self._announce_scenario()

    def _system_changed(self):
        s = self.assimilation_panel.sampler_settings()
        sampler = f"sampler: {s['steps']} steps, C = {s['corrections']}, {s['n_samples']} samples"
        if self.state.model is None:
            self.show_message(f"No model for {self.state.system.title} yet: train one in the Training tab "
                              f"or choose a checkpoint ({sampler}).")
        else:
            self.show_message(f"{self.state.system.title} ready ({sampler}).")

    # run --------------------------------------------------------------------------------
    def assimilate(self) -> bool:
        return self.assimilation_panel.assimilate()

    # lessons ----------------------------------------------------------------------------
    def open_lesson(self, lesson) -> None:
        """Shows ``lesson`` in the lesson dock and sets up its scenario."""
        self.lesson_dock.show()
        self.lesson_dock.raise_()
        self.lesson_dock.set_lesson(lesson)

    def browse_lessons(self, from_file: bool = False) -> bool:
        """Help › Lessons (or File › Open lesson…): pick one and open it."""
        browser = LessonBrowser(self)
        if from_file:
            lesson = browser.open_file()
            if lesson is None:
                if browser.error.isVisible():
                    self.show_error(browser.error.text())
                return False
        elif not browser.exec() or browser.chosen is None:
            return False
        self.open_lesson(browser.chosen)
        return True

    def set_presenter_mode(self, on: bool) -> None:
        from .presenter import set_presenter_mode

        set_presenter_mode(self, on)

    def cancel(self):
        self.assimilation_panel.cancel()
        self.system_panel.cancel()
        self.training_panel.cancel()
        self.compare_panel.cancel()

    def _run_starting(self, blank):
        self.results_view.pause()
        if not (self.assimilation_panel.live.quiet_tab and self.tabs.currentWidget() is self.grid_editor):
            self.tabs.setCurrentWidget(self.results_view)
        self.assimilation_panel.preview_prepare = self.results_view.prepare_for_run(blank)

    def _run_ended(self, how: str):
        if how == "finished":
            self.results_view.set_frame(0)
            self.results_view.play()

    def _model_saved(self, path: str):
        self.assimilation_panel.add_model_path(path, select=True)
        self.show_message(f"model saved to {path} and selected for assimilation")

    # settings ---------------------------------------------------------------------------
    def _restore_settings(self):
        s = self.settings
        geom = s.value("window/geometry")
        if isinstance(geom, (QByteArray, bytes)):
            self.restoreGeometry(geom)
        saved = {}
        for key, kind in (("guidance", str), ("steps", int), ("corrections", int), ("final_corrections", int),
                          ("dynamics_std", float), ("refine_iterations", int), ("tau", float), ("gamma", float),
                          ("n_samples", int), ("device", str), ("seed", int)):
            if s.contains(f"assimilation/{key}"):
                saved[key] = read_value(s, f"assimilation/{key}", kind(), kind)
        # preferences of another version may hold anything: what does not fit a widget is skipped
        self.assimilation_panel.apply_settings(saved, strict=False)
        if s.contains("results/fps"):
            self.results_view.set_speed(read_value(s, "results/fps", 10, int))
        if s.contains("editor/brush"):
            self.grid_editor.brush_spin.setValue(read_value(s, "editor/brush", 1, int))

    def save_settings(self):
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        for key, value in self.assimilation_panel.sampler_settings().items():
            s.setValue(f"assimilation/{key}", value)
        s.setValue("results/fps", self.results_view.speed_spin.value())
        s.setValue("editor/brush", self.grid_editor.brush_spin.value())
        s.sync()

    def _runners(self) -> dict:
        return {"assimilate": self.assimilation_panel.runner, "simulate": self.system_panel.runner,
                "train": self.training_panel.runner, "compare": self.compare_panel.runner}

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> bool:
        """Stops every worker and joins its thread: nothing outlives the window.

        Every job is told to stop first (and no auto-run starts one), so they wind down together;
        a job returns within one step of its loop. True when every thread has ended (``shutdown_report``).
        """
        self._shut_down = True
        self.assimilation_panel.live.stop()
        self.results_view.pause()
        self.lesson_runner.shutdown(timeout_s)
        runners = self._runners()
        for runner in runners.values():
            runner.request_stop()
        self.shutdown_report = {name: runner.shutdown(timeout_s) for name, runner in runners.items()}
        return all(self.shutdown_report.values())

    def unsaved_on_quit(self) -> list[str]:
        """What quitting now would lose, in words."""
        lost = list(self.state.unsaved_work())
        if self.training_panel.runner.running:
            lost.append("the model being trained")
        elif not self.training_panel.model_saved:
            lost.append("the trained model")
        return lost

    def closeEvent(self, event):
        if not self._shut_down:
            lost = self.unsaved_on_quit()
            if lost and not self.confirm(f"Quit and lose {' and '.join(lost)}? They are not saved."):
                event.ignore()
                return
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)


def _scroll(widget: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area
