"""System panel: pick a built-in system, set its parameters, simulate a truth, or load one.

Simulation runs on the worker thread (a Kolmogorov truth takes from seconds on a GPU
to minutes on a CPU: the panel says how long before and while it runs); loading a file
is quick and runs inline so a bad file answers at once with one line, while the
current system, truth and pattern stay as they were.

Until the engine has loaded the form offers the current system only (from its
description); ``AppState.engineReady`` brings in every system of the core.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from .common import format_eta
from . import engine
from .state import AppState, system_for_shape
from .workers import JobRunner

__all__ = ["SystemPanel", "VISIBLE_PARAMS", "DEFAULT_LENGTH", "app_defaults", "expected_seconds"]

#: parameters offered in the form (others keep their defaults): (label, low, high) for a
#: number, (label, [choices]) for a choice; the solver's plumbing (dt, burn-in, noise) stays hidden
VISIBLE_PARAMS = {
    "lorenz63": {"sigma": ("σ", 0.1, 100.0), "rho": ("ρ", 0.1, 200.0), "beta": ("β", 0.01, 20.0)},
    "lorenz96": {"n": ("N (variables)", 4, 400), "forcing": ("F (forcing)", -50.0, 50.0)},
    "kolmogorov": {"resolution": ("simulation grid", [128, 256]), "size": ("state grid (u, v)", [64, 32]),
                   "reynolds": ("Re", 100.0, 10000.0), "drag": ("drag α", 0.0, 10.0)},
}
DEFAULT_LENGTH = {"lorenz63": 65, "lorenz96": 64, "kolmogorov": 16}
TRUTH_FILTER = "Trajectories (*.h5 *.hdf5 *.npz *.npy);;All files (*)"
#: Kolmogorov states per second of one trajectory on a CPU, measured at 128² and 256²;
#: the cost grows about as N^2.9 (FFTs on N² points, and a CFL step shrinking as 1/N)
KOLMOGOROV_CPU_RATE = {128: 6.0, 256: 0.8}


def _cuda() -> bool:
    engine.ENGINE.wait()
    import torch

    return torch.cuda.is_available()


def _systems() -> dict:
    engine.ENGINE.wait()
    from sda_gui.core.systems import SYSTEMS

    return SYSTEMS


def _field_device(system) -> str:
    """Fields simulate on the GPU when there is one; a few ODE variables are faster on the CPU."""
    return "cuda" if len(system.state_shape) >= 2 and _cuda() else "cpu"


def app_defaults(name: str) -> dict:
    """Defaults of the form where they differ from the constructor's: a 256² Kolmogorov
    simulation takes minutes on a CPU, 128² gives the same 64² states in seconds."""
    if name == "kolmogorov":
        return {"resolution": 256 if _cuda() else 128}
    return {}


def expected_seconds(name: str, params: dict, length: int, device: str = "cpu") -> Optional[float]:
    """Rough time to simulate one truth, where it is long enough to matter (None: unknown or quick)."""
    if name != "kolmogorov" or device != "cpu":
        return None
    res = int(params.get("resolution", 256))
    rate = KOLMOGOROV_CPU_RATE.get(res, KOLMOGOROV_CPU_RATE[128] * (128 / max(res, 1)) ** 2.9)
    return (int(params.get("burn_in", 250)) + int(length)) / rate


def _default_params(name: str, pending=None) -> dict:
    """The constructor's defaults (with the app's), or a not yet loaded system's parameters."""
    if pending is not None and pending.name == name:
        return {**dict(pending.params), **app_defaults(name)}
    cls = _systems()[name]
    sig = inspect.signature(cls.__init__)
    out = {k: p.default for k, p in sig.parameters.items()
           if k != "self" and p.default is not inspect.Parameter.empty}
    return {**out, **app_defaults(name)}


def _field_value(w: QWidget):
    return w.currentData() if isinstance(w, QComboBox) else w.value()


def _visible_params(name: str, pending=None) -> dict:
    if name in VISIBLE_PARAMS:
        return VISIBLE_PARAMS[name]
    # unknown systems: offer their numeric parameters, except the plumbing ones
    out = {}
    for k, v in _default_params(name, pending).items():
        if k in ("burn_in", "dt", "device") or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        out[k] = (k, 1 if isinstance(v, int) else -1e6, 4096 if isinstance(v, int) else 1e6)
    return out


class SystemPanel(QWidget):
    """Controls for the dynamical system and its truth trajectory."""

    errorRaised = Signal(str)

    def __init__(self, state: AppState, runner: Optional[JobRunner] = None, settings=None, parent=None):
        super().__init__(parent)
        self.state = state
        self.runner = runner or JobRunner(self)
        self.settings = settings
        self._fields: dict[str, QWidget] = {}
        self._pending_system = None

        self.system_combo = QComboBox()
        self._fill_systems()
        self.system_combo.setToolTip("The dynamical system whose trajectories you assimilate")
        self.param_box = QGroupBox("Parameters")
        self.param_form = QFormLayout(self.param_box)
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
        self.simulate_button.clicked.connect(lambda: self.simulate())
        self.cancel_button.clicked.connect(self.cancel)
        self.load_button.clicked.connect(lambda: self.load_file())
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
            items = [(getattr(cls, "title", name) or name, name) for name, cls in _systems().items()]
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

    def set_system_name(self, name: str):
        i = self.system_combo.findData(name)
        if i < 0:
            raise ValueError(f"unknown system '{name}'")
        self.system_combo.setCurrentIndex(i)

    def _rebuild_form(self, values: Optional[dict] = None):
        while self.param_form.rowCount():
            self.param_form.removeRow(0)
        self._fields.clear()
        name = self.system_name
        pending = self._pending()
        defaults = _default_params(name, pending)
        values = {**defaults, **(values or {})}
        for key, spec in _visible_params(name, pending).items():
            if len(spec) == 2:
                label, choices = spec
                w = self._choice(key, choices, values[key])
                self._fields[key] = w
                self.param_form.addRow(label, w)
                continue
            label, lo, hi = spec
            if isinstance(defaults.get(key), int) and not isinstance(defaults.get(key), bool):
                w = QSpinBox()
                w.setRange(int(lo), int(hi))
                w.setValue(int(values[key]))
            else:
                w = QDoubleSpinBox()
                w.setDecimals(1 if float(hi) >= 1000 else 4)   # Re = 1000.0, not 1000.0000
                w.setRange(float(lo), float(hi))
                w.setSingleStep(0.1)
                w.setValue(float(values[key]))
            self._fields[key] = w
            self.param_form.addRow(label, w)
        dt = values.get("dt")
        if dt is not None:
            label = QLabel(f"{dt:g} (fixed)")
            label.setToolTip("The time between states is fixed: score models are trained for it")
            self.param_form.addRow("Δt per state", label)
        if self.state.system.name != name:
            self.length_spin.setValue(DEFAULT_LENGTH.get(name, 64))
        self._update_estimate()

    def _choice(self, key: str, choices: list, value) -> QComboBox:
        w = QComboBox()
        for c in choices:
            w.addItem(_choice_label(key, c), c)
        self._select(w, key, value)
        w.currentIndexChanged.connect(lambda _: self._update_estimate())
        if key == "resolution":
            w.setToolTip("Grid the flow is simulated on, before block-averaging to the state grid; "
                         "256² is the paper's setting and takes minutes on a CPU, 128² seconds")
        elif key == "size":
            w.setToolTip("Grid of the velocity states (u, v) that are observed and assimilated; "
                         "a score model is trained for one size")
        return w

    @staticmethod
    def _select(combo: QComboBox, key: str, value):
        """Selects ``value``, adding it when it is not among the offered choices (a loaded system)."""
        i = combo.findData(value)
        if i < 0:
            combo.addItem(_choice_label(key, value), value)
            i = combo.count() - 1
        combo.setCurrentIndex(i)

    @property
    def param_names(self) -> list[str]:
        """The parameters the form offers, in order."""
        return list(self._fields)

    def set_param(self, key: str, value):
        w = self._fields[key]
        if isinstance(w, QComboBox):
            self._select(w, key, value)
        else:
            w.setValue(value)

    def params(self) -> dict:
        """The system parameters in the form, on top of the current system's (e.g. dt, noise)."""
        base = dict(self.state.system.params) if self.state.system.name == self.system_name else {}
        base.update({k: _field_value(w) for k, w in self._fields.items()})
        return base

    def _update_estimate(self):
        """Before simulating: how long it will take, where that is more than a blink."""
        name = self.system_name
        if name is None or self.runner.running:
            return
        params = {**_default_params(name, self._pending()), **self.params()}
        device = "cuda" if name == "kolmogorov" and _cuda() else "cpu"
        seconds = expected_seconds(name, params, self.length_spin.value(), device)
        if device == "cuda":
            text = "Simulated on the GPU: the progress bar shows the time left."
        elif seconds is None:
            text = ""
        else:
            burn = int(params.get("burn_in", 0))
            text = (f"Simulating {burn} spin-up + {self.length_spin.value()} states at "
                    f"{params.get('resolution')}² takes about {format_eta(seconds)} on this CPU.")
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
        src = self.state.dataset_source or "simulated"
        self.info.setText(f"<b>{s.title}</b>, state {shape}, {L} states "
                          f"(t = 0 … {(L - 1) * s.dt:g}). Truth: {src}.")

    def show_error(self, text: str):
        self.error.setText(text)
        self.error.setVisible(bool(text))
        if text:
            self.errorRaised.emit(text)

    # simulate ---------------------------------------------------------------------------
    def make_system(self):
        self.state.ensure_engine()
        from sda_gui.core.systems import make_system

        return make_system(self.system_name, **self.params())

    def simulate(self) -> bool:
        """Starts simulating a truth with the form's settings; False if busy or invalid."""
        if self.runner.running:
            return False
        try:
            system = self.make_system()
        except (ValueError, TypeError) as exc:
            self.show_error(f"invalid parameters: {exc}")
            return False
        length, seed = int(self.length_spin.value()), int(self.seed_spin.value())
        self.show_error("")
        self._pending_system = system

        device = _field_device(system)

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
        self.traj_spin.setEnabled(False)
        self.state.set_truth(truth, system=system, dataset=None, source=f"simulated, seed {self.seed_spin.value()}")

    def _on_failed(self, text):
        self._busy(False)
        self.show_error(f"simulation failed: {text}")

    def _on_cancelled(self):
        self._busy(False)
        self.show_error("simulation cancelled; the previous truth is kept")

    # load -------------------------------------------------------------------------------
    def load_file(self, path: Optional[str] = None) -> bool:
        """Loads trajectories as the truth (and training data); on failure shows why and keeps all."""
        if path is None:
            folder = self.settings.value("last_folder", "") if self.settings is not None else ""
            path, _ = QFileDialog.getOpenFileName(self, "Load trajectories", str(folder), TRUTH_FILTER)
            if not path:
                return False
        try:
            self.state.ensure_engine()
            from sda_gui.core.datasets import load_trajectories

            x, meta = load_trajectories(path)
            x = np.asarray(x, dtype=np.float32)
            if x.ndim < 3:
                raise ValueError(f"expected trajectories (M, T, *state) or (T, *state), got shape {x.shape}")
            system = system_for_shape(x.shape[2:], meta)
            if tuple(system.state_shape) != tuple(x.shape[2:]):
                raise ValueError(f"states of shape {x.shape[2:]} do not fit {system.title} {system.state_shape}")
            if x.shape[1] < 3:
                raise ValueError(f"trajectories of {x.shape[1]} states are too short")
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
            text = _one_line(exc)
            # the core's messages already name the file; don't say it twice
            self.show_error(text if Path(path).name in text else f"cannot load {Path(path).name}: {text}")
            return False
        self.show_error("")
        if self.settings is not None:
            self.settings.setValue("last_folder", str(Path(path).parent))
        self._loaded = x
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

    def select_trajectory(self, index: int):
        x = self.state.dataset
        if x is None or not (0 <= index < x.shape[0]):
            return
        name = self.state.dataset_source.split(" (#")[0]
        self.state.set_truth(x[index], dataset=x, source=f"{name} (#{index} of {x.shape[0]})")


def _choice_label(key: str, value) -> str:
    return f"{value}²" if key in ("resolution", "size") else str(value)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
