"""What scripts do with the main window: wait on the event loop, make sure a model exists,
``--screenshot`` (a short assimilation of the current scenario, then a picture) and
``--lesson ID --screenshot`` (the lesson's scenario and its first step, then a picture).

None of it is reached from the UI; ``main_window.run`` and the benchmarks call it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

__all__ = ["ScriptedRuns"]


class ScriptedRuns:
    """Mixed into ``MainWindow``."""

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

    def lesson_screenshot(self, path: str, lesson, timeout_s: float = 900.0) -> bool:
        """Opens ``lesson``, runs what its first step needs, and saves the window with the lesson dock."""
        self.state.ensure_engine()
        self.open_lesson(lesson)
        runner, dock = self.lesson_runner, self.lesson_dock
        self.wait_for(lambda: not runner.waiting_truth and not self.system_panel.runner.running, timeout_s)
        busy = lambda: any(r.running for r in (self.assimilation_panel.runner, self.compare_panel.runner,
                                               runner.record_runner))
        if dock.n_pages > 1:
            dock.next()
            dock.do_it()
            self.wait_for(lambda: not busy(), timeout_s)
        if self.results_view.shown is not None:
            self.results_view.pause()
            self.results_view.set_frame(self.results_view.controller.n_frames // 2)
        dock.refresh_check()
        QApplication.processEvents()
        return self.grab().save(str(path))

