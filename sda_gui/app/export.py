"""Exports of what the user sees: a PNG or SVG of a view, a GIF/MP4 of the animation.

Every file is written through ``sda_gui.core.atomic.atomic_path`` (a temporary beside
it, renamed when complete), so a failed export never leaves half a file. GIF frame
times are in milliseconds (imageio's pillow writer takes ``duration`` in ms; the GIF
format stores hundredths of a second, and viewers play anything under 20 ms slowly),
hence ``gif_frame_ms``. SVG comes from pyqtgraph's ``SVGExporter`` on the scene of the
view's plots: vector curves and axes, images embedded. pyqtgraph 0.14 cannot parse the
close-path command ``Z`` that Qt 6's SVG generator writes (pyqtgraph issue 3495), so
``export_svg`` hands its coordinate pass paths without it and puts it back after.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QWidget

from sda_gui.core.atomic import atomic_path

__all__ = ["export_png", "export_svg", "grab_rgb", "export_animation", "mp4_available", "gif_frame_ms",
           "find_scene_view"]

#: the shortest GIF frame viewers honour; shorter ones are played at ~10 fps
GIF_MIN_FRAME_MS = 20


def export_png(widget: QWidget, path) -> None:
    image = widget.grab()
    with atomic_path(path) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"could not write {path}")


def find_scene_view(widget: QWidget):
    """The pyqtgraph view inside ``widget`` to export as vector graphics (the largest shown one)."""
    import pyqtgraph as pg

    if isinstance(widget, pg.GraphicsView):
        return widget
    views = [v for v in widget.findChildren(pg.GraphicsView) if v.isVisibleTo(widget)]
    if not views:
        return None
    return max(views, key=lambda v: v.width() * v.height())


@contextlib.contextmanager
def _svg_close_paths():
    """pyqtgraph's SVG coordinate pass, made to pass over ``Z`` (close path) tokens.

    Its parser reads every token of a path as ``x,y``; a ``Z`` becomes ``Z0,0`` for it
    and plain ``Z`` again once it has transformed the coordinates.
    """
    module = importlib.import_module("pyqtgraph.exporters.SVGExporter")
    original = module.correctCoordinates

    def correct(node, defs, item, options):
        for el in node.getElementsByTagName("path"):
            d = el.getAttribute("d")
            if "Z" in d or "z" in d:
                el.setAttribute("d", " ".join("Z0,0" if tok in ("Z", "z") else tok for tok in d.split()))
        original(node, defs, item, options)
        for el in node.getElementsByTagName("path"):
            d = el.getAttribute("d")
            if "Z" in d:
                el.setAttribute("d", re.sub(r"Z[^\sA-Za-z]*", "Z", d))

    module.correctCoordinates = correct
    try:
        yield
    finally:
        module.correctCoordinates = original


def export_svg(widget: QWidget, path) -> None:
    """The plots of ``widget`` (a pyqtgraph view, or a view that holds one) as an SVG file."""
    from pyqtgraph.exporters import SVGExporter

    view = find_scene_view(widget)
    if view is None:
        raise ValueError("this view has no plots to export as SVG")
    QApplication.processEvents()   # a freshly shown view lays out before it is drawn
    try:
        with _svg_close_paths():
            data = SVGExporter(view.scene()).export(toBytes=True)
    except Exception as exc:   # noqa: BLE001 - the exporter's own error becomes one line
        raise OSError(f"could not render the view as SVG: {_one_line(exc)}") from exc
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def grab_rgb(widget: QWidget) -> np.ndarray:
    """The widget as an (H, W, 3) uint8 array."""
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=h * bpl).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def mp4_available() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401
        return True
    except ImportError:
        return False


def gif_frame_ms(fps: float) -> int:
    """Milliseconds per GIF frame for ``fps``: whole hundredths of a second (what GIF stores), ≥ 20 ms."""
    ms = 1000.0 / max(float(fps), 0.1)
    return int(max(GIF_MIN_FRAME_MS, round(ms / 10.0) * 10))


def export_animation(widget: QWidget, show_frame: Callable[[int], None], n_frames: int, path, fps: float = 10.0,
                     progress: Optional[Callable[[int, int], None]] = None, max_frames: int = 400) -> int:
    """Renders ``n_frames`` frames of ``widget`` (``show_frame(i)`` before each) to a GIF or MP4.

    Long animations are subsampled to ``max_frames`` so a GIF stays a reasonable size.
    A GIF plays at ``fps`` (see ``gif_frame_ms``), an MP4 at exactly ``fps``. Returns
    the number of frames written.
    """
    import imageio.v2 as imageio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mp4" and not mp4_available():
        raise RuntimeError("MP4 export needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                           "GIF works without it")
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"unsupported animation format '{suffix}' (use .gif or .mp4)")
    if n_frames < 1:
        raise ValueError("nothing to animate")
    idx = np.unique(np.linspace(0, n_frames - 1, min(n_frames, max_frames)).round().astype(int))
    frames = []
    for j, i in enumerate(idx):
        show_frame(int(i))
        QApplication.processEvents()
        frame = grab_rgb(widget)
        if suffix == ".mp4":  # codecs want even sizes
            frame = frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]
        if frames and frame.shape != frames[0].shape:
            # the widget may relayout while exporting (a banner, a resize): keep the first size
            frame = _fit(frame, frames[0].shape)
        frames.append(frame)
        if progress is not None:
            progress(j + 1, len(idx))
    try:
        with atomic_path(path) as tmp:
            if suffix == ".gif":
                imageio.mimsave(tmp, frames, duration=gif_frame_ms(fps), loop=0)
            else:   # sizes are even already: no rescaling to the codec's 16-pixel blocks
                imageio.mimsave(tmp, frames, fps=fps, macro_block_size=2)
    except OSError:
        raise
    except Exception as exc:   # noqa: BLE001 - a writer's own error becomes one line
        raise OSError(f"could not write {path.name}: {_one_line(exc)}") from exc
    return len(frames)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _fit(frame: np.ndarray, shape: tuple) -> np.ndarray:
    """Crops or pads (white) an (H, W, 3) frame to ``shape``."""
    out = np.full(shape, 255, dtype=np.uint8)
    h, w = min(shape[0], frame.shape[0]), min(shape[1], frame.shape[1])
    out[:h, :w] = frame[:h, :w]
    return out
