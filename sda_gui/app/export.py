"""Exports of what the user sees: a PNG of a widget, a GIF/MP4 of the animation."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QWidget

__all__ = ["export_png", "grab_rgb", "export_animation", "mp4_available"]


def export_png(widget: QWidget, path) -> None:
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")


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


def export_animation(widget: QWidget, show_frame: Callable[[int], None], n_frames: int, path, fps: float = 10.0,
                     progress: Optional[Callable[[int, int], None]] = None, max_frames: int = 400) -> int:
    """Renders ``n_frames`` frames of ``widget`` (``show_frame(i)`` before each) to a GIF or MP4.

    Long animations are subsampled to ``max_frames`` so a GIF stays a reasonable size.
    Returns the number of frames written.
    """
    import imageio.v2 as imageio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mp4" and not mp4_available():
        raise RuntimeError("MP4 export needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                           "GIF works without it")
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"unsupported animation format '{suffix}' (use .gif or .mp4)")
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
    if suffix == ".gif":
        imageio.mimsave(path, frames, duration=1.0 / max(fps, 0.1), loop=0)
    else:
        imageio.mimsave(path, frames, fps=fps)
    return len(frames)


def _fit(frame: np.ndarray, shape: tuple) -> np.ndarray:
    """Crops or pads (white) an (H, W, 3) frame to ``shape``."""
    out = np.full(shape, 255, dtype=np.uint8)
    h, w = min(shape[0], frame.shape[0]), min(shape[1], frame.shape[1])
    out[:h, :w] = frame[:h, :w]
    return out
