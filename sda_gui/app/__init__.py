"""The Qt desktop application of SDA Studio (PySide6 + pyqtgraph).

It only *calls* ``sda_gui.core``; all science lives there. Modules:

- ``state``: the application's data model (system, truth, pattern, observations,
  model, samples) with change signals;
- ``mask_editor``: the observation pattern and its undo/redo history (numpy only);
- ``operators``: the editor's side of observation operators (coarse grids, conversions);
- ``workers``: background jobs on a QThread that talk to the UI through signals;
- ``system_panel``, ``grid_editor``, ``assimilation_panel``, ``training_panel``,
  ``results_view`` (+ ``result_plots``, ``plotting``), ``animation``: the views;
- ``session``, ``export``, ``settings``: files;
- ``window``: the main window; ``main_window``: the light ``run()`` entry point (splash,
  ``--screenshot``); ``bench``: GUI benchmarks.
"""
