"""The Qt desktop application of SDA Studio (PySide6 + pyqtgraph).

It only *calls* ``sda_gui.core``; all science lives there (``docs/architecture.md`` is the
map). Modules, by what they hold:

- start-up: ``main_window`` (the light ``run()`` entry point: splash, ``--screenshot``,
  start-up trace), ``engine`` (torch and the core, loaded on a background thread once the
  window shows), ``scenario`` (the default scenario, ready before the engine);
- the data model: ``state`` (system, truth, pattern, model, results, with change
  signals) with ``observation_state`` (σ, seed, values), ``mask_editor`` (the pattern and
  its undo history, numpy only), ``operators`` (the editor's side of observation operators);
- background work: ``workers`` (``JobRunner``: one job on a QThread, cancel, shutdown),
  ``assimilation_job`` and ``training_job`` (what runs on the worker), ``run_memory``
  (memory checked before a run), ``result_metrics`` (scores and blow-up warnings,
  computed on the worker);
- panels, standing side by side (shared helpers in ``common``): ``system_panel`` (+
  ``system_form``), ``assimilation_panel`` (+ ``assimilation_settings``,
  ``sampler_config``, ``model_picker``), ``training_panel`` (+ ``loss_plot``),
  ``compare_panel`` (SDA beside the classical methods);
- views: ``grid_editor`` (+ ``editor/``: the painted grid, tools, observation box,
  operator choice, hover), ``results_view`` (+ ``plots/``: ring, low-dim and field plots
  and the numbers they draw), ``compare_plots``, ``animation``, ``plotting``;
- the window: ``window`` wires the panels and views, ``menus`` its menus and toolbar,
  ``file_actions`` and ``session_actions`` its file dialogs, ``scripted`` what scripts do
  with it;
- files: ``session`` (+ ``session_checks``: every check before a session is used),
  ``export`` (PNG, SVG, GIF/MP4), ``settings`` (preferences);
- ``bench``: GUI benchmarks (frame rate, event loop, start-up).
"""
