"""System panel: pick a system, set its parameters, simulate a truth, or load trajectories.

Simulation runs on the worker thread (a Kolmogorov truth takes from seconds on a GPU
to minutes on a CPU: the panel says how long before and while it runs); loading a file
is quick and runs inline so a bad file answers at once with one line, while the
current system, truth and pattern stay as they were. A file that names no system the
core can build becomes a data system of its own (``data_import``): its name joins the
system choice, the form shows its variables, Δt and normalisation, and it cannot be
simulated (it has no dynamics). A file with several candidate arrays asks which one
(``ask_variable``), data without a time step asks for Δt (``ask_dt``); the loading
lives in ``system_loading``. The parameter form and what the app knows of simulating
each system live in ``system_form``.

A new truth that would throw away unsaved work (a pattern on a grid of another
length, loaded observation values, results of another kind of state) is asked about
first when the user clicks (``ask=True``), through ``confirm``.

Until the engine has loaded the form offers the current system only (from its
description); ``AppState.engineReady`` brings in every system of the core.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from .common import default_confirm, format_eta, one_line
from .state import AppState
from .system_form import (DEFAULT_LENGTH, VISIBLE_PARAMS, ParamsForm, app_defaults, cuda_available, default_params,
                          expected_seconds, field_device, systems)
from .system_loading import TRUTH_FILTER, LoadActions
from .workers import JobRunner

__all__ = ["SystemPanel", "VISIBLE_PARAMS", "DEFAULT_LENGTH", "TRUTH_FILTER", "app_defaults", "expected_seconds",
           "is_data"]

def is_data(system) -> bool:
    """A data system: trajectories from a file, no dynamics to simulate."""
    return not getattr(system, "has_dynamics", True)


class SystemPanel(LoadActions, QWidget):
    """Controls for the dynamical system and its truth trajectory."""

    errorRaised = Signal(str)

    def __init__(self, state: AppState, runner: Optional[JobRunner] = None, settings=None, parent=None):
        super().__init__(parent)
        self.state = state
        self.runner = runner or JobRunner(self)
        self.settings = settings
        #: ``confirm(question) -> bool`` before work is discarded (the window routes it to its own)
        self.confirm = default_confirm(self)
        #: ``ask_variable(names) -> name or None`` and ``ask_dt(default) -> Δt or None`` (tests replace them)
        self.ask_variable = self._ask_variable
        self.ask_dt = self._ask_dt
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
        self.load_button.setToolTip("Load trajectories from .h5, .nc, .npz or .npy, shape (M, T, *state) or "
                                    "(T, *state); a file naming no system becomes a data system of its own")
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
            items = [(getattr(cls, "title", name) or name, name) for name, cls in systems().items()
                     if getattr(cls, "has_dynamics", True)]
            current = self.state.system
            if is_data(current) and current.name not in [n for _, n in items]:
                items.append((f"{current.title} (data)", current.name))
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

    def _data_selected(self) -> bool:
        """The choice shows the state's data system (nothing to simulate)."""
        return is_data(self.state.system) and self.system_name == self.state.system.name

    def _rebuild_form(self, values: Optional[dict] = None):
        name = self.system_name
        data = self._data_selected()
        if data:
            self.param_box.show_data(self.state.system)
        else:
            self.param_box.rebuild(name, self._pending(), values)
        if self.state.system.name != name:
            self.length_spin.setValue(DEFAULT_LENGTH.get(name, 64))
        self.simulate_button.setEnabled(not data and not self.runner.running)
        for w in (self.length_spin, self.seed_spin):      # what a simulation takes: nothing to set for data
            w.setEnabled(not data)
        self.simulate_button.setToolTip("A data system has no dynamics: pick another system to simulate" if data
                                        else "Simulate one trajectory of the system (on a background thread)")
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
        if self._data_selected():
            return base
        base.update(self.param_box.values())
        return base

    def _update_estimate(self):
        """Before simulating: how long it will take, where that is more than a blink."""
        name = self.system_name
        if name is None or self.runner.running or self._data_selected():
            self.estimate_label.setVisible(False)
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
        if self.state.engine_loaded:
            self._fill_systems()      # a data system joins the choice (and a replaced one leaves it)
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
        kind = " (data: no dynamics; train a model on it, assimilate with SDA)" if is_data(s) else ""
        self.info.setText(f"<b>{s.title}</b>{kind}, state {shape}{variables}, {L} states "
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
        if self._data_selected():
            raise ValueError(f"{self.state.system.title} is a data system (trajectories from a file, no dynamics): "
                             f"pick another system to simulate")
        from sda_gui.core.systems import make_system

        return make_system(self.system_name, **self.params())

    def simulate(self, ask: bool = False) -> bool:
        """Starts simulating a truth with the form's settings; False if busy, invalid or declined."""
        if self.runner.running:
            return False
        if self._data_selected():
            self.show_error(f"{self.state.system.title} is a data system (trajectories from a file, no dynamics): "
                            f"pick another system to simulate")
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
        self.simulate_button.setEnabled(not busy and not self._data_selected())
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
