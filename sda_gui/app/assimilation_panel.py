"""Assimilation panel: model, guidance and sampler settings; runs the sampler on the worker.

The sampler reports after every step with the current denoised estimate. The worker
forwards an estimate as a preview at most every ``PREVIEW_INTERVAL_S``, so a fast
sampler cannot flood the event loop, together with what the results view draws of it
(``preview_prepare``, computed on the worker): the UI thread only hands arrays over.
A cancel sets the job's flag, which the sampler checks before each network call. On failure the message appears here and
nothing in the state changes: the pattern, truth and earlier results stay.

While the engine loads (the window's first seconds) the panel says so and Assimilate
waits: a click then starts the run as soon as the shipped model is loaded.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from . import engine
from .common import available_devices as _available_devices, format_eta
from .state import AppState, Results
from .workers import JobRunner

__all__ = ["AssimilationPanel", "GUIDANCES"]

#: samples drawn by default, per system (None: any other); a CPU gives them within a minute
DEFAULT_SAMPLES = {None: 8, "kolmogorov": 2}

GUIDANCES = {"sda": "SDA (Rozet & Louppe)", "dps": "DPS (baseline)", "mmps": "MMPS (Tweedie covariance)"}
MODEL_FILTER = "SDA Studio models (*.pt);;All files (*)"
PREVIEW_INTERVAL_S = 0.2


def _checkpoint():
    engine.ENGINE.wait()
    from sda_gui.core.diffusion import checkpoint

    return checkpoint


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

        self.model_combo = QComboBox()
        self.model_combo.setToolTip("Score model: the shipped one for this system, or a checkpoint file")
        self.model_combo.setMinimumContentsLength(14)
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.browse_button = QPushButton("…")
        self.browse_button.setToolTip("Choose a model checkpoint file (.pt)")
        self.browse_button.setFixedWidth(32)
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.guidance_combo = QComboBox()
        for key, label in GUIDANCES.items():
            self.guidance_combo.addItem(label, key)
        self.guidance_combo.setToolTip("How the observations steer the diffusion sampler")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 4096)
        self.steps_spin.setValue(32)  # defaults sized for a CPU: samples within seconds, not minutes
        self.steps_spin.setToolTip("Sampler steps from noise (t = 1) to data (t = 0)")
        self.corrections_spin = QSpinBox()
        self.corrections_spin.setRange(0, 16)
        self.corrections_spin.setValue(0)
        self.corrections_spin.setToolTip("Langevin corrections C after each step (cost × (1 + C))")
        self.tau_spin = QDoubleSpinBox()
        self.tau_spin.setRange(0.0, 5.0)
        self.tau_spin.setDecimals(3)
        self.tau_spin.setSingleStep(0.05)
        self.tau_spin.setValue(0.5)
        self.tau_spin.setToolTip("Langevin step size τ of the corrections")
        self.gamma_spin = QDoubleSpinBox()
        self.gamma_spin.setRange(0.0, 10.0)
        self.gamma_spin.setDecimals(4)
        self.gamma_spin.setSingleStep(0.005)
        self.gamma_spin.setValue(1e-2)
        self.gamma_spin.setToolTip("γ of the SDA likelihood covariance Σ_y + σ²/μ² γ I")
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, 4096)
        self.samples_spin.setValue(DEFAULT_SAMPLES[None])
        self.samples_spin.setToolTip("Number of posterior trajectories to draw")
        self.device_combo = QComboBox()
        self.device_combo.addItem("auto", "auto")
        self.device_combo.addItem("CPU", "cpu")
        self.device_combo.addItem("CUDA", "cuda")
        self._fill_devices()
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Seed of the sampler noise")
        self.preview_check = QCheckBox("live preview of the estimate")
        self.preview_check.setChecked(True)
        self.assimilate_button = QPushButton("Assimilate")
        self.assimilate_button.setToolTip("Draw posterior samples given the observations (Ctrl+Return)")
        self.assimilate_button.setStyleSheet("font-weight: bold;")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("ready")
        self.progress.setValue(0)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.setVisible(False)

        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.browse_button)
        model_box = QGroupBox("Score model")
        mb = QVBoxLayout(model_box)
        mb.addLayout(model_row)
        mb.addWidget(self.model_info)
        form_box = QGroupBox("Sampler")
        form = QFormLayout(form_box)
        form.addRow("guidance", self.guidance_combo)
        form.addRow("steps", self.steps_spin)
        form.addRow("corrections C", self.corrections_spin)
        form.addRow("τ", self.tau_spin)
        form.addRow("γ", self.gamma_spin)
        form.addRow("samples", self.samples_spin)
        form.addRow("device", self.device_combo)
        form.addRow("seed", self.seed_spin)
        form.addRow(self.preview_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.assimilate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(model_box)
        layout.addWidget(form_box)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.error)
        layout.addStretch(1)

        self.model_combo.activated.connect(lambda i: self.select_model(self.model_combo.itemData(i)))
        self.browse_button.clicked.connect(lambda: self.browse_model())
        self.guidance_combo.currentIndexChanged.connect(lambda _: self._guidance_changed())
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
        self._defaults_for = state.system.name
        self._extra_models: list[str] = []
        if state.engine_loaded:
            self.refresh_models()
        else:
            self.model_combo.addItem("loading…", None)
            self._update_model_info()

    def _fill_devices(self):
        """Names the automatic choice and greys out CUDA where there is none (or not known yet)."""
        devices = _available_devices()
        cuda = "cuda" in devices
        self.device_combo.setItemText(0, f"auto ({'cuda' if cuda else 'cpu'})")
        self.device_combo.setItemText(2, "CUDA" if cuda else "CUDA (not available here)")
        self.device_combo.model().item(2).setEnabled(cuda)

    def _engine_ready(self):
        """The engine has loaded: the real device list, the shipped model, and a run asked for meanwhile."""
        self._fill_devices()
        self.refresh_models()
        if self._queued:
            self._queued = False
            self.assimilate()

    def _apply_system_defaults(self):
        """A new kind of system gets its own sample count: a field costs ~100× a ring per sample."""
        name = self.state.system.name
        if name != self._defaults_for:
            self._defaults_for = name
            self.samples_spin.setValue(DEFAULT_SAMPLES.get(name, DEFAULT_SAMPLES[None]))

    # models -----------------------------------------------------------------------------
    def refresh_models(self):
        """Lists the shipped model of the current system and the user's checkpoints; loads one."""
        if not self.state.engine_loaded:
            if engine.ENGINE.ready():
                self.state.ensure_engine()  # its engineReady comes back here
            return
        system = self.state.system
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for shipped in _checkpoint().shipped_model_paths(system.name, "auto"):
            self.model_combo.addItem(f"shipped: {shipped.name}", str(shipped))
        for p in self._extra_models:
            self.model_combo.addItem(Path(p).name, p)
        self.model_combo.blockSignals(False)
        current = self.state.model
        if current is not None and self._fits(current):
            idx = self.model_combo.findData(self.state.model_path)
            if idx >= 0:
                self.model_combo.setCurrentIndex(idx)
            self._update_model_info()
            return
        # the loaded model belongs to another system: pick the first that fits
        for i in range(self.model_combo.count()):
            if self.select_model(self.model_combo.itemData(i), quiet=True):
                return
        self.state.set_model(None)

    def _fits(self, model) -> bool:
        try:
            _checkpoint().check_model_for_system(model, self.state.system)
            return True
        except ValueError:
            return False

    def add_model_path(self, path: str, select: bool = True) -> bool:
        """Makes a checkpoint selectable (e.g. after training) and optionally loads it."""
        path = str(path)
        if path not in self._extra_models:
            self._extra_models.append(path)
        if self.model_combo.findData(path) < 0:
            self.model_combo.addItem(Path(path).name, path)
        return self.select_model(path) if select else True

    def select_model(self, path: Optional[str], quiet: bool = False) -> bool:
        """Loads a checkpoint and checks it fits the current system; keeps the old model on error."""
        if not path:
            return False
        self.state.ensure_engine()
        try:
            ck = _checkpoint()
            model = ck.load_checkpoint(path)
            ck.check_model_for_system(model, self.state.system)
        except (ValueError, OSError) as exc:
            if not quiet:
                self.show_error(f"cannot use model {Path(path).name}: {exc}")
                idx = self.model_combo.findData(self.state.model_path)
                if idx >= 0:
                    self.model_combo.setCurrentIndex(idx)
            return False
        self.show_error("")
        self.state.set_model(model, path)
        idx = self.model_combo.findData(str(path))
        if idx < 0:
            self.model_combo.addItem(Path(path).name, str(path))
            idx = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(idx)
        return True

    def browse_model(self) -> bool:
        folder = str(self.settings.value("last_folder", "")) if self.settings is not None else ""
        path, _ = QFileDialog.getOpenFileName(self, "Choose a score model", folder, MODEL_FILTER)
        if not path:
            return False
        if self.settings is not None:
            self.settings.setValue("last_folder", str(Path(path).parent))
        if self.select_model(path):
            if path not in self._extra_models:
                self._extra_models.append(path)
            return True
        return False

    def _update_model_info(self):
        m = self.state.model
        if m is None:
            if not self.state.engine_loaded:
                self.model_info.setText("<i>Loading the engine (torch) and the shipped model…</i>")
            else:
                self.model_info.setText(f"<i>No model for {self.state.system.title}: train one in the Training "
                                        "tab or choose a file.</i>")
            self.assimilate_button.setEnabled(False)
            return
        arch = dict(m.arch)
        name = arch.pop("name", "?")
        info = getattr(m, "training_info", {}) or {}
        steps = info.get("steps_done") or info.get("steps")
        params = sum(p.numel() for p in m.parameters())
        txt = (f"window 2k+1 = {m.window} states · {name} "
               f"({', '.join(f'{k} {v}' for k, v in arch.items())}) · {params / 1e3:.0f} k parameters")
        if steps and info.get("init_steps_done"):
            txt += f" · trained {info['init_steps_done']} + {steps} steps (fine-tuned)"
        elif steps:
            txt += f" · trained {steps} steps"
        if self._gpu_model_on_cpu():
            txt += ("<br><b>Sized for a GPU:</b> on the CPU each step costs about 18× that of the "
                    f"shipped CPU model, {self.state.system.name}.pt (also in the list).")
        self.model_info.setText(txt)
        self.assimilate_button.setEnabled(not self.runner.running)

    def _gpu_model_on_cpu(self) -> bool:
        """The shipped GPU model of this system is chosen, and the run would go to the CPU."""
        gpu = _checkpoint().GPU_DEFAULTS.get(self.state.system.name)
        if gpu is None or Path(self.state.model_path or "").name != gpu:
            return False
        device = self.device_combo.currentData()
        return device == "cpu" or (device == "auto" and "cuda" not in _available_devices())

    def _guidance_changed(self):
        self.gamma_spin.setEnabled(self.guidance_combo.currentData() == "sda")

    # settings ---------------------------------------------------------------------------
    def set_guidance(self, key: str):
        i = self.guidance_combo.findData(key)
        if i < 0:
            raise ValueError(f"unknown guidance '{key}' (known: {', '.join(GUIDANCES)})")
        self.guidance_combo.setCurrentIndex(i)

    def set_device(self, key: str):
        i = self.device_combo.findData(key)
        if i < 0:
            raise ValueError(f"unknown device '{key}'")
        self.device_combo.setCurrentIndex(i)

    def sampler_settings(self) -> dict:
        return {
            "guidance": self.guidance_combo.currentData(),
            "steps": self.steps_spin.value(),
            "corrections": self.corrections_spin.value(),
            "tau": self.tau_spin.value(),
            "gamma": self.gamma_spin.value(),
            "n_samples": self.samples_spin.value(),
            "device": self.device_combo.currentData(),
            "seed": self.seed_spin.value(),
        }

    def apply_settings(self, s: dict):
        """Restores sampler settings (from QSettings or a session); unknown keys are ignored."""
        if "guidance" in s and self.guidance_combo.findData(s["guidance"]) >= 0:
            self.set_guidance(s["guidance"])
        for key, spin in (("steps", self.steps_spin), ("corrections", self.corrections_spin),
                          ("n_samples", self.samples_spin), ("seed", self.seed_spin)):
            if key in s:
                spin.setValue(int(s[key]))
        for key, spin in (("tau", self.tau_spin), ("gamma", self.gamma_spin)):
            if key in s:
                spin.setValue(float(s[key]))
        if "device" in s and self.device_combo.findData(s["device"]) >= 0:
            i = self.device_combo.findData(s["device"])
            if self.device_combo.model().item(i).isEnabled():
                self.device_combo.setCurrentIndex(i)

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
        model = self.state.model
        if model is None:
            self.show_error("no score model: train one in the Training tab or choose a checkpoint file")
            return False
        try:
            _checkpoint().check_model_for_system(model, self.state.system)
            obs = self.state.observation()
        except ValueError as exc:
            self.show_error(str(exc))
            return False
        if obs.length < model.window:
            self.show_error(f"the trajectory has {obs.length} states; this model needs at least 2k+1 = {model.window}")
            return False
        settings = self.sampler_settings()
        self._run_settings = {**settings, "model": self.state.model_path or "", "obs_std": self.state.obs_std,
                              "obs_seed": self.state.obs_seed, "operator": obs.operator or "identity"}
        self._run_obs = obs
        self._run_truth = None if self.state.truth is None else self.state.truth.copy()
        want_preview = self.preview_check.isChecked()
        truth = self._run_truth
        self.show_error("")
        # samples live on the state grid even when the observations are coarse; as many blank
        # ones as will come, so that titles and controls do not change at the first preview
        blank = np.full((settings["n_samples"], obs.length, *self.state.state_shape), np.nan, dtype=np.float32)
        self.preview_prepare = None
        # the results view lays out its plots and hands back what computes their data (preview_prepare)
        self.runStarting.emit(Results(samples=blank, observation=obs, truth=self._run_truth,
                                      settings={"step": 0, "total": settings["steps"]}, preview=True))
        prepare = self.preview_prepare
        interval = PREVIEW_INTERVAL_S

        def prepared(samples, preview=True):
            """What the results view will draw of ``samples``, computed here on the worker thread."""
            if prepare is None:
                return None
            try:
                return prepare(samples, preview=preview)
            except Exception:  # noqa: BLE001 - the view then computes it itself
                traceback.print_exc()
                return None

        def job(report, should_stop):
            from sda_gui.core.assimilation import assimilate

            last = [float("-inf")]

            def progress(step, total, estimate):
                # an estimate goes to the UI only when asked for, and at most every `interval`
                now = time.perf_counter()
                if not want_preview or (step < total and now - last[0] < interval):
                    report((step, total, None))
                    return
                last[0] = now
                samples = estimate.numpy()
                report((step, total, (samples, prepared(samples))))

            x = assimilate(model, obs, settings["n_samples"], steps=settings["steps"],
                           corrections=settings["corrections"], guidance=settings["guidance"],
                           tau=settings["tau"], gamma=settings["gamma"], device=settings["device"],
                           seed=settings["seed"], progress=progress, should_stop=should_stop)
            samples = x.numpy()
            from .result_metrics import compute_metrics

            metrics = compute_metrics(Results(samples=samples, observation=obs, truth=truth))
            return samples, metrics, prepared(np.asarray(samples, dtype=np.float32), preview=False)

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
        for w in (self.model_combo, self.browse_button):
            w.setEnabled(not busy)

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
        samples, metrics, prepared = result
        self._busy(False)
        elapsed = time.perf_counter() - self._t0
        self.progress.setValue(self.progress.maximum())
        self.progress.setFormat(f"done: {samples.shape[0]} samples in {elapsed:.1f} s")
        settings = {**self._run_settings, "seconds": elapsed}
        self.state.set_results(Results(samples=np.asarray(samples, dtype=np.float32), observation=self._run_obs,
                                       truth=self._run_truth, settings=settings, metrics=metrics,
                                       prepared=prepared))
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
        self.state.message.emit("assimilation cancelled; earlier results are kept")
        self.runEnded.emit("cancelled")
