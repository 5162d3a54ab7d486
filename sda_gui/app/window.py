"""The main window of SDA Studio.

Layout (fits 1280×800): a dock on the left with the *System* and *Assimilate*
panels; the centre holds the *Observations* grid editor, the *Results* viewer and
the *Training* panel as tabs. Each panel owns its worker (``JobRunner``), so a long
training does not block a quick assimilation; all data live in one ``AppState``.

Start-up: nothing here imports torch or ``sda_gui.core`` at module load. By default
the window waits for the engine (``engine.ENGINE``) before it builds; ``run()`` builds
it with ``wait_engine=False`` instead, shows the default scenario from
``scenario.cached_default`` and calls ``start_engine()`` once that is painted.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import QByteArray, QEvent, QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox,
                               QScrollArea, QTabWidget, QWidget)

from .plotting import configure_pyqtgraph

configure_pyqtgraph()

from . import engine, scenario  # noqa: E402
from .assimilation_panel import AssimilationPanel  # noqa: E402
from .export import export_animation, export_png, mp4_available  # noqa: E402
from .grid_editor import GridEditor  # noqa: E402
from .operators import observed_shape  # noqa: E402
from .results_view import ResultsView  # noqa: E402
from .scenario import DEFAULT_SCENARIO  # noqa: E402
from .session import SessionData, load_session, save_session  # noqa: E402
from .settings import make_settings, read_value  # noqa: E402
from .state import AppState, Results  # noqa: E402
from .system_panel import SystemPanel  # noqa: E402
from .training_panel import TrainingPanel  # noqa: E402

__all__ = ["MainWindow", "DEFAULT_SCENARIO", "on_next_paint"]

SESSION_FILTER = "SDA Studio sessions (*.h5 *.hdf5);;All files (*)"
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


class MainWindow(QMainWindow):
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

        self.tabs = QTabWidget()
        self.tabs.addTab(self.grid_editor, "Observations")
        self.tabs.addTab(self.results_view, "Results")
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

        self._build_actions()
        for panel in (self.system_panel, self.assimilation_panel, self.grid_editor, self.training_panel):
            panel.errorRaised.connect(self.show_error)
        # an error must be seen where it happened: bring its panel to the front
        self.system_panel.errorRaised.connect(lambda _: self.side_tabs.setCurrentIndex(0))
        self.assimilation_panel.errorRaised.connect(lambda _: self.side_tabs.setCurrentIndex(1))
        self.grid_editor.errorRaised.connect(lambda _: self.tabs.setCurrentWidget(self.grid_editor))
        self.training_panel.errorRaised.connect(lambda _: self.tabs.setCurrentWidget(self.training_panel))
        self.state.message.connect(self.show_message)
        self.assimilation_panel.runStarting.connect(self._run_starting)
        self.assimilation_panel.runStarted.connect(self._run_started)
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
    def _action(self, menu, text, slot, shortcut=None, tip=None) -> QAction:
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        a.triggered.connect(lambda _=False: slot())
        menu.addAction(a)
        return a

    def _build_actions(self):
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "New default scenario", self.load_default_scenario)
        self.open_action = self._action(f, "&Open session…", self.open_session, QKeySequence.StandardKey.Open)
        self.save_action = self._action(f, "&Save session…", self.save_session, QKeySequence.StandardKey.Save)
        f.addSeparator()
        self._action(f, "Load trajectories…", self.system_panel.load_file)
        self._action(f, "Load observations…", self.grid_editor.load_observations)
        self._action(f, "Save observations…", self.grid_editor.save_observations)
        self._action(f, "Choose score model…", self.assimilation_panel.browse_model)
        f.addSeparator()
        self._action(f, "Export view as PNG…", self.export_view_png, "Ctrl+E")
        self._action(f, "Export animation (GIF/MP4)…", self.export_animation)
        f.addSeparator()
        self._action(f, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        r = mb.addMenu("&Run")
        self._action(r, "Simulate truth", self.system_panel.simulate)
        self.assimilate_action = self._action(r, "&Assimilate", self.assimilate, "Ctrl+Return",
                                              "Draw posterior samples given the observations")
        self.cancel_action = self._action(r, "Cancel", self.cancel, "Escape")
        self._action(r, "Train model", lambda: (self.tabs.setCurrentWidget(self.training_panel),
                                                self.training_panel.train()))
        v = mb.addMenu("&View")
        self._action(v, "Observations", lambda: self.tabs.setCurrentWidget(self.grid_editor), "Ctrl+1")
        self._action(v, "Results", lambda: self.tabs.setCurrentWidget(self.results_view), "Ctrl+2")
        self._action(v, "Training", lambda: self.tabs.setCurrentWidget(self.training_panel), "Ctrl+3")
        v.addSeparator()
        self._action(v, "Play / pause (Space in the results)", self.results_view.controller.toggle)
        # Space only where the animation is: elsewhere it must keep pressing buttons
        play = QShortcut(QKeySequence("Space"), self.results_view)
        play.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        play.activated.connect(self.results_view.controller.toggle)
        h = mb.addMenu("&Help")
        self._action(h, "About SDA Studio", self.about)
        tb = self.addToolBar("Main")
        tb.setObjectName("main-toolbar")
        tb.setMovable(False)
        tb.addAction(self.assimilate_action)
        tb.addAction(self.cancel_action)
        tb.addSeparator()
        tb.addAction(self.open_action)
        tb.addAction(self.save_action)
        self._update_actions(False)

    def _update_actions(self, running: bool):
        self.assimilate_action.setEnabled(not running)
        self.cancel_action.setEnabled(running)

    # messages ---------------------------------------------------------------------------
    def show_error(self, text: str):
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
        if self.state.model is None:
            self.show_message(f"No model for {self.state.system.title} yet: train one in the Training tab "
                              "or choose a checkpoint.")
        else:
            self.show_message(f"{self.state.system.title} ready.")

    # run --------------------------------------------------------------------------------
    def assimilate(self) -> bool:
        return self.assimilation_panel.assimilate()

    def cancel(self):
        self.assimilation_panel.cancel()
        self.system_panel.cancel()
        self.training_panel.cancel()

    def _run_starting(self, blank):
        self.results_view.pause()
        self.tabs.setCurrentWidget(self.results_view)
        self.assimilation_panel.preview_prepare = self.results_view.prepare_for_run(blank)

    def _run_started(self):
        self.show_message("assimilating…")

    def _run_ended(self, how: str):
        if how == "finished":
            self.results_view.set_frame(0)
            self.results_view.play()

    def _model_saved(self, path: str):
        self.assimilation_panel.add_model_path(path, select=True)
        self.show_message(f"model saved to {path} and selected for assimilation")

    # files ------------------------------------------------------------------------------
    def _ask(self, save: bool, title: str, filt: str, default_name: str = "") -> Optional[str]:
        folder = str(self.settings.value("last_folder", ""))
        if save:
            path, _ = QFileDialog.getSaveFileName(self, title, str(Path(folder) / default_name), filt)
        else:
            path, _ = QFileDialog.getOpenFileName(self, title, folder, filt)
        if path:
            self.settings.setValue("last_folder", str(Path(path).parent))
        return path or None

    def session_data(self) -> SessionData:
        st = self.state
        data = SessionData(system=st.system.config(), truth=st.truth, mask=st.mask.copy(),
                           obs_values=st.obs_values, obs_std=st.obs_std, obs_seed=st.obs_seed,
                           model_path=st.model_path or "", source=st.dataset_source,
                           settings={"assimilation": self.assimilation_panel.sampler_settings(),
                                     "system_seed": self.system_panel.seed_spin.value()},
                           dataset=st.dataset, operator=st.operator)
        if st.results is not None:
            r = st.results
            data.samples = r.samples
            data.result_mask = r.observation.mask
            data.result_values = r.observation.values
            data.result_std = r.observation.std
            data.result_truth = r.truth
            data.result_settings = r.settings
            data.result_operator = r.observation.operator
        return data

    def save_session(self, path: Optional[str] = None) -> bool:
        path = path or self._ask(True, "Save session", SESSION_FILTER, "session.h5")
        if not path:
            return False
        try:
            save_session(path, self.session_data())
        except (OSError, ValueError, TypeError) as exc:
            self.show_error(f"cannot save the session: {exc}")
            return False
        self.show_message(f"session saved to {path}")
        return True

    def open_session(self, path: Optional[str] = None) -> bool:
        """Replaces the current work by a saved session; on a bad file shows why and keeps all."""
        path = path or self._ask(False, "Open session", SESSION_FILTER)
        if not path:
            return False
        try:
            data = load_session(path)
            self.state.ensure_engine()
            from sda_gui.core.systems import make_system

            system = make_system(data.system["name"], **data.system.get("params", {}))
            if data.truth is not None and tuple(data.truth.shape[1:]) != tuple(system.state_shape):
                raise ValueError(f"{Path(path).name}: truth states {data.truth.shape[1:]} do not fit "
                                 f"{system.title} {tuple(system.state_shape)}")
            grid = (data.mask.shape[0], *observed_shape(system.state_shape, data.operator))
            if data.mask.shape != grid:
                raise ValueError(f"{Path(path).name}: pattern {data.mask.shape} does not fit the observed grid {grid}")
        except (OSError, ValueError) as exc:
            self.show_error(str(exc))
            return False
        st = self.state
        blank = np.zeros((data.mask.shape[0], *system.state_shape), np.float32)
        st.set_truth(data.truth if data.truth is not None else blank,
                     system=system, dataset=data.dataset, source=data.source)
        st.restore_observations(data.mask, data.obs_values, data.obs_std, data.obs_seed, operator=data.operator)
        self.grid_editor.rebuild()
        self.assimilation_panel.apply_settings(data.settings.get("assimilation", {}))
        if data.model_path and Path(data.model_path).exists() and data.model_path != st.model_path:
            self.assimilation_panel.add_model_path(data.model_path, select=True)
        if data.samples is not None:
            from sda_gui.core.observation import Observation

            obs = Observation(mask=data.result_mask, values=data.result_values,
                              std=data.result_std if data.result_std is not None else data.obs_std,
                              operator=data.result_operator)
            st.set_results(Results(samples=data.samples, observation=obs, truth=data.result_truth,
                                   settings=data.result_settings))
            self.tabs.setCurrentWidget(self.results_view)
        else:
            st.set_results(None)
        self.show_message(f"opened session {Path(path).name}")
        return True

    def export_view_png(self, path: Optional[str] = None) -> bool:
        """Saves the current central view (grid, results or training curves) as a PNG."""
        path = path or self._ask(True, "Export view as PNG", "PNG images (*.png)", "view.png")
        if not path:
            return False
        widget = self.tabs.currentWidget()
        if widget is self.results_view:
            widget = self.results_view
        try:
            export_png(widget, path)
        except OSError as exc:
            self.show_error(str(exc))
            return False
        self.show_message(f"exported {path}")
        return True

    def export_animation(self, path: Optional[str] = None, fps: Optional[float] = None, max_frames: int = 400) -> bool:
        if self.results_view.shown is None:
            self.show_error("nothing to animate yet: assimilate first")
            return False
        if path is None:
            filt = "GIF animations (*.gif)" + (";;MP4 videos (*.mp4)" if mp4_available() else "")
            path = self._ask(True, "Export animation", filt, "animation.gif")
            if not path:
                return False
        view = self.results_view
        view.pause()
        self.tabs.setCurrentWidget(view)
        start = view.frame
        try:
            n = export_animation(view.plot_widget(), view.set_frame, view.controller.n_frames, path,
                                 fps=fps or view.controller.fps,
                                 progress=lambda i, n: self.show_message(f"exporting frame {i}/{n}…"),
                                 max_frames=max_frames)
        except (OSError, ValueError, RuntimeError) as exc:
            self.show_error(f"cannot export the animation: {exc}")
            return False
        finally:
            view.set_frame(start)
        self.show_message(f"exported {n} frames to {path}")
        return True

    # settings ---------------------------------------------------------------------------
    def _restore_settings(self):
        s = self.settings
        geom = s.value("window/geometry")
        if isinstance(geom, (QByteArray, bytes)):
            self.restoreGeometry(geom)
        saved = {}
        for key, kind in (("guidance", str), ("steps", int), ("corrections", int), ("tau", float), ("gamma", float),
                          ("n_samples", int), ("device", str), ("seed", int)):
            if s.contains(f"assimilation/{key}"):
                saved[key] = read_value(s, f"assimilation/{key}", kind(), kind)
        self.assimilation_panel.apply_settings(saved)
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

    def shutdown(self, timeout_s: float = 30.0):
        """Stops every worker and waits for its thread: nothing outlives the window."""
        self.results_view.pause()
        for runner in (self.assimilation_panel.runner, self.system_panel.runner, self.training_panel.runner):
            runner.shutdown(timeout_s)

    def closeEvent(self, event):
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)

    # screenshot -------------------------------------------------------------------------
    def wait_for(self, predicate, timeout_s: float = 120.0) -> bool:
        """Spins the event loop until ``predicate()`` or the timeout (used by scripts, not the UI)."""
        deadline = time.monotonic() + timeout_s
        loop = QEventLoop()
        while not predicate():
            if time.monotonic() > deadline:
                return False
            QTimer.singleShot(20, loop.quit)
            loop.exec()
        return True

    def ensure_model(self, steps: int = 400) -> bool:
        """Trains a quick model when none is shipped (screenshot mode on a fresh checkout)."""
        self.state.ensure_engine()
        if self.state.model is not None:
            return True
        import tempfile

        tp = self.training_panel
        tp.steps_spin.setValue(steps)
        tp.n_traj_spin.setValue(64)
        tp.traj_len_spin.setValue(64)
        if not tp.train() or not self.wait_for(lambda: not tp.runner.running, 600):
            return False
        path = Path(tempfile.mkdtemp(prefix="sda-studio-")) / f"{self.state.system.name}-quick.pt"
        return tp.save_model(str(path)) is not None

    def screenshot(self, path: str, samples: int = 8, steps: int = 32, corrections: int = 1,
                   timeout_s: float = 600.0) -> bool:
        """Runs a short assimilation of the current scenario and saves the window with its results."""
        if not self.ensure_model():
            self.show_error("no model available for the screenshot")
        else:
            self.assimilation_panel.samples_spin.setValue(samples)
            self.assimilation_panel.steps_spin.setValue(steps)
            self.assimilation_panel.corrections_spin.setValue(corrections)
            if self.assimilate():
                self.wait_for(lambda: not self.assimilation_panel.runner.running, timeout_s)
        self.results_view.pause()
        self.tabs.setCurrentWidget(self.results_view)
        if self.results_view.shown is not None:
            self.results_view.set_frame(self.results_view.controller.n_frames // 2)
        QApplication.processEvents()
        return self.grab().save(str(path))


def _scroll(widget: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area
