"""The main window's file dialogs and exports: PNG of the current view, GIF/MP4 of the results,
the observations.

Each says what went wrong in one line in the status bar; a failed write leaves the
previous file as it was (the writers write a temporary beside it and rename it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtWidgets import QFileDialog

from .common import one_line

__all__ = ["FileActions"]


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
