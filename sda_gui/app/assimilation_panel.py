"""Assimilation panel: the score model, the sampler settings, and the run on the worker.

The panel is three parts side by side: ``ModelPicker`` (which model), ``SamplerForm``
(the settings, with per-system defaults) and the run itself, here: Assimilate checks
the model and the observation, estimates the memory the run needs (``run_memory``) and
refuses one that cannot fit with the largest sample count that would, then starts the
job of ``assimilation_job`` on its own ``JobRunner``.

The sampler reports after every step with the current denoised estimate. The worker
forwards an estimate as a preview at most every ``PREVIEW_INTERVAL_S``, so a fast
sampler cannot flood the event loop, together with what the results view draws of it
(``preview_prepare``, computed on the worker): the UI thread only hands arrays over.
A cancel sets the job's flag, which the sampler checks before each network call. On
failure — out of memory included — one line appears here and nothing in the state
changes: the pattern, truth and earlier results stay.

While the engine loads (the window's first seconds) the panel says so and Assimilate
waits: a click then starts the run as soon as the shipped model is loaded.

*Auto-run* (``live_run.LiveRun``, small systems only) reruns after a change of the
sampler settings or of the pattern, cancelling a run still going first.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from . import engine
from .assimilation_job import dynamics_apply, make_job, preview_count, refine_apply
from .assimilation_settings import GUIDANCES, SamplerForm
from .common import format_eta, is_out_of_memory, memory_hint, one_line
from .live_run import LiveRun
from .model_picker import ModelPicker, _checkpoint
from .state import AppState, Results
from .workers import JobRunner

__all__ = ["AssimilationPanel", "GUIDANCES"]

PREVIEW_INTERVAL_S = 0.2


class AssimilationPanel(QWidget):
    """Settings and the Assimilate/Cancel buttons; results go to ``state.set_results``."""

    errorRaised = Signal(str)
    runStarting = Signal(object)  # Results with blank samples, emitted before the worker starts
    runStarted = Signal()
    runEnded = Signal(str)  # "finished" | "failed" | "cancelled"

    def __init__(self, state: AppState, runner: Optional[JobRunner] = None, settings=None, parent=None):
        super().__init__(parent)
        self.state = state
        self.runner = runner or JobRunner(self)
        self.settings = settings
        self._t0 = 0.0
        self._last_preview = 0.0
        self._run_settings: dict = {}
        self._run_obs = None
        self._run_truth = None
        self._queued = False   # Assimilate pressed while the engine loads
        #: set by whoever shows the run (``runStarting``): ``prepare(samples)`` computes on the
        #: worker thread what the results view draws of a preview or of the final samples
        self.preview_prepare = None
        self._pending_preview = None

        self.form = SamplerForm(state.system.name)
        self.picker = ModelPicker(state, self.show_error, lambda: self.form.device_combo.currentData(), settings)
        # the widgets by their names, for the window, scripts and tests
        for name in ("guidance_combo", "steps_spin", "corrections_spin", "final_spin", "dynamics_spin", "refine_spin",
                     "tau_spin", "gamma_spin", "samples_spin", "device_combo", "seed_spin", "preview_check"):
            setattr(self, name, getattr(self.form, name))
        self.model_combo, self.browse_button, self.model_info = (self.picker.model_combo, self.picker.browse_button,
                                                                 self.picker.model_info)
        self.assimilate_button = QPushButton("Assimilate")
        self.assimilate_button.setToolTip("Draw posterior samples given the observations (Ctrl+Return)")
        self.assimilate_button.setStyleSheet("font-weight: bold;")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.auto_check = QCheckBox("Auto-run on every change")
        self.progress = QProgressBar()
        self.progress.setFormat("ready")
        self.progress.setValue(0)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.setVisible(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.assimilate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picker)
        layout.addWidget(self.form)
        layout.addLayout(buttons)
        layout.addWidget(self.auto_check)
        layout.addWidget(self.progress)
        layout.addWidget(self.error)
        layout.addStretch(1)

        self.device_combo.currentIndexChanged.connect(lambda _: self._update_model_info())
        self.assimilate_button.clicked.connect(lambda: self.assimilate())
        self.cancel_button.clicked.connect(self.cancel)
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        state.systemChanged.connect(self.refresh_models)
        state.systemChanged.connect(self._apply_system_defaults)
        state.modelChanged.connect(self._update_model_info)
        state.engineReady.connect(self._engine_ready)
        if state.engine_loaded:
            self.refresh_models()
        else:
            self.model_combo.addItem("loading…", None)
            self._update_model_info()
        # last: its handlers of a new system run after the defaults above were applied
        self.live = LiveRun(self, self.auto_check)

    def _engine_ready(self):
        """The engine has loaded: the real device list, the shipped model, and a run asked for meanwhile."""
        self.form.fill_devices()
        self.refresh_models()
        if self._queued:
            self._queued = False
            self.assimilate()

    def _apply_system_defaults(self):
        """A new kind of system gets its own steps, C and samples (see ``SamplerForm.switch_system``)."""
        self.form.switch_system(self.state.system.name)
        self.form.set_dynamics_available(getattr(self.state.system, "has_dynamics", True))

    # models and settings (the parts' own methods, under the panel's names) ------------------
    def refresh_models(self):
        self.picker.refresh_models()

    def add_model_path(self, path: str, select: bool = True) -> bool:
        return self.picker.add_model_path(path, select)

    def select_model(self, path: Optional[str], quiet: bool = False) -> bool:
        return self.picker.select_model(path, quiet)

    def use_model(self, model, path: str):
        self.picker.use_model(model, path)

    def browse_model(self) -> bool:
        return self.picker.browse_model()

    @property
    def _extra_models(self) -> list:
        return self.picker.extra_models

    def _update_model_info(self):
        has_model = self.picker.update_info()
        self.assimilate_button.setEnabled(has_model and not self.runner.running)

    def set_guidance(self, key: str):
        self.form.set_guidance(key)

    def set_device(self, key: str):
        self.form.set_device(key)

    def sampler_settings(self) -> dict:
        return self.form.settings()

    def apply_settings(self, s: dict, strict: bool = False):
        self.form.apply(s, strict=strict)

    # run --------------------------------------------------------------------------------
    def show_error(self, text: str):
        self.error.setText(text)
        self.error.setVisible(bool(text))
        if text:
            self.errorRaised.emit(text)

    def assimilate(self) -> bool:
        """Starts the sampler on the worker thread; False (with a message) if it cannot start."""
        if self.runner.running:
            return False
        if not self.state.engine_loaded:
            if not engine.ENGINE.ready():
                # the first seconds: run once the shipped model has loaded rather than freeze the window
                self._queued = True
                self.progress.setFormat("starts when the model has loaded…")
                self.state.message.emit("the engine is still loading: the assimilation starts as soon as it is ready")
                return False
            self.state.ensure_engine()  # its engineReady loads the shipped model
        try:
            return self._start()
        except MemoryError:
            self.show_error(f"not enough memory to start this run: {memory_hint(self.form.settings()['device'])}")
            return False
        except Exception as exc:  # noqa: BLE001 - whatever goes wrong before the start is one line here
            if is_out_of_memory(exc):
                self.show_error(f"not enough memory to start this run: {memory_hint()}")
            else:
                self.show_error(one_line(exc))
            return False

    def _start(self) -> bool:
        model = self.state.model
        if model is None:
            self.show_error("no score model: train one in the Training tab or choose a checkpoint file")
            return False
        from sda_gui.core.assimilation import resolve_device

        from .run_memory import plan_run

        settings = self.sampler_settings()
        if not dynamics_apply(settings, self.state.system):
            settings["dynamics_std"] = 0.0        # greyed out in the form: not part of this run
        if not refine_apply(settings, self.state.system):
            settings["refine_iterations"] = 0     # likewise (a system without dynamics)
        try:
            _checkpoint().check_model_for_system(model, self.state.system)
            obs = self.state.observation()
            device = resolve_device(settings["device"])
        except (ValueError, RuntimeError) as exc:
            self.show_error(one_line(exc))
            return False
        if obs.length < model.window:
            self.show_error(f"the trajectory has {obs.length} states; this model needs at least 2k+1 = {model.window}")
            return False
        plan = plan_run(model, settings["n_samples"], obs.length, str(device))
        if not plan.fits:
            self.show_error(plan.message())
            return False
        self._run_settings = {**settings, "model": self.state.model_path or "", "obs_std": self.state.obs_std,
                              "obs_seed": self.state.obs_seed, "operator": obs.operator or "identity"}
        self._run_obs = obs
        self._run_truth = None if self.state.truth is None else self.state.truth.copy()
        self.show_error("")
        # samples live on the state grid even when the observations are coarse; as many blank
        # ones as previews will show, so that titles and controls do not change at the first one.
        # A broadcast NaN costs no memory, whatever the run's size.
        shown = preview_count(settings["n_samples"], obs.length, self.state.state_shape)
        blank = np.broadcast_to(np.float32(np.nan), (shown, obs.length, *self.state.state_shape))
        self.preview_prepare = None
        # the results view lays out its plots and hands back what computes their data (preview_prepare)
        self.runStarting.emit(Results(samples=blank, observation=obs, truth=self._run_truth,
                                      settings={"step": 0, "total": settings["steps"]}, preview=True))
        job = make_job(self.state.system, model, obs, self._run_truth, settings, device,
                       want_preview=self.preview_check.isChecked(), interval=PREVIEW_INTERVAL_S,
                       prepare=self.preview_prepare)
        self._t0 = time.perf_counter()
        self._last_preview = 0.0
        self.runner.start(job, "assimilate")
        self._busy(True)
        self.progress.setRange(0, settings["steps"])
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.runStarted.emit()
        return True

    def cancel(self):
        if self.runner.running:
            self.runner.cancel()
            self.progress.setFormat("cancelling…")

    def _busy(self, busy: bool):
        self.assimilate_button.setEnabled(not busy and self.state.model is not None)
        self.cancel_button.setEnabled(busy)
        self.picker.set_enabled(not busy)

    def _on_progress(self, payload):
        step, total, preview = payload
        elapsed = time.perf_counter() - self._t0
        eta = elapsed / max(step, 1) * (total - step)
        self.progress.setRange(0, int(total))
        self.progress.setValue(int(step))
        self.progress.setFormat(f"step {step} / {total} · {elapsed:.1f} s · ETA {format_eta(eta)}")
        now = time.perf_counter()
        # the worker spaces previews out; should the UI fall behind, stale ones are dropped here
        if preview is not None and (now - self._last_preview >= PREVIEW_INTERVAL_S / 2 or step == total):
            self._last_preview = now
            estimate, prepared = preview
            pending = self._pending_preview is not None
            self._pending_preview = Results(samples=estimate, observation=self._run_obs, truth=self._run_truth,
                                            settings={**self._run_settings, "step": step, "total": total},
                                            preview=True, prepared=prepared)
            if not pending:
                # on the next turn of the event loop: the progress bar and the preview are
                # then painted in two short steps, with input handled in between
                QTimer.singleShot(0, self, self._show_preview)

    def _show_preview(self):
        preview, self._pending_preview = self._pending_preview, None
        if preview is not None and self.runner.running:   # not after the run has ended
            self.state.set_preview(preview)

    def _on_finished(self, result):
        samples, metrics, prepared, diagnostics = result
        self._busy(False)
        elapsed = time.perf_counter() - self._t0
        self.progress.setValue(self.progress.maximum())
        self.progress.setFormat(f"done: {samples.shape[0]} samples in {elapsed:.1f} s")
        settings = {**self._run_settings, "seconds": elapsed, "method": "sda"}
        self.state.set_results(Results(samples=samples, observation=self._run_obs, truth=self._run_truth,
                                       settings=settings, metrics=metrics, prepared=prepared))
        self.state.message.emit(f"assimilation done: {samples.shape[0]} samples in {elapsed:.1f} s")
        self.runEnded.emit("finished")

    def _on_failed(self, text: str):
        self._busy(False)
        self.progress.setFormat("failed")
        self.state.set_preview(None)
        self.show_error(f"assimilation failed: {text}")
        self.runEnded.emit("failed")

    def _on_cancelled(self):
        self._busy(False)
        self.progress.setFormat("cancelled")
        self.state.set_preview(None)
        # only claim earlier results where the Results tab shows them (same kind of states)
        res = self.state.results
        kept = res is not None and tuple(res.samples.shape[2:]) == tuple(self.state.state_shape)
        self.state.message.emit("assimilation cancelled; the earlier results are kept" if kept
                                else "assimilation cancelled; no results yet")
        self.runEnded.emit("cancelled")
