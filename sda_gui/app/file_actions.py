"""The main window's file dialogs and exports: PNG of the current view, GIF/MP4 of the results,
the observations, and the data: the truth and the posterior samples as netCDF (or HDF5/npz).

The data exports go through the core's writers: ``.nc`` through ``core.netcdf``
(dimensions ``trajectory``/``sample``, ``time``, the system's state dimensions, with
their coordinates, ``units`` and the system and provenance as attributes), ``.h5``/``.npz``
through ``core.datasets``; both write atomically (``core.atomic``). They run inline: the
file is one array the app already holds (a posterior of 16 Kolmogorov samples of 16
states of 2×64² is 8 MB), built in memory and written in well under a second.

Each says what went wrong in one line in the status bar; a failed write leaves the
previous file as it was (the writers write a temporary beside it and rename it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtWidgets import QFileDialog

from .common import one_line

__all__ = ["FileActions", "DATA_FILTER"]

DATA_FILTER = "netCDF (*.nc);;HDF5 (*.h5 *.hdf5);;NumPy archives (*.npz)"


class FileActions:
    """Mixed into ``MainWindow`` (uses its settings, views and message methods)."""

    def _ask(self, save: bool, title: str, filt: str, default_name: str = "") -> Optional[str]:
        folder = str(self.settings.value("last_folder", ""))
        if save:
            path, _ = QFileDialog.getSaveFileName(self, title, str(Path(folder) / default_name), filt)
        else:
            path, _ = QFileDialog.getOpenFileName(self, title, folder, filt)
        if path:
            self.settings.setValue("last_folder", str(Path(path).parent))
        return path or None

    def save_observations(self, path: Optional[str] = None) -> bool:
        """File › Save observations… (``Observation.save``); a failure is one line, the old file stays."""
        try:
            return bool(self.grid_editor.save_observations(path))
        except Exception as exc:  # noqa: BLE001 - whatever the writer raises, in one line
            self.show_error(f"cannot save observations: {one_line(exc)}")
            return False

    def export_view_png(self, path: Optional[str] = None) -> bool:
        """Saves the current central view (grid, results or training curves) as a PNG."""
        return self._export_view("png", path)

    def export_view_svg(self, path: Optional[str] = None) -> bool:
        """Saves the current central view as an SVG (vector graphics, for papers)."""
        return self._export_view("svg", path)

    def _export_view(self, fmt: str, path: Optional[str]) -> bool:
        path = path or self._ask(True, f"Export view as {fmt.upper()}", f"{fmt.upper()} images (*.{fmt})",
                                 f"view.{fmt}")
        if not path:
            return False
        from . import export   # on use: the writers need the core, the window does not

        try:
            getattr(export, f"export_{fmt}")(self.tabs.currentWidget(), path)
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            self.show_error(f"cannot export the view: {one_line(exc)}")
            return False
        self.show_message(f"exported {path}")
        return True

    def export_animation(self, path: Optional[str] = None, fps: Optional[float] = None, max_frames: int = 400) -> bool:
        if self.results_view.shown is None:
            self.show_error("nothing to animate yet: assimilate first")
            return False
        from .export import export_animation, mp4_available

        if path is None:
            filt = "GIF animations (*.gif)" + (";;MP4 videos (*.mp4)" if mp4_available() else "")
            path = self._ask(True, "Export animation", filt, "animation.gif")
            if not path:
                return False
        view = self.results_view
        view.pause()
        self.tabs.setCurrentWidget(view)
        start = view.frame
        try:
            n = export_animation(view.plot_widget(), view.set_frame, view.controller.n_frames, path,
                                 fps=fps or view.controller.fps,
                                 progress=lambda i, n: self.show_message(f"exporting frame {i}/{n}…"),
                                 max_frames=max_frames)
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            self.show_error(f"cannot export the animation: {one_line(exc)}")
            return False
        finally:
            view.set_frame(start)
        self.show_message(f"exported {n} frames to {path}")
        return True

    # data exports ---------------------------------------------------------------------------
    def _data_path(self, path: Optional[str], title: str, default_name: str) -> Optional[str]:
        path = path or self._ask(True, title, DATA_FILTER, default_name)
        if path and not Path(path).suffix:
            path += ".nc"
        return path

    def _provenance(self, **extra) -> dict:
        from sda_gui.core.provenance import provenance

        st = self.state
        return provenance(system=st.system, model_path=st.model_path, **extra)

    def export_truth(self, path: Optional[str] = None) -> bool:
        """File › Export › Truth…: the truth trajectory ``(1, L, *s)`` with its system and coordinates."""
        st = self.state
        if st.truth is None:
            self.show_error("no truth to export: simulate or load one first")
            return False
        path = self._data_path(path, "Export truth", "truth.nc")
        if not path:
            return False
        from sda_gui.core.datasets import save_trajectories

        try:
            save_trajectories(path, st.truth[None], st.system, self._provenance(truth=st.dataset_source or "simulated"))
        except Exception as exc:  # noqa: BLE001 - the writer's one line (full disk, bad suffix, no xarray)
            self.show_error(f"cannot export the truth: {one_line(exc)}")
            return False
        self.show_message(f"exported the truth ({st.truth.shape[0]} states) to {path}")
        return True

    def export_samples(self, path: Optional[str] = None) -> bool:
        """File › Export › Posterior samples…: ``samples(sample, time, *state)`` of the last results."""
        st = self.state
        results = st.results
        if results is None:
            self.show_error("no posterior samples to export yet: assimilate first")
            return False
        path = self._data_path(path, "Export posterior samples", "posterior.nc")
        if not path:
            return False
        samples = np.asarray(results.samples, dtype=np.float32)
        # results outlive a change of system only for states of the same shape (the view's rule)
        system = st.system if tuple(samples.shape[2:]) == tuple(st.state_shape) else None
        meta = self._provenance(settings=dict(results.settings or {}), operator=results.observation.operator or "")
        try:
            from sda_gui.core.netcdf import is_netcdf, write_samples_nc

            if is_netcdf(path):
                write_samples_nc(path, samples, system, meta)
            else:
                import json

                from sda_gui.core.datasets import write_arrays

                attrs = {"meta": json.dumps(meta, default=str)}
                if system is not None:
                    attrs.update(system=system.name, params=json.dumps(system.params, default=str))
                write_arrays(path, {"samples": samples}, attrs)
        except Exception as exc:  # noqa: BLE001 - the writer's one line
            self.show_error(f"cannot export the posterior samples: {one_line(exc)}")
            return False
        self.show_message(f"exported {samples.shape[0]} posterior samples to {path}")
        return True
