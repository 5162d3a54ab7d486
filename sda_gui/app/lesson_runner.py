"""What a lesson's scenario and step actions do to the main window (the lesson dock's host).

``LessonRunner(window)`` implements the small interface the lesson dock drives
(``LessonHost``): ``apply_scenario(scenario)``, ``perform(action)``,
``last_metrics()``, ``last_comparison_rows()``. It only calls the public methods of
the window and its panels, in the order a user would click:

1. the system, its parameters, length and seed in the *System* panel, then
   *Simulate truth* (on the panel's worker; the rest waits for the truth);
2. the operator and the pattern (``lessons.rules.pattern_mask`` on the observed
   grid) on the state's editor, then *Generate from truth* with σ_y and the seed;
3. the model (the shipped file, or one beside the lesson; a step may change it, and a
   model that cannot be used stops that step before it runs), the sampler settings
   (run seed 0, as ``lessons.headless`` measures the checks) and the comparison's
   methods and ensemble size;
4. the view to show. Actions queued while the truth is simulated run once it is in.

A step's ``run = "assimilate"`` presses *Assimilate*; ``"compare"`` presses
*Compare* (the window's Compare panel, or one the runner adds as a tab while the
window has none). The ``scrubber`` view shows the recorded reverse diffusion of the
last result when the run recorded one; otherwise the runner records it itself —
``record`` samples of the same problem, on its own worker — so lesson 2 works
whether or not the assimilation job passes ``record`` through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol

from PySide6.QtCore import QObject, Signal

from sda_gui.lessons import Lesson
from sda_gui.lessons.rules import pattern_mask

from .assimilation_job import SAMPLER_KEYS as RUN_SAMPLER_KEYS
from .workers import JobRunner

__all__ = ["LessonHost", "LessonRunner", "SAMPLER_KEYS"]

#: lesson settings → the Assimilate panel's names
SAMPLER_KEYS = {"steps": "steps", "corrections": "corrections", "samples": "n_samples", "guidance": "guidance",
                "tau": "tau", "gamma": "gamma"}
#: the run seed of every lesson (the checks were measured with it)
RUN_SEED = 0


class LessonHost(Protocol):
    """What the lesson dock needs of the app."""

    def apply_scenario(self, scenario) -> None: ...
    def perform(self, action: dict) -> None: ...
    def last_metrics(self) -> Optional[dict]: ...
    def last_comparison_rows(self) -> list: ...


class LessonRunner(QObject):
    """Drives a ``MainWindow`` for a lesson; ``changed`` fires when a result or comparison arrives."""

    changed = Signal()
    ready = Signal()           # the scenario is in place (truth, pattern, values, model, settings)
    message = Signal(str)

    def __init__(self, window, parent=None):
        super().__init__(parent or window)
        self.window = window
        self.lesson: Optional[Lesson] = None
        self.scenario = None
        self.pending: list = []
        self.waiting_truth = False
        self.record_runner = JobRunner(self)
        self.record_runner.finished.connect(self._recorded)
        self.record_runner.failed.connect(lambda text: self.message.emit(f"recording failed: {text}"))
        self._recorded_for = None
        window.state.resultsChanged.connect(self.changed.emit)
        window.state.truthChanged.connect(self._truth_changed)
        self._compare = None

    # views the window may not have yet ---------------------------------------------------
    @property
    def compare_panel(self):
        panel = getattr(self.window, "compare_panel", None)
        if panel is None and self._compare is None:
            from .compare_panel import ComparePanel

            self._compare = ComparePanel(self.window.state, self.window.assimilation_panel.sampler_settings)
            self._compare.comparisonChanged.connect(self.changed.emit)
            self.window.tabs.addTab(self._compare, "Compare")
        return panel if panel is not None else self._compare

    @property
    def scrubber(self):
        widget = getattr(self.window, "scrubber", None)
        if widget is None:
            from .scrubber import ScrubberWidget

            widget = self.window.scrubber = ScrubberWidget()
            self.window.tabs.addTab(widget, "Diffusion")
        return widget

    # LessonHost -------------------------------------------------------------------------
    def open_lesson(self, lesson: Lesson) -> None:
        self.lesson = lesson
        self.apply_scenario(lesson.scenario)

    def apply_scenario(self, scenario) -> None:
        w = self.window
        self.scenario = scenario
        self.pending = []
        w.state.ensure_engine()
        sp = w.system_panel
        sp.set_system_name(scenario.system)
        for key, value in scenario.params.items():
            sp.set_param(key, value)
        sp.length_spin.setValue(scenario.length)
        sp.seed_spin.setValue(scenario.seed)
        self.waiting_truth = sp.simulate(ask=False)
        if not self.waiting_truth:
            self.message.emit("could not simulate the lesson's truth (see the System tab)")
        self.message.emit(f"lesson: simulating {scenario.length} states of {scenario.system}…")

    def _truth_changed(self):
        if not self.waiting_truth:
            return
        self.waiting_truth = False
        self._finish_scenario()

    def _finish_scenario(self):
        w, sc = self.window, self.scenario
        self._apply_pattern(sc.pattern)
        if sc.model_path is not None:
            self.use_model(sc.model_path)
        self._apply_settings(sc.sampler)
        w.assimilation_panel.apply_settings({"seed": RUN_SEED})
        if sc.methods or "compare" in sc.views:
            self._apply_settings({"methods": list(sc.methods), "members": sc.members})
        self.show_view(sc.views[0] if sc.views else "editor")
        self.ready.emit()
        pending, self.pending = self.pending, []
        for action in pending:
            self.perform(action)

    def _apply_pattern(self, rule: dict):
        state = self.window.state
        spec = rule.get("operator")
        state.set_operator(None if spec in (None, "identity") else spec)
        mask = pattern_mask(rule, state.length, state.observed_grid)
        state.editor.reset(mask, space=state.operator)
        self.window.grid_editor.generate_observations(seed=self.scenario.obs_seed, std=self.scenario.obs_std)

    def _apply_settings(self, values: dict):
        sampler = {SAMPLER_KEYS[k]: v for k, v in values.items() if k in SAMPLER_KEYS}
        if sampler:
            self.window.assimilation_panel.apply_settings(sampler, strict=True)
        if "methods" in values or "members" in values:
            panel = self.compare_panel
            if values.get("methods"):
                panel.set_methods(values["methods"])
            if "members" in values:
                panel.members_spin.setValue(int(values["members"]))

    def perform(self, action: dict) -> None:
        """Performs a step's action: model, set, pattern, view, run (in that order)."""
        if self.waiting_truth:
            self.pending.append(action)
            return
        w = self.window
        if "model" in action and not self.use_model(action["model"]):
            # running with the previous model would measure the wrong thing: stop here
            name = Path(str(action["model"])).name
            self.message.emit(f"lesson: could not use the model {name}; the step was not run")
            return
        if "set" in action:
            self._apply_settings(action["set"])
        if "pattern" in action:
            self._apply_pattern(action["pattern"])
        if action.get("run") == "assimilate":
            w.assimilate()
        elif action.get("run") == "compare":
            self.compare_panel.run()
        if "view" in action:
            self.show_view(action["view"])

    def use_model(self, path) -> bool:
        """Loads the model file ``path`` (checked against the system); False when it cannot be used.

        A shipped model is already in the model list: it is selected there, not added a
        second time as a user's checkpoint.
        """
        panel, path = self.window.assimilation_panel, str(path)
        if panel.picker.model_combo.findData(path) >= 0:
            ok = panel.select_model(path)
        else:
            ok = panel.add_model_path(path, select=True)
        return bool(ok) and self.window.state.model_path == path

    def show_view(self, view: str) -> None:
        w = self.window
        if view == "editor":
            w.tabs.setCurrentWidget(w.grid_editor)
        elif view == "results":
            w.tabs.setCurrentWidget(w.results_view)
        elif view == "compare":
            w.tabs.setCurrentWidget(self.compare_panel)
        elif view == "scrubber":
            w.tabs.setCurrentWidget(self.scrubber)
            self.update_scrubber()

    def last_metrics(self) -> Optional[dict]:
        res = self.window.state.results
        return None if res is None or res.preview else res.metrics

    def last_comparison_rows(self) -> list:
        panel = getattr(self.window, "compare_panel", None) or self._compare
        comparison = getattr(panel, "comparison", None)
        return list(comparison.rows) if comparison is not None else []

    # the scrubber -----------------------------------------------------------------------
    def update_scrubber(self) -> None:
        """Shows the last result's recorded diffusion, recording one when the run kept none."""
        w = self.window
        res = w.state.results
        if res is None:
            # a run is on its way (or none yet): show it when it arrives
            if w.assimilation_panel.runner.running:
                w.state.resultsChanged.connect(self._after_run_for_scrubber)
            return
        trajectory = getattr(res, "trajectory", None) or (res.settings or {}).get("trajectory")
        if trajectory is not None:
            self.scrubber.set_trajectory(trajectory, res.truth)
            return
        if self._recorded_for is res:
            return
        self._record(res)

    def _after_run_for_scrubber(self):
        try:
            self.window.state.resultsChanged.disconnect(self._after_run_for_scrubber)
        except (RuntimeError, TypeError):
            pass
        if self.window.tabs.currentWidget() is self.scrubber:
            self.update_scrubber()

    def _record(self, res) -> bool:
        if self.record_runner.running:
            return False
        w = self.window
        state, model = w.state, w.state.model
        if model is None:
            return False
        s = dict(res.settings or {})
        n = max(1, int(getattr(self.scenario, "record", 0) or 2))
        # the recording repeats the run it explains: the same sampler settings
        settings = {k: s[k] for k in RUN_SAMPLER_KEYS if k in s}
        settings["refine_iterations"] = 0   # the recording is of the reverse diffusion, which it leaves as is
        settings["record"] = n
        system, obs, seed = state.system, res.observation, int(s.get("seed", RUN_SEED))
        device = s.get("device", "cpu") or "cpu"
        self._recorded_for = res
        self.scrubber.title.setText("Recording the reverse diffusion of two samples…")

        def job(report, should_stop):
            from sda_gui.core.assimilation import resolve_device
            from sda_gui.core.methods import run_method

            out = run_method("sda", system, obs, n, settings, model=model, device=resolve_device(device),
                             seed=seed, should_stop=should_stop)
            return out.diagnostics["trajectory"], res.truth

        self.record_runner.start(job, "record")
        return True

    def _recorded(self, payload):
        trajectory, truth = payload
        self.scrubber.set_trajectory(trajectory, truth)
        self.changed.emit()

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        self.record_runner.request_stop()
        return self.record_runner.shutdown(timeout_s)
