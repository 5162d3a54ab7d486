"""Training panel: fit a local score model to the current system's trajectories.

Training data are either the trajectories loaded in the system panel (the default
as soon as a file is loaded) or a fresh simulated set (M trajectories × T states).
Training runs on the worker thread (``training_job``) and reports the running
training loss and, now and then, a validation loss, which the panel plots live.
Stopping keeps the model trained so far — the status, the model's own record and the
plot then agree on how many steps were done; a stop before the first step leaves no
model (nothing to save). *Save model…* writes a checkpoint and makes it selectable for
assimilation; training again over a model that was not saved asks first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                               QLabel, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from .common import available_devices as _available_devices, default_confirm, format_eta, one_line
from .loss_plot import LossPlot
from .state import AppState
from .training_job import make_training_job
from .workers import JobRunner

__all__ = ["TrainingPanel"]


class TrainingPanel(QWidget):
    errorRaised = Signal(str)
    modelSaved = Signal(str)
    trainingEnded = Signal(str)   # "finished" | "stopped" | "failed" | "cancelled"

    def __init__(self, state: AppState, runner: Optional[JobRunner] = None, settings=None, parent=None):
        super().__init__(parent)
        self.state = state
        self.runner = runner or JobRunner(self)
        self.settings = settings
        self.model = None
        self.model_saved = True          # nothing trained yet, nothing to lose
        #: ``confirm(question) -> bool`` before an unsaved model is discarded (the window routes it)
        self.confirm = default_confirm(self)
        self._dataset = None             # the loaded trajectories the data source was last set for
        self.history: dict = {}
        self._t0 = 0.0

        self.data_combo = QComboBox()
        self.data_combo.setToolTip("Train on the loaded trajectories, or simulate a training set")
        self.n_traj_spin = _spin(1, 100000, 128, "Number of simulated training trajectories M")
        self.traj_len_spin = _spin(8, 100000, 128, "States per simulated trajectory T")
        self.data_seed_spin = _spin(0, 2**31 - 1, 1, "Seed of the training simulation (differs from the truth's)")
        self.k_spin = _spin(1, 8, 2, "Markov blanket half-width k: the network sees 2k+1 consecutive states")
        self.arch_label = QLabel()
        self.width_spin = _spin(8, 2048, 64, "Network width (channels or hidden units)")
        self.depth_spin = _spin(1, 16, 3, "Number of residual blocks")
        self.steps_spin = _spin(10, 10_000_000, 2000, "Optimiser steps")
        self.batch_spin = _spin(1, 65536, 128, "Windows per batch")
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(1e-3)
        self.lr_spin.setToolTip("AdamW learning rate (decays linearly to 0)")
        self.device_combo = QComboBox()
        self.device_combo.addItem("CPU", "cpu")
        self._fill_devices()
        self.seed_spin = _spin(0, 2**31 - 1, 0, "Seed of the network initialisation and batches")
        self.train_button = QPushButton("Train")
        self.train_button.setStyleSheet("font-weight: bold;")
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("Stop training and keep the model trained so far")
        self.cancel_button.setEnabled(False)
        self.save_button = QPushButton("Save model…")
        self.save_button.setToolTip("Save a checkpoint; it becomes selectable for assimilation")
        self.save_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("idle")
        self.progress.setValue(0)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.setVisible(False)

        self.loss = LossPlot()
        # its parts by their names, for scripts and tests
        self.plot_widget, self.plot = self.loss.widget, self.loss.plot
        self.train_curve, self.val_curve, self.plot_note = self.loss.train_curve, self.loss.val_curve, self.loss.note

        data_box = QGroupBox("Training data")
        df = QFormLayout(data_box)
        df.addRow("source", self.data_combo)
        df.addRow("trajectories M", self.n_traj_spin)
        df.addRow("states per trajectory T", self.traj_len_spin)
        df.addRow("simulation seed", self.data_seed_spin)
        net_box = QGroupBox("Score network")
        nf = QFormLayout(net_box)
        nf.addRow("architecture", self.arch_label)
        nf.addRow("window k (2k+1 states)", self.k_spin)
        nf.addRow("width", self.width_spin)
        nf.addRow("depth", self.depth_spin)
        opt_box = QGroupBox("Optimisation")
        of = QFormLayout(opt_box)
        of.addRow("steps", self.steps_spin)
        of.addRow("batch size", self.batch_spin)
        of.addRow("learning rate", self.lr_spin)
        of.addRow("device", self.device_combo)
        of.addRow("seed", self.seed_spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        buttons.addWidget(self.save_button, 2)
        controls = QVBoxLayout()
        for w in (data_box, net_box, opt_box):
            controls.addWidget(w)
        controls.addLayout(buttons)
        controls.addWidget(self.progress)
        controls.addWidget(self.status)
        controls.addWidget(self.error)
        controls.addStretch(1)
        left = QWidget()
        left.setLayout(controls)
        left.setMaximumWidth(360)
        layout = QHBoxLayout(self)
        layout.addWidget(left)
        layout.addWidget(self.plot_widget, 1)

        self.data_combo.currentIndexChanged.connect(lambda _: self._data_source_changed())
        self.train_button.clicked.connect(lambda: self.train(ask=True))
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button.clicked.connect(lambda: self.save_model())
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        state.systemChanged.connect(self.sync_from_state)
        state.truthChanged.connect(self.sync_from_state)
        state.engineReady.connect(self._engine_ready)
        self.sync_from_state()

    def _fill_devices(self):
        if "cuda" in _available_devices() and self.device_combo.findData("cuda") < 0:
            self.device_combo.addItem("CUDA", "cuda")

    def _engine_ready(self):
        self._fill_devices()
        self.sync_from_state()

    # configuration ----------------------------------------------------------------------
    def sync_from_state(self):
        current = self.data_combo.currentData()
        self.data_combo.blockSignals(True)
        self.data_combo.clear()
        # a data system (trajectories from a file) has no dynamics to simulate a training set with
        if getattr(self.state.system, "has_dynamics", True):
            self.data_combo.addItem("simulate a training set", "simulate")
        ds = self.state.dataset
        if ds is not None:
            self.data_combo.addItem(f"loaded file ({ds.shape[0]} × {ds.shape[1]} states)", "loaded")
            # newly loaded trajectories are what the user wants to train on; the same ones
            # (another truth picked from them) keep the source the user chose
            fresh = ds is not self._dataset
            loaded = self.data_combo.findData("loaded")
            self.data_combo.setCurrentIndex(loaded if fresh or current != "simulate" else 0)
        self._dataset = ds
        self.data_combo.blockSignals(False)
        self._data_source_changed()
        self._note_model_system()
        if not self.state.engine_loaded:  # the network family comes from the core
            self.arch_label.setText("… (loading)")
            return
        arch = self.arch()
        self.arch_label.setText(f"{arch['name']} (auto)")
        self.arch_label.setToolTip(f"The network family suited to {self.state.system.title}'s state shape")

    def _note_model_system(self):
        """A trained model of another system than the one shown says so (it is still saveable)."""
        if self.model is None or self.runner.running:
            return
        name = (getattr(self.model, "system", None) or {}).get("name")
        if name and name != self.state.system.name:
            self.status.setText(f"The last trained model is for {name}"
                                f"{' (not saved)' if not self.model_saved else ''}; this system has none yet.")

    def _data_source_changed(self):
        sim = self.data_combo.currentData() == "simulate"
        for w in (self.n_traj_spin, self.traj_len_spin, self.data_seed_spin):
            w.setEnabled(sim)

    def arch(self) -> dict:
        self.state.ensure_engine()
        from sda_gui.core.diffusion.training import default_arch

        arch = dict(default_arch(self.state.system))
        w, d = self.width_spin.value(), self.depth_spin.value()
        if arch["name"] == "unet":
            arch.update(channels=[w, 2 * w, 4 * w], blocks=d)
        else:
            arch.update(width=w, depth=d)
        return arch

    def config(self):
        self.state.ensure_engine()
        from sda_gui.core.diffusion.training import TrainConfig

        return TrainConfig(k=self.k_spin.value(), arch=self.arch(), steps=self.steps_spin.value(),
                           batch_size=self.batch_spin.value(), lr=self.lr_spin.value(),
                           device=self.device_combo.currentData(), seed=self.seed_spin.value(),
                           val_every=max(10, self.steps_spin.value() // 20))

    def show_error(self, text: str):
        self.error.setText(text)
        self.error.setVisible(bool(text))
        if text:
            self.errorRaised.emit(text)

    # run --------------------------------------------------------------------------------
    def train(self, ask: bool = False) -> bool:
        """Starts training on the worker; False if busy, invalid or (``ask``) declined."""
        if self.runner.running:
            return False
        if ask and not self.model_saved and not self.confirm(
                "The model trained before is not saved. Train a new one and discard it?"):
            return False
        self.state.ensure_engine()
        system = self.state.system
        try:
            config = self.config()
        except (ValueError, TypeError) as exc:
            self.show_error(f"cannot train: {one_line(exc)}")
            return False
        source = self.data_combo.currentData()
        loaded = self.state.dataset if source == "loaded" else None
        m, t, seed = self.n_traj_spin.value(), self.traj_len_spin.value(), self.data_seed_spin.value()
        length = loaded.shape[1] if loaded is not None else t
        if length < 2 * config.k + 1:
            what = "the loaded trajectories hold" if loaded is not None else "trajectories of"
            self.show_error(f"{what} {length} states, shorter than a window of 2k+1 = {2 * config.k + 1}")
            return False

        self.show_error("")
        self.model, self.model_saved, self.history = None, True, {}
        self.loss.clear()
        self.status.setText("")
        self._t0 = time.perf_counter()
        self._train_t0 = None
        self._phase = "simulate" if loaded is None else "train"
        self.runner.start(make_training_job(system, config, loaded, m, t, seed), "train")
        self._busy(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("simulating training data…" if loaded is None else "starting…")
        return True

    def cancel(self):
        if self.runner.running:
            self.runner.cancel()
            self.progress.setFormat("stopping…")

    def _busy(self, busy: bool):
        self.train_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.save_button.setEnabled(not busy and self.model is not None)

    @property
    def _steps(self) -> list:
        """The steps of the loss reports received so far (the plot's points)."""
        return self.loss.steps

    @staticmethod
    def steps_done(model, history: dict) -> int:
        """Optimiser steps the model went through: its own record, else the last reported step."""
        info = getattr(model, "training_info", None) or {}
        if info.get("steps_done") is not None:
            return int(info["steps_done"])
        return int(history["step"][-1]) if history.get("step") else 0

    def _on_progress(self, payload):
        phase, step, total, train_loss, val_loss = payload
        self._phase = phase
        if phase == "simulate":
            self.progress.setRange(0, int(total))
            self.progress.setValue(int(step))
            self.progress.setFormat(f"simulating training data {100 * step // max(total, 1)} %")
            return
        now = time.perf_counter()
        if self._train_t0 is None:
            self._train_t0, self._train_step0 = now, step
        rate = (step - self._train_step0) / max(now - self._train_t0, 1e-9)
        eta = (total - step) / rate if rate > 0 else float("nan")
        self.progress.setRange(0, int(total))
        self.progress.setValue(int(step))
        self.progress.setFormat(f"step {step} / {total} · loss {train_loss:.4f} · ETA {format_eta(eta)}")
        self.loss.add(step, train_loss, val_loss)

    def _on_finished(self, result):
        model, self.history = result
        stopped = bool(self.history.get("stopped"))
        steps = self.steps_done(model, self.history)
        secs = time.perf_counter() - self._t0
        if steps == 0:
            # stopped before the first step: an untrained network is no model to save or use
            self.model, self.model_saved = None, True
            self._busy(False)
            self.progress.setFormat(f"stopped before the first step ({secs:.0f} s)")
            self.status.setText("No model was trained.")
            self.trainingEnded.emit("stopped" if stopped else "finished")
            return
        self.model, self.model_saved = model, False
        self._busy(False)
        self.progress.setFormat(f"{'stopped' if stopped else 'done'} after {steps} steps ({secs:.0f} s)")
        parts = [f"Trained {steps} steps"]
        if self.history.get("train"):
            parts.append(f"final training loss {self.history['train'][-1]:.4f}")
        val = [v for v in self.history.get("val", []) if v is not None]
        if val:
            parts.append(f"validation {val[-1]:.4f}")
        self.status.setText(", ".join(parts) + ". Save the model to use it for assimilation.")
        if not self.loss.steps:
            self.loss.show_stop(steps, f"stopped at step {steps}, before the first loss was recorded")
        self.trainingEnded.emit("stopped" if stopped else "finished")

    def _on_failed(self, text):
        self._busy(False)
        self.progress.setFormat("failed")
        self.show_error(f"training failed: {text}")
        self.trainingEnded.emit("failed")

    def _on_cancelled(self):
        self._busy(False)
        if self._phase == "simulate":
            self.progress.setFormat("stopped while simulating the training data")
            self.status.setText("No model was trained.")
        else:
            self.progress.setFormat("stopped")
        self.trainingEnded.emit("cancelled")

    def save_model(self, path: Optional[str] = None) -> Optional[str]:
        """Writes the trained model to a checkpoint and announces it (it becomes selectable)."""
        if self.model is None:
            self.show_error("nothing to save: train a model first")
            return None
        if path is None:
            folder = str(self.settings.value("last_folder", "")) if self.settings is not None else ""
            # named after the model's own system: it may not be the one shown now
            system = (getattr(self.model, "system", None) or {}).get("name") or self.state.system.name
            default = str(Path(folder or ".") / f"{system}-k{self.model.k}.pt")
            path, _ = QFileDialog.getSaveFileName(self, "Save score model", default, "SDA Studio models (*.pt)")
            if not path:
                return None
            if self.settings is not None:
                self.settings.setValue("last_folder", str(Path(path).parent))
        try:
            from sda_gui.core.diffusion.checkpoint import save_checkpoint

            info = dict(getattr(self.model, "training_info", {}) or {})
            save_checkpoint(self.model, path, training=info)
        except Exception as exc:  # noqa: BLE001 - a failed write is one line; the old file stays
            self.show_error(f"cannot save the model: {one_line(exc)}")
            return None
        self.model_saved = True
        self.show_error("")
        self.status.setText(f"Saved to {path}; selected for assimilation.")
        self.modelSaved.emit(str(path))
        return str(path)


def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    return s
