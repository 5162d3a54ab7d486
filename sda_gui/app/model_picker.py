"""The score model of the *Assimilate* panel: the shipped one of the system or a checkpoint file.

Lists the shipped models of the current system and the user's checkpoints, loads the
chosen one and checks that it fits the system; a file that cannot be used answers with
one line and the model in use stays. While the engine loads, the box says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from PySide6.QtWidgets import QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from . import engine
from .common import available_devices, one_line
from .state import AppState

__all__ = ["ModelPicker", "MODEL_FILTER"]

MODEL_FILTER = "SDA Studio models (*.pt);;All files (*)"


def _checkpoint():
    engine.ENGINE.wait()
    from sda_gui.core.diffusion import checkpoint

    return checkpoint


class ModelPicker(QGroupBox):
    """The model combo, a browse button and a line about the chosen model."""

    def __init__(self, state: AppState, show_error: Callable[[str], None], device: Callable[[], str],
                 settings=None, parent=None):
        super().__init__("Score model", parent)
        self.state = state
        self.show_error = show_error
        self.device = device            # the device the next run would use ("auto", "cpu", "cuda")
        self.settings = settings
        self.extra_models: list[str] = []

        self.model_combo = QComboBox()
        self.model_combo.setToolTip("Score model: the shipped one for this system, or a checkpoint file")
        self.model_combo.setMinimumContentsLength(14)
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.browse_button = QPushButton("…")
        self.browse_button.setToolTip("Choose a model checkpoint file (.pt)")
        self.browse_button.setFixedWidth(32)
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.browse_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.model_info)

        self.model_combo.activated.connect(lambda i: self.select_model(self.model_combo.itemData(i)))
        self.browse_button.clicked.connect(lambda: self.browse_model())

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
        for p in self.extra_models:
            self.model_combo.addItem(Path(p).name, p)
        self.model_combo.blockSignals(False)
        current = self.state.model
        if current is not None and self.fits(current):
            idx = self.model_combo.findData(self.state.model_path)
            if idx >= 0:
                self.model_combo.setCurrentIndex(idx)
            self.update_info()
            return
        # the loaded model belongs to another system: pick the first that fits
        for i in range(self.model_combo.count()):
            if self.select_model(self.model_combo.itemData(i), quiet=True):
                return
        self.state.set_model(None)

    def fits(self, model) -> bool:
        try:
            _checkpoint().check_model_for_system(model, self.state.system)
            return True
        except ValueError:
            return False

    def add_model_path(self, path: str, select: bool = True) -> bool:
        """Makes a checkpoint selectable (e.g. after training) and optionally loads it."""
        path = str(path)
        if path not in self.extra_models:
            self.extra_models.append(path)
        if self.model_combo.findData(path) < 0:
            self.model_combo.addItem(Path(path).name, path)
        return self.select_model(path) if select else True

    def use_model(self, model, path: str):
        """Puts an already loaded and checked model in use (a reopened session)."""
        path = str(path)
        if path not in self.extra_models and self.model_combo.findData(path) < 0:
            self.extra_models.append(path)
            self.model_combo.addItem(Path(path).name, path)
        self.state.set_model(model, path)
        self.model_combo.setCurrentIndex(self.model_combo.findData(path))

    def select_model(self, path: Optional[str], quiet: bool = False) -> bool:
        """Loads a checkpoint and checks it fits the current system; keeps the old model on error."""
        if not path:
            return False
        self.state.ensure_engine()
        try:
            ck = _checkpoint()
            model = ck.load_checkpoint(path)
            ck.check_model_for_system(model, self.state.system)
        except Exception as exc:  # noqa: BLE001 - any file that cannot be used answers in one line
            if not quiet:
                self.show_error(f"cannot use model {Path(path).name}: {one_line(exc)}")
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
            if path not in self.extra_models:
                self.extra_models.append(path)
            return True
        return False

    def update_info(self) -> bool:
        """Describes the chosen model; False when there is none."""
        m = self.state.model
        if m is None:
            if not self.state.engine_loaded:
                self.model_info.setText("<i>Loading the engine (torch) and the shipped model…</i>")
            else:
                self.model_info.setText(f"<i>No model for {self.state.system.title}: train one in the Training "
                                        "tab or choose a file.</i>")
            return False
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
            cost = _checkpoint().GPU_MODEL_CPU_COST.get(self.state.system.name)
            factor = f"about {cost:g}×" if cost else "several times"
            txt += (f"<br><b>Sized for a GPU:</b> on the CPU each step costs {factor} that of the "
                    f"shipped CPU model, {self.state.system.name}.pt (also in the list).")
        self.model_info.setText(txt)
        return True

    def _gpu_model_on_cpu(self) -> bool:
        """The shipped GPU model of this system is chosen, and the run would go to the CPU."""
        gpu = _checkpoint().GPU_DEFAULTS.get(self.state.system.name)
        if gpu is None or Path(self.state.model_path or "").name != gpu:
            return False
        device = self.device()
        return device == "cpu" or (device == "auto" and "cuda" not in available_devices())

    def set_enabled(self, enabled: bool):
        for w in (self.model_combo, self.browse_button):
            w.setEnabled(enabled)
