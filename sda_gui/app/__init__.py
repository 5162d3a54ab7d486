"""The Qt desktop application of SDA Studio (PySide6 + pyqtgraph).

It only *calls* ``sda_gui.core``; all science lives there. Modules:

- ``engine``: torch and ``sda_gui.core``, loaded on a background thread once the window
  shows (the app imports neither at module load);
- ``scenario``: the default scenario as the core simulated it, so the window shows it
  before the engine has loaded;
- ``state``: the application's data model (system, truth, pattern, observations,
  model, samples) with change signals;
- ``mask_editor``: the observation pattern and its undo/redo history (numpy only);
- ``operators``: the editor's side of observation operators (coarse grids, conversions);
- ``workers``: background jobs on a QThread that talk to the UI through signals;
- ``system_panel``, ``grid_editor``, ``assimilation_panel``, ``training_panel``,
  ``results_view`` (+ ``result_plots``, ``plotting``), ``animation``: the views;
- ``session``, ``export``, ``settings``: files;
- ``window``: the main window; ``main_window``: the light ``run()`` entry point (splash,
  ``--screenshot``, start-up trace); ``bench``: GUI benchmarks (frame rate, event loop,
  start-up).
"""
