"""The main window's menus, toolbar and shortcuts.

Every menu entry that replaces the user's work goes through the window's asking entry
points (``new_scenario``, ``open_session(ask=True)``, ``simulate(ask=True)``,
``train(ask=True)``, ``load_file(ask=True)``), so a click never loses unsaved results,
a drawn pattern, loaded observations or a trained model without a question.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut

__all__ = ["build_menus"]


def _action(window, menu, text, slot, shortcut=None, tip=None) -> QAction:
    a = QAction(text, window)
    if shortcut:
        a.setShortcut(QKeySequence(shortcut))
    if tip:
        a.setStatusTip(tip)
        a.setToolTip(tip)
    a.triggered.connect(lambda _=False: slot())
    menu.addAction(a)
    return a


def build_menus(w) -> None:
    """File, Run, View and Help menus and the toolbar of main window ``w``."""
    mb = w.menuBar()
    f = mb.addMenu("&File")
    w.new_action = _action(w, f, "New default scenario", w.new_scenario,
                           tip="Lorenz-96 with a sparse random pattern and the shipped model")
    w.open_action = _action(w, f, "&Open session…", lambda: w.open_session(ask=True), QKeySequence.StandardKey.Open)
    w.save_action = _action(w, f, "&Save session…", w.save_session, QKeySequence.StandardKey.Save)
    f.addSeparator()
    _action(w, f, "Import trajectories…", lambda: w.system_panel.load_file(ask=True),
            tip="Trajectories from .h5, .nc, .npz or .npy: a file naming no system becomes a data system")
    _action(w, f, "Load system file…", lambda: w.system_panel.load_system_file(),
            tip="A Python file defining your own DynamicalSystem (see examples/lorenz84.py)")
    _action(w, f, "Load observations…", w.grid_editor.load_observations)
    _action(w, f, "Save observations…", w.save_observations)
    _action(w, f, "Choose score model…", w.assimilation_panel.browse_model)
    _action(w, f, "Open lesson…", lambda: w.browse_lessons(from_file=True),
            tip="Open a lesson written as a TOML file")
    f.addSeparator()
    _action(w, f, "Export view as PNG…", w.export_view_png, "Ctrl+E")
    _action(w, f, "Export view as SVG…", w.export_view_svg, tip="Vector graphics of the current view, for papers")
    _action(w, f, "Export animation (GIF/MP4)…", w.export_animation)
    e = f.addMenu("Export data")
    w.export_truth_action = _action(w, e, "Truth…", w.export_truth,
                                    tip="The truth trajectory as netCDF (.nc), HDF5 or npz, with its coordinates")
    w.export_samples_action = _action(w, e, "Posterior samples…", w.export_samples,
                                      tip="The posterior samples as netCDF (a 'sample' dimension), HDF5 or npz")
    f.addSeparator()
    _action(w, f, "&Quit", w.close, QKeySequence.StandardKey.Quit)
    r = mb.addMenu("&Run")
    _action(w, r, "Simulate truth", lambda: w.system_panel.simulate(ask=True))
    w.assimilate_action = _action(w, r, "&Assimilate", w.assimilate, "Ctrl+Return",
                                  "Draw posterior samples given the observations")
    w.cancel_action = _action(w, r, "Cancel", w.cancel, "Escape")
    _action(w, r, "Compare methods", lambda: (w.tabs.setCurrentWidget(w.compare_panel), w.compare_panel.run()),
            "Ctrl+Shift+Return", "Run SDA and the classical methods side by side on these observations")
    _action(w, r, "Train model", lambda: (w.tabs.setCurrentWidget(w.training_panel), w.training_panel.train(ask=True)))
    v = mb.addMenu("&View")
    _action(w, v, "Observations", lambda: w.tabs.setCurrentWidget(w.grid_editor), "Ctrl+1")
    _action(w, v, "Results", lambda: w.tabs.setCurrentWidget(w.results_view), "Ctrl+2")
    _action(w, v, "Compare", lambda: w.tabs.setCurrentWidget(w.compare_panel), "Ctrl+3")
    _action(w, v, "Training", lambda: w.tabs.setCurrentWidget(w.training_panel), "Ctrl+4")
    v.addSeparator()
    w.presenter_action = _action(w, v, "Presenter mode", lambda: w.set_presenter_mode(w.presenter_action.isChecked()),
                                 "F11", "Full screen with large fonts and thick lines, for a projector")
    w.presenter_action.setCheckable(True)
    _action(w, v, "Play / pause (Space in the results)", w.results_view.controller.toggle)
    # Space only where the animation is: elsewhere it must keep pressing buttons
    play = QShortcut(QKeySequence("Space"), w.results_view)
    play.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    play.activated.connect(w.results_view.controller.toggle)
    h = mb.addMenu("&Help")
    _action(w, h, "Lessons…", lambda: w.browse_lessons(), tip="Short lessons on data assimilation and SDA")
    _action(w, h, "About SDA Studio", w.about)
    tb = w.addToolBar("Main")
    tb.setObjectName("main-toolbar")
    tb.setMovable(False)
    tb.addAction(w.assimilate_action)
    tb.addAction(w.cancel_action)
    tb.addSeparator()
    tb.addAction(w.open_action)
    tb.addAction(w.save_action)
