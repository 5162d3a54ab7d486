"""The system panel's loading: trajectory files (the truth and training data) and system plugin files.

Mixed into ``SystemPanel`` (uses its state, settings, form and error line). Loading is
quick and runs inline, so a bad file answers at once with one line while the current
system, truth and pattern stay as they were. A file naming no system the core builds
becomes a data system of its own (``data_import``); a user's load asks which array
when there are several (``ask_variable``) and Δt when the data states none
(``ask_dt``), each a small dialog a test replaces; a scripted load asks nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtWidgets import QFileDialog, QInputDialog

from .common import one_line
from .data_import import load as load_trajectory_file

__all__ = ["LoadActions", "TRUTH_FILTER"]

TRUTH_FILTER = "Trajectories (*.h5 *.hdf5 *.nc *.nc4 *.npz *.npy);;All files (*)"


class LoadActions:
    """File loading of ``SystemPanel``."""

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

    def _ask_variable(self, names: list) -> Optional[str]:
        name, ok = QInputDialog.getItem(self, "Choose the trajectories",
                                        "The file holds several arrays; which one holds the trajectories?",
                                        names, 0, False)
        return name if ok and name else None

    def _ask_dt(self, default: float) -> Optional[float]:
        value, ok = QInputDialog.getDouble(self, "Time step of the data",
                                           "The file states no time step. Δt between states:", default,
                                           1e-9, 1e9, 6)
        return float(value) if ok else None

    def load_file(self, path: Optional[str] = None, ask: bool = False, variable: Optional[str] = None,
                  dt: Optional[float] = None) -> bool:
        """Loads trajectories as the truth (and training data); on failure shows why and keeps all.

        A file naming no system the core builds becomes a data system; ``variable``/``dt``
        answer the questions a file may raise. A user's load (``ask``, or no ``path``: the file
        dialog) asks them with ``ask_variable``/``ask_dt``; a scripted one never opens a dialog:
        several arrays are an error naming them, a missing Δt is ``DEFAULT_DT`` (with a note).
        """
        interactive = ask or path is None
        if path is None:
            folder = self.settings.value("last_folder", "") if self.settings is not None else ""
            path, _ = QFileDialog.getOpenFileName(self, "Load trajectories", str(folder), TRUTH_FILTER)
            if not path:
                return False
        try:
            loaded = self._read(path, variable, dt, interactive)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
            text = "not enough memory to load it" if isinstance(exc, MemoryError) else one_line(exc)
            # the core's messages already name the file; don't say it twice
            self.show_error(text if Path(path).name in text else f"cannot load {Path(path).name}: {text}")
            return False
        if loaded is None:              # a question was cancelled: nothing changes
            return False
        x, system = loaded.trajectories, loaded.system
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
        if loaded.note:
            self.state.message.emit(loaded.note)
        return True

    def _read(self, path: str, variable: Optional[str] = None, dt: Optional[float] = None,
              interactive: bool = False):
        """The checked ``data_import.Loaded`` of a file (None: a question was cancelled); raises one line."""
        self.state.ensure_engine()
        return load_trajectory_file(path, ask_variable=self.ask_variable if interactive else None,
                                    ask_dt=self.ask_dt if interactive else None, variable=variable, dt=dt)

    def select_trajectory(self, index: int):
        x = self.state.dataset
        if x is None or not (0 <= index < x.shape[0]):
            return
        name = self.state.dataset_source.split(" (#")[0]
        self.state.set_truth(x[index], dataset=x, source=f"{name} (#{index} of {x.shape[0]})")
