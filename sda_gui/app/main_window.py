"""Entry point of the desktop app: ``run()`` (the ``sda-studio`` script and ``python main.py``).

Kept free of heavy imports: a splash screen is up within a fraction of a second while
Qt, pyqtgraph and the window's modules load; the window then shows the default scenario
and torch (with the shipped model) loads on a background thread (``engine``).
``MainWindow`` is importable from here too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

__all__ = ["MainWindow", "run", "DEFAULT_SCENARIO", "TRACE_ENV"]

#: set to the launcher's ``time.time()`` to make ``run()`` print when each start-up stage is
#: done (``startup <stage> <seconds since launch>``) and quit; ``bench_startup`` uses it
TRACE_ENV = "SDA_STUDIO_STARTUP_TRACE"
#: the stages, in order: the window painted, the default scenario painted, the model loaded
TRACE_STAGES = ("window_shown", "scenario_ready", "model_ready")


def __getattr__(name):
    # ``from sda_gui.app.main_window import MainWindow`` without importing Qt widgets at module load
    if name in ("MainWindow", "DEFAULT_SCENARIO"):
        from . import window

        return getattr(window, name)
    raise AttributeError(name)


def _splash(app):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
    from PySide6.QtWidgets import QSplashScreen

    pix = QPixmap(460, 150)
    pix.fill(QColor(250, 250, 252))
    p = QPainter(pix)
    p.setPen(QColor(30, 30, 30))
    f = QFont()
    f.setPointSize(20)
    f.setBold(True)
    p.setFont(f)
    p.drawText(pix.rect().adjusted(0, 20, 0, -60), Qt.AlignmentFlag.AlignCenter, "SDA Studio")
    f.setPointSize(10)
    f.setBold(False)
    p.setFont(f)
    p.drawText(pix.rect().adjusted(0, 70, 0, -10), Qt.AlignmentFlag.AlignCenter,
               "score-based data assimilation · loading…")
    p.end()
    splash = QSplashScreen(pix)
    splash.show()
    app.processEvents()
    return splash


class _Trace:
    """Start-up timestamps for ``bench_startup``: each stage once, after its first paint."""

    def __init__(self, t0: float):
        self.t0 = t0
        self.seen: dict = {}
        self.window = None

    def mark(self, stage: str):
        if stage in self.seen:
            return
        self.seen[stage] = time.time() - self.t0
        print(f"startup {stage} {self.seen[stage]:.3f}", flush=True)
        if self.window is not None and all(s in self.seen for s in TRACE_STAGES):
            from PySide6.QtCore import QTimer

            QTimer.singleShot(0, self.window.close)

    def after_paint(self, widget, stage: str):
        from .window import on_next_paint

        on_next_paint(widget, lambda: self.mark(stage))


def run(argv: Optional[list] = None) -> int:
    """``sda-studio`` / ``python main.py``: the desktop app, or ``--screenshot FILE.png``."""
    parser = argparse.ArgumentParser(prog="sda-studio", description="SDA Studio: score-based data assimilation")
    parser.add_argument("--screenshot", metavar="FILE.png",
                        help="run a short assimilation of the default scenario, save the window to FILE.png, exit")
    parser.add_argument("--settings", metavar="FILE.ini", help="settings file (default: the user's)")
    parser.add_argument("--lesson", metavar="ID", help="open a lesson (its id, number or a .toml file; "
                                                        "python -m sda_gui lessons lists them)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    lesson = None
    if args.lesson:
        from sda_gui.lessons import LessonError, find_lesson, load_lesson

        try:
            lesson = load_lesson(args.lesson) if args.lesson.endswith(".toml") else find_lesson(args.lesson)
        except (LessonError, OSError, KeyError, ValueError) as exc:
            print(f"error: {str(exc).splitlines()[0] if str(exc) else exc!r}", file=sys.stderr)
            return 2
    if args.screenshot and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("SDA Studio")
    app.setOrganizationName("SDA Studio")
    trace = _Trace(float(os.environ[TRACE_ENV])) if os.environ.get(TRACE_ENV) and not args.screenshot else None
    if trace is not None:
        trace.mark("qt")
    # offscreen nobody sees a splash, and Qt waits up to a second for it to be exposed
    splash = None if args.screenshot or app.platformName() == "offscreen" else _splash(app)
    from .window import MainWindow

    if args.screenshot:
        window = MainWindow(settings_path=args.settings)
        window.resize(1280, 800)
        window.show()
        if lesson is not None:
            ok = window.lesson_screenshot(args.screenshot, lesson)
        else:
            ok = window.screenshot(args.screenshot)
        window.shutdown()
        print(f"screenshot written to {args.screenshot}" if ok else "could not write the screenshot")
        return 0 if ok else 1
    # the window shows first, with the default scenario; torch and the model load afterwards
    window = MainWindow(settings_path=args.settings, load_default=False, wait_engine=False)
    if trace is not None:
        trace.mark("window_built")
        trace.window = window
        trace.after_paint(window, "window_shown")
        window.state.modelChanged.connect(lambda: window.state.model is not None and trace.mark("model_ready"))
        window.state.engineReady.connect(lambda: trace.mark("engine_ready"))
    window.show()
    if splash is not None:
        splash.finish(window)

    def load():
        window.load_default_scenario()
        if lesson is not None:
            window.state.ensure_engine()
            window.open_lesson(lesson)
        if trace is not None:
            trace.after_paint(window.grid_editor.plot_widget.viewport(), "scenario_ready")
        window.start_engine_after_paint()

    QTimer.singleShot(0, load)
    return app.exec()


if __name__ == "__main__":
    sys.exit(run())
