"""The editor's observation box: how many cells are observed, their noise, and files.

Noise σ_y and seed, *Generate from truth* (``y = A(truth) + σ_y·noise`` on the observed
cells), whether the values are ready or out of date, and *Save…*/*Load…* of
observation files (``.npz``/``.h5``: mask, values, σ and the operator). Errors show
in one red line under the box and go out as ``errorRaised``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QDoubleSpinBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget)

__all__ = ["ObservationPanel", "OBS_FILTER"]

OBS_FILTER = "Observations (*.npz *.h5 *.hdf5);;All files (*)"


class ObservationPanel(QWidget):
    """Count, σ_y, seed, generate, values status, save/load, and the editor's error line."""

    errorRaised = Signal(str)

    def __init__(self, state, settings=None, parent=None):
        super().__init__(parent)
        self.state = state
        self.settings = settings
        box = QGroupBox("Observations")
        grid = QGridLayout(box)
        grid.setVerticalSpacing(4)
        self.count_label = QLabel()
        self.count_label.setWordWrap(True)
        self.std_spin = QDoubleSpinBox()
        self.std_spin.setDecimals(3)
        self.std_spin.setRange(0.001, 1000.0)
        self.std_spin.setSingleStep(0.1)
        self.std_spin.setToolTip("Observation noise standard deviation σ_y (physical units)")
        self.obs_seed_spin = QSpinBox()
        self.obs_seed_spin.setRange(0, 2**31 - 1)
        self.obs_seed_spin.setToolTip("Seed of the observation noise")
        self.generate_button = QPushButton("Generate from truth")
        self.generate_button.setToolTip("y = truth + σ·noise on the observed cells")
        self.values_label = QLabel()
        self.values_label.setWordWrap(True)
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Save the pattern, values and σ to an .npz or .h5 file")
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("Load observations from an .npz or .h5 file")
        grid.addWidget(self.count_label, 0, 0, 1, 2)
        grid.addWidget(QLabel("noise σ"), 1, 0)
        grid.addWidget(self.std_spin, 1, 1)
        grid.addWidget(QLabel("noise seed"), 2, 0)
        grid.addWidget(self.obs_seed_spin, 2, 1)
        grid.addWidget(self.generate_button, 3, 0, 1, 2)
        grid.addWidget(self.values_label, 4, 0, 1, 2)
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        grid.addLayout(files, 5, 0, 1, 2)
        grid.setColumnStretch(1, 1)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(box)
        layout.addWidget(self.error)

        self.generate_button.clicked.connect(lambda: self.generate())
        self.save_button.clicked.connect(lambda: self.save())
        self.load_button.clicked.connect(lambda: self.load())
        self.std_spin.valueChanged.connect(self.state.set_obs_std)
        self.obs_seed_spin.valueChanged.connect(self.state.set_obs_seed)

    # display ----------------------------------------------------------------------------
    def refresh(self):
        """Count, σ and the values status from the state."""
        st = self.state
        n, total = st.editor.count, st.mask.size
        self.count_label.setText(f"<b>{n}</b> / {total} observed ({100.0 * n / max(total, 1):.1f} %)")
        self.show_std_seed(update_seed=False)
        if st.obs_values is None:
            txt = "No values yet: they are drawn from the truth when you assimilate."
        elif st.values_stale:
            txt = "Values are out of date (σ or seed changed, or new cells): they are redrawn when you assimilate."
        else:
            txt = f"Values ready (σ = {st.obs_std:g}, seed {st.obs_seed})."
        self.values_label.setText(txt)

    def show_std_seed(self, update_seed: bool = True):
        """The state's σ (and seed) in the spin boxes, without echoing the change back."""
        spins = [(self.std_spin, self.state.obs_std)]
        if update_seed:
            spins.append((self.obs_seed_spin, self.state.obs_seed))
        for spin, value in spins:
            if spin.value() != value:
                spin.blockSignals(True)
                spin.setValue(value)
                spin.blockSignals(False)

    def show_error(self, text: str):
        self.error.setText(text)
        self.error.setVisible(bool(text))
        if text:
            self.errorRaised.emit(text)

    # actions ----------------------------------------------------------------------------
    def generate(self, seed: Optional[int] = None, std: Optional[float] = None) -> bool:
        if seed is not None:
            self.obs_seed_spin.setValue(seed)
        if std is not None:
            self.std_spin.setValue(std)
        try:
            self.state.generate_observations(self.obs_seed_spin.value(), self.std_spin.value())
        except ValueError as exc:
            self.show_error(str(exc))
            return False
        self.show_error("")
        return True

    def _ask_path(self, save: bool) -> Optional[str]:
        folder = str(self.settings.value("last_folder", "")) if self.settings is not None else ""
        if save:
            path, _ = QFileDialog.getSaveFileName(self, "Save observations", str(Path(folder) / "observations.npz"),
                                                  OBS_FILTER)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Load observations", folder, OBS_FILTER)
        if path and self.settings is not None:
            self.settings.setValue("last_folder", str(Path(path).parent))
        return path or None

    def save(self, path: Optional[str] = None) -> bool:
        path = path or self._ask_path(save=True)
        if not path:
            return False
        try:
            obs = self.state.observation()
            obs.save(path)
        except (ValueError, OSError) as exc:
            self.show_error(f"cannot save observations: {exc}")
            return False
        self.show_error("")
        through = f" through {obs.operator}" if obs.operator else ""
        self.state.message.emit(f"saved {obs.count} observations{through} to {path}")
        return True

    def load(self, path: Optional[str] = None) -> bool:
        path = path or self._ask_path(save=False)
        if not path:
            return False
        try:
            obs = self.state.load_observation(path)
        except (ValueError, OSError) as exc:
            self.show_error(f"cannot load {Path(path).name}: {exc}")
            return False
        self.show_error("")
        through = f" through {obs.operator}" if obs.operator else ""
        self.state.message.emit(f"loaded {obs.count} observations{through} from {Path(path).name}")
        return True
