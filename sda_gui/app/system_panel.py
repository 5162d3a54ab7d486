"""System panel: pick a built-in system, set its parameters, simulate a truth, or load one.

Simulation runs on the worker thread (a Kolmogorov truth takes from seconds on a GPU
to minutes on a CPU: the panel says how long before and while it runs); loading a file
is quick and runs inline so a bad file answers at once with one line, while the
current system, truth and pattern stay as they were. The parameter form and what the
app knows of simulating each system live in ``system_form``.

A new truth that would throw away unsaved work (a pattern on a grid of another
length, loaded observation values, results of another kind of state) is asked about
first when the user clicks (``ask=True``), through ``confirm``.

Until the engine has loaded the form offers the current system only (from its
description); ``AppState.engineReady`` brings in every system of the core.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget)

from .common import default_confirm, format_eta, one_line
from .state import AppState, system_for_shape
from .system_form import (DEFAULT_LENGTH, VISIBLE_PARAMS, ParamsForm, app_defaults, cuda_available, default_params,
                          expected_seconds, field_device, systems)
from .workers import JobRunner

__all__ = ["SystemPanel", "VISIBLE_PARAMS", "DEFAULT_LENGTH", "app_defaults", "expected_seconds"]

TRUTH_FILTER = "Trajectories (*.h5 *.hdf5 *.npz *.npy);;All files (*)"


class SystemPanel(QWidget):
    """Controls for the dynamical system and its truth trajectory."""

    errorRaised = Signal(str)

    def __init__(self, state: AppState, runner: Optional[JobRunner] = None, settings=None, parent=None):
        super().__init__(parent)
        self.state = state
        self.runner = runner or JobRunner(self)
        self.settings = settings
        #: ``confirm(question) -> bool`` before work is discarded (the window routes it to its own)
        self.confirm = default_confirm(self)
        self._pending_system = None
        self._pending_seed = 0

        self.system_combo = QComboBox()
        self._fill_systems()
        self.system_combo.setToolTip("The dynamical system whose trajectories you assimilate")
        self.param_box = ParamsForm(changed=self._update_estimate)
        self.length_spin = QSpinBox()
        self.length_spin.setRange(5, 4096)
        self.length_spin.setValue(64)
        self.length_spin.setToolTip("Number of states L in the truth trajectory (and in the posterior samples)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Random seed of the simulation: the same seed gives the same truth")
        self.simulate_button = QPushButton("Simulate truth")
        self.simulate_button.setToolTip("Simulate one trajectory of the system (on a background thread)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.load_button = QPushButton("Load trajectories…")
        self.load_button.setToolTip("Load trajectories from .h5, .npz or .npy, shape (M, T, *state) or (T, *state)")
        self.traj_spin = QSpinBox()
        self.traj_spin.setRange(0, 0)
        self.traj_spin.setToolTip("Which trajectory of the loaded file is the truth")
        self.traj_spin.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.estimate_label = QLabel()
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setVisible(False)
        self._t0 = 0.0
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.setVisible(False)

        form = QFormLayout()
        form.addRow("System", self.system_combo)
        form.addRow("Length L", self.length_spin)
        form.addRow("Seed", self.seed_spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.simulate_button)
        buttons.addWidget(self.cancel_button)
        load_row = QHBoxLayout()
        load_row.addWidget(self.load_button)
        load_row.addWidget(QLabel("trajectory #"))
        load_row.addWidget(self.traj_spin)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.param_box)
        layout.addWidget(self.estimate_label)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addLayout(load_row)
        layout.addWidget(self.info)
        layout.addWidget(self.error)
        layout.addStretch(1)

        self.system_combo.currentIndexChanged.connect(lambda _: self._rebuild_form())
        self.length_spin.valueChanged.connect(lambda _: self._update_estimate())
        self.simulate_button.clicked.connect(lambda: self.simulate(ask=True))
        self.cancel_button.clicked.connect(self.cancel)
        self.load_button.clicked.connect(lambda: self.load_file(ask=True))
        self.traj_spin.valueChanged.connect(self.select_trajectory)
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.state.truthChanged.connect(self._update_info)
        self.state.systemChanged.connect(self.sync_from_state)
        self.state.engineReady.connect(self._engine_ready)
        self._rebuild_form()
        self.sync_from_state()

    def _pending(self):
        """The state's system while it is only a description (the engine is loading), else None."""
        system = self.state.system
        return system if getattr(system, "pending", False) else None

    def _fill_systems(self):
        """Every system of the core; only the current one while the engine loads."""
        pending = self._pending()
        if pending is not None and not self.state.engine_loaded:
            items = [(pending.title, pending.name)]
        else:
            items = [(getattr(cls, "title", name) or name, name) for name, cls in systems().items()]
        self.system_combo.blockSignals(True)
        self.system_combo.clear()
        for title, name in items:
            self.system_combo.addItem(title, name)
        self.system_combo.blockSignals(False)

    def _engine_ready(self):
        """All systems become available; what the form shows (and any edit) stays."""
        values = self.params() if self.system_name == self.state.system.name else None
        self._fill_systems()
        self.sync_from_state()
        if values:
            for key, value in values.items():
                if key in self._fields:
                    self.set_param(key, value)

    # form -------------------------------------------------------------------------------
    @property
    def system_name(self) -> str:
        return self.system_combo.currentData()

    @property
    def _fields(self) -> dict:
        return self.param_box.fields

    def set_system_name(self, name: str):
        i = self.system_combo.findData(name)
        if i < 0:
            raise ValueError(f"unknown system '{name}'")
        self.system_combo.setCurrentIndex(i)

    def _rebuild_form(self, values: Optional[dict] = None):
        name = self.system_name
        self.param_box.rebuild(name, self._pending(), values)
        if self.state.system.name != name:
            self.length_spin.setValue(DEFAULT_LENGTH.get(name, 64))
        self._update_estimate()

    @property
    def param_names(self) -> list[str]:
        """The parameters the form offers, in order."""
        return list(self._fields)

    def set_param(self, key: str, value):
        self.param_box.set_param(key, value)

    def params(self) -> dict:
        """The system parameters in the form, on top of the current system's (e.g. dt, noise)."""
        base = dict(self.state.system.params) if self.state.system.name == self.system_name else {}
        base.update(self.param_box.values())
        return base

    def _update_estimate(self):
        """Before simulating: how long it will take, where that is more than a blink."""
        name = self.system_name
        if name is None or self.runner.running:
            return
        params = {**default_params(name, self._pending()), **self.params()}
        device = "cuda" if name == "kolmogorov" and cuda_available() else "cpu"
        seconds = expected_seconds(name, params, self.length_spin.value(), device)
        if device == "cuda":
            text = "Simulated on the GPU: the progress bar shows the time left."
        elif seconds is None:
            text = ""
        else:
            burn = int(params.get("burn_in", 0))
            # a static figure measured on an idle machine: a busy one takes longer
            text = (f"Simulating {burn} spin-up + {self.length_spin.value()} states at "
                    f"{params.get('resolution')}² takes about {format_eta(seconds)} on an idle CPU "
                    "(longer when it is busy; the progress bar then shows the time left).")
        self.estimate_label.setText(text)
        self.estimate_label.setVisible(bool(text))

    def sync_from_state(self):
        """Shows the state's system in the form (after a load or a session reopen)."""
        sysm = self.state.system
        self.system_combo.blockSignals(True)
        i = self.system_combo.findData(sysm.name)
        if i >= 0:
            self.system_combo.setCurrentIndex(i)
        self.system_combo.blockSignals(False)
        self._rebuild_form(dict(sysm.params))
        if self.state.truth is not None:
            self.length_spin.setValue(self.state.truth.shape[0])
        self._update_info()

    def _update_info(self):
        s, truth = self.state.system, self.state.truth
        if truth is None:
            self.info.setText(f"{s.title}: no truth yet")
            return
        L = truth.shape[0]
        shape = "×".join(map(str, s.state_shape))
        names = list(getattr(s, "variable_names", []) or [])
        variables = ""
        if names:
            variables = f", variables {', '.join(names)}" if len(names) <= 6 else f", variables {names[0]} … {names[-1]}"
        src = self.state.dataset_source or "simulated"
        self.info.setText(f"<b>{s.title}</b>, state {shape}{variables}, {L} states "
                          f"(t = 0 … {(L - 1) * s.dt:g}). Truth: {src}.")

    def show_error(self, text: str):
        self.error.setText(text)
        self.error.setVisible(bool(text))
        if text:
            self.errorRaised.emit(text)

    def _may_replace_truth(self, length: int, system) -> bool:
        """Asks before a new truth throws away unsaved work; True to go on."""
        lost = self.state.work_lost_by_new_truth(length, system)
        if not lost:
            return True
        return self.confirm(f"The new truth replaces {' and '.join(lost)}, which are not saved. Go on?")

    # simulate ---------------------------------------------------------------------------
    def make_system(self):
        self.state.ensure_engine()
        from sda_gui.core.systems import make_system

        return make_system(self.system_name, **self.params())

    def simulate(self, ask: bool = False) -> bool:
        """Starts simulating a truth with the form's settings; False if busy, invalid or declined."""
        if self.runner.running:
            return False
        try:
            system = self.make_system()
        except (ValueError, TypeError) as exc:
            self.show_error(f"invalid parameters: {one_line(exc)}")
            return False
        length, seed = int(self.length_spin.value()), int(self.seed_spin.value())
        if ask and not self._may_replace_truth(length, system):
            return False
        self.show_error("")
        self._pending_system, self._pending_seed = system, seed
        device = field_device(system)

        def job(report, should_stop):
            x = system.simulate(1, length, seed=seed, device=device,
                                progress=lambda d, t: report((d, t)), should_stop=should_stop)
            return np.asarray(x[0].cpu().numpy(), dtype=np.float32)

        self._t0 = time.perf_counter()
        self.runner.start(job, "simulate")
        self._busy(True)
        return True

    def cancel(self):
        self.runner.cancel()

    def _busy(self, busy: bool):
        self.simulate_button.setEnabled(not busy)
        self.load_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)
            self.progress.setFormat("starting…")

    def _on_progress(self, payload):
        done, total = payload
        elapsed = time.perf_counter() - self._t0
        eta = elapsed / max(done, 1) * (total - done)
        self.progress.setRange(0, int(total))
        self.progress.setValue(int(done))
        self.progress.setFormat(f"state {done} / {total} · {elapsed:.0f} s · ETA {format_eta(eta)}")

    def _on_finished(self, truth):
        self._busy(False)
        system, self._pending_system = self._pending_system, None
        if not np.isfinite(truth).all():
            self.show_error("the simulation diverged (NaN or infinity): try other parameters; the previous truth is kept")
            return
        self.traj_spin.setEnabled(False)
        self.state.set_truth(truth, system=system, dataset=None, source=f"simulated, seed {self._pending_seed}")

    def _on_failed(self, text):
        self._busy(False)
        self.show_error(f"simulation failed: {text}")

    def _on_cancelled(self):
        self._busy(False)
        self.show_error("simulation cancelled; the previous truth is kept")

    # load -------------------------------------------------------------------------------
    def load_system_file(self, path: Optional[str] = None) -> bool:
        """System › Load system file…: registers the ``DynamicalSystem`` subclasses of a Python file
        and selects the first; a file that cannot be used is one line and nothing changes."""
        if path is None:
            folder = self.settings.value("last_folder", "") if self.settings is not None else ""
            path, _ = QFileDialog.getOpenFileName(self, "Load system file", str(folder), "Python files (*.py)")
            if not path:
                return False
        self.state.ensure_engine()
        from sda_gui.core.systems.plugins import PluginError, load_system_file

        try:
            names = load_system_file(path)
        except PluginError as exc:
            self.show_error(str(exc).splitlines()[0])
            return False
        if not names:
            self.show_error(f"{Path(path).name} defines no dynamical system")
            return False
        self._fill_systems()
        self.set_system_name(names[0])
        self.show_error("")
        self.state.message.emit(f"loaded {', '.join(names)} from {Path(path).name}: simulate a truth to use it")
        return True

    def load_file(self, path: Optional[str] = None, ask: bool = False) -> bool:
        """Loads trajectories as the truth (and training data); on failure shows why and keeps all."""
        if path is None:
            folder = self.settings.value("last_folder", "") if self.settings is not None else ""
            path, _ = QFileDialog.getOpenFileName(self, "Load trajectories", str(folder), TRUTH_FILTER)
            if not path:
                return False
        try:
            x, meta, system = self._read(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
            text = "not enough memory to load it" if isinstance(exc, MemoryError) else one_line(exc)
            # the core's messages already name the file; don't say it twice
            self.show_error(text if Path(path).name in text else f"cannot load {Path(path).name}: {text}")
            return False
        if ask and not self._may_replace_truth(x.shape[1], system):
            return False
        self.show_error("")
        if self.settings is not None:
            self.settings.setValue("last_folder", str(Path(path).parent))
        self.traj_spin.blockSignals(True)
        self.traj_spin.setRange(0, x.shape[0] - 1)
        self.traj_spin.setValue(0)
        self.traj_spin.blockSignals(False)
        self.traj_spin.setEnabled(x.shape[0] > 1)
        self.state.set_truth(x[0], system=system, dataset=x, source=f"{Path(path).name} (#0 of {x.shape[0]})")
        if not (meta or {}).get("system"):
            # without metadata the system is a guess from the state shape: say so where it shows
            self.state.message.emit(f"{Path(path).name} names no system: its {tuple(x.shape[2:])} states are "
                                    f"treated as {system.title} (normalisation and Δt of that system)")
        return True

    def _read(self, path: str):
        """``(trajectories (M, T, *s) float32, metadata, system)`` of a file, or a one-line error."""
        self.state.ensure_engine()
        from sda_gui.core.datasets import load_trajectories

        raw, meta = load_trajectories(path)
        raw = np.asarray(raw)
        if raw.ndim < 3:
            raise ValueError(f"expected trajectories (M, T, *state) or (T, *state), got shape {raw.shape}")
        if raw.shape[0] == 0:
            raise ValueError(f"the file holds no trajectories (shape {raw.shape})")
        with np.errstate(over="ignore"):
            x = raw.astype(np.float32)
        if not np.isfinite(x).all():
            what = "values beyond float32's range" if np.isfinite(raw).all() else "NaN or infinity"
            raise ValueError(f"the trajectories hold {what}")
        system = system_for_shape(x.shape[2:], meta)
        if tuple(system.state_shape) != tuple(x.shape[2:]):
            raise ValueError(f"states of shape {x.shape[2:]} do not fit {system.title} {system.state_shape}")
        if x.shape[1] < 3:
            raise ValueError(f"trajectories of {x.shape[1]} states are too short (a window needs at least 3)")
        return x, meta, system

    def select_trajectory(self, index: int):
        x = self.state.dataset
        if x is None or not (0 <= index < x.shape[0]):
            return
        name = self.state.dataset_source.split(" (#")[0]
        self.state.set_truth(x[index], dataset=x, source=f"{name} (#{index} of {x.shape[0]})")
