"""Entry point of the desktop app: ``run()`` (the ``sda-studio`` script and ``python main.py``).

Kept free of heavy imports: a splash screen is up within a fraction of a second while
torch and the window's modules load. ``MainWindow`` is importable from here too.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

__all__ = ["MainWindow", "run", "DEFAULT_SCENARIO"]


def __getattr__(name):
    # ``from sda_gui.app.main_window import MainWindow`` without importing torch at module load
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


def run(argv: Optional[list] = None) -> int:
    """``sda-studio`` / ``python main.py``: the desktop app, or ``--screenshot FILE.png``."""
    parser = argparse.ArgumentParser(prog="sda-studio", description="SDA Studio: score-based data assimilation")
    parser.add_argument("--screenshot", metavar="FILE.png",
                        help="run a short assimilation of the default scenario, save the window to FILE.png, exit")
    parser.add_argument("--settings", metavar="FILE.ini", help="settings file (default: the user's)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.screenshot and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("SDA Studio")
    app.setOrganizationName("SDA Studio")
    splash = None if args.screenshot else _splash(app)
    from .window import MainWindow

    if args.screenshot:
        window = MainWindow(settings_path=args.settings)
        window.resize(1280, 800)
        window.show()
        ok = window.screenshot(args.screenshot)
        window.shutdown()
        print(f"screenshot written to {args.screenshot}" if ok else "could not write the screenshot")
        return 0 if ok else 1
    # the window shows first; the default scenario (a short simulation) fills it a moment later
    window = MainWindow(settings_path=args.settings, load_default=False)
    window.show()
    splash.finish(window)
    QTimer.singleShot(0, window.load_default_scenario)
    return app.exec()


if __name__ == "__main__":
    sys.exit(run())
