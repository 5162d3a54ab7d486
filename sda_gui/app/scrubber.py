"""The diffusion-time scrubber: the reverse diffusion of recorded samples, from noise to sample.

The sampler records, for a few samples, the state ``x(t)`` and the denoised
estimate ``x̂(t)`` at every step (``core.diffusion.sampler.Trajectory``). This
widget shows one frame at a time, picked with a slider that runs from ``t = 1``
(pure noise, left) to ``t = 0`` (the sample, right), and plays the frames like the
physical-time animation (``AnimationController``, no loop). Beside both it shows
the truth:

- a few variables (Lorenz-63): the curves of every variable over the window, one
  per recorded sample, the truth dashed;
- a ring (Lorenz-96): Hovmöller images (state × variable) of the chosen sample;
- a field (Kolmogorov): images of its first component at the chosen state.

Colour levels come from the truth (its 1st–99th percentiles), so noise saturates at
t = 1 and the picture settles as the sample emerges. *Export…* writes the frames as a
GIF or MP4 (``export.export_animation``). The widget draws; it computes nothing.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox, QVBoxLayout,
                               QWidget)

from .animation import AnimationController
from .plotting import COLORS, lut

__all__ = ["ScrubberWidget", "trajectory_arrays"]

#: pens of the recorded samples (one colour each, cycling)
SAMPLE_COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def trajectory_arrays(trajectory) -> tuple:
    """``(times (F,), x (F, R, L, *s), x_hat, steps (F,))`` as numpy, from a core ``Trajectory``."""
    def arr(v):
        return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, dtype=np.float32)

    steps = np.asarray(getattr(trajectory, "steps", range(len(trajectory.times))), dtype=int)
    return arr(trajectory.times), arr(trajectory.x), arr(trajectory.x_hat), steps


class ScrubberWidget(QWidget):
    """A diffusion-time slider over a recorded trajectory, with play/pause and export."""

    frameShown = Signal(int)

    def __init__(self, parent=None, fps: float = 8.0):
        super().__init__(parent)
        self.times = np.zeros(0, dtype=np.float32)
        self.x = self.x_hat = None
        self.truth: Optional[np.ndarray] = None
        self.steps = np.zeros(0, dtype=int)
        self.kind = "none"
        self.animation = AnimationController(self, fps=fps, loop=False)
        self.animation.frameChanged.connect(self.show_frame)
        self.animation.playingChanged.connect(self._playing_changed)

        self.title = QLabel("No recorded run yet: an assimilation that records its diffusion shows here.")
        self.title.setWordWrap(True)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setMinimumHeight(260)
        self.play_button = QPushButton("Play")
        self.play_button.setToolTip("Play the reverse diffusion from t = 1 (noise) to t = 0 (the sample)")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Diffusion time: t = 1 (pure noise) on the left, t = 0 (the sample) on the right")
        self.time_label = QLabel("t = –")
        self.time_label.setMinimumWidth(170)
        self.sample_spin = QSpinBox()
        self.sample_spin.setToolTip("Which recorded sample the images show")
        self.state_spin = QSpinBox()
        self.state_spin.setToolTip("Which state of the trajectory a field image shows")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save the reverse diffusion as a GIF or MP4")
        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(QLabel("t = 1"))
        controls.addWidget(self.slider, 1)
        controls.addWidget(QLabel("t = 0"))
        controls.addWidget(self.time_label)
        self.sample_label = QLabel("sample")
        controls.addWidget(self.sample_label)
        controls.addWidget(self.sample_spin)
        self.state_label = QLabel("state")
        controls.addWidget(self.state_label)
        controls.addWidget(self.state_spin)
        controls.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.graphics, 1)
        layout.addLayout(controls)

        self.slider.valueChanged.connect(self._slider_moved)
        self.play_button.clicked.connect(self.animation.toggle)
        self.sample_spin.valueChanged.connect(lambda _: self._redraw())
        self.state_spin.valueChanged.connect(lambda _: self._redraw())
        self.export_button.clicked.connect(lambda: self.export())
        self._items: dict = {}
        self._set_enabled(False)

    # data -------------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return int(len(self.times))

    @property
    def frame(self) -> int:
        return int(self.slider.value())

    @property
    def current_time(self) -> float:
        return float(self.times[self.frame]) if self.n_frames else float("nan")

    def set_trajectory(self, trajectory, truth: Optional[np.ndarray] = None, title: str = ""):
        """Shows a core ``Trajectory`` (or None to clear) beside ``truth`` ``(L, *s)``; starts at t = 1."""
        self.animation.pause()
        if trajectory is None:
            self.times, self.x, self.x_hat, self.truth = np.zeros(0, dtype=np.float32), None, None, None
            self.kind = "none"
            self.graphics.clear()
            self._items = {}
            self._set_enabled(False)
            return
        self.times, self.x, self.x_hat, self.steps = trajectory_arrays(trajectory)
        self.truth = None if truth is None else np.asarray(truth, dtype=np.float32)
        shape = self.x.shape[3:]
        self.kind = "curves" if len(shape) == 1 and shape[0] <= 4 else ("hovmoller" if len(shape) == 1 else "field")
        n_rec, length = self.x.shape[1], self.x.shape[2]
        for spin, top, value in ((self.sample_spin, n_rec - 1, 0), (self.state_spin, length - 1, length // 2)):
            spin.blockSignals(True)   # nothing to redraw before the plots are built
            spin.setRange(0, top)
            spin.setValue(value)
            spin.blockSignals(False)
        for w in (self.sample_label, self.sample_spin):
            w.setVisible(self.kind != "curves")
        for w in (self.state_label, self.state_spin):
            w.setVisible(self.kind == "field")
        total = int(self.steps[-1]) if len(self.steps) else self.n_frames - 1
        self.title.setText(title or f"Reverse diffusion of {n_rec} recorded sample{'s' if n_rec > 1 else ''}: "
                                    f"{total} steps, {self.n_frames} frames. Left: the state x(t); middle: the "
                                    "denoised estimate (the sampler's guess of the final sample at t); right: "
                                    "the truth.")
        self._build()
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, self.n_frames - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.animation.set_frame_count(self.n_frames)
        self._set_enabled(self.n_frames > 0)
        self.animation.set_frame(0)

    def _set_enabled(self, on: bool):
        for w in (self.play_button, self.slider, self.sample_spin, self.state_spin, self.export_button):
            w.setEnabled(on)

    def _levels(self) -> tuple:
        ref = self.truth if self.truth is not None else self.x[-1]
        lo, hi = np.nanpercentile(ref, [1, 99])
        return float(lo), float(hi if hi > lo else lo + 1.0)

    # plots ------------------------------------------------------------------------------
    def _build(self):
        self.graphics.clear()
        self._items = {"x": [], "x_hat": [], "truth": []}
        names = ("state x(t)", "denoised estimate", "truth")
        if self.kind == "curves":
            n_var = self.x.shape[3]
            plots = {}
            for col, key in enumerate(("x", "x_hat")):
                for v in range(n_var):
                    p = self.graphics.addPlot(row=v, col=col)
                    p.showGrid(x=True, y=True, alpha=0.2)
                    if v == 0:
                        p.setTitle(names[col])
                    if col == 0:
                        p.setLabel("left", "xyz"[v] if n_var == 3 else f"x{v}")
                    lo, hi = float(self.truth[:, v].min()) if self.truth is not None else -20.0, \
                        float(self.truth[:, v].max()) if self.truth is not None else 20.0
                    pad = 0.4 * (hi - lo) + 1.0
                    p.setYRange(lo - pad, hi + pad)
                    if self.truth is not None:
                        p.plot(self.truth[:, v], pen=pg.mkPen(COLORS["truth"], width=2, style=Qt.PenStyle.DashLine))
                    curves = [p.plot(pen=pg.mkPen(SAMPLE_COLORS[r % len(SAMPLE_COLORS)], width=1.5))
                              for r in range(self.x.shape[1])]
                    self._items[key].append(curves)
                    plots[(col, v)] = p
            for v in range(n_var):
                plots[(1, v)].setXLink(plots[(0, v)])
            return
        levels = self._levels()
        for col, key in enumerate(("x", "x_hat", "truth")):
            p = self.graphics.addPlot(row=0, col=col)
            p.setTitle(names[col])
            p.setAspectLocked(self.kind == "field")
            if self.kind == "hovmoller":
                p.setLabel("left", "state (time)")
                p.setLabel("bottom", "variable")
                p.invertY(True)
            img = pg.ImageItem()
            img.setLookupTable(lut("CET-D1" if self.kind == "field" else "viridis"))
            img.setLevels(levels)
            p.addItem(img)
            self._items[key] = img
        if self.truth is None:
            self._items["truth"].clear()

    def _image(self, a: np.ndarray) -> np.ndarray:
        """What an image shows of one sample ``(L, *s)``: the whole Hovmöller, or the chosen state's first field."""
        return a if self.kind == "hovmoller" else a[self.state_spin.value(), 0]

    def show_frame(self, i: int):
        """Draws frame ``i`` (0: t = 1, noise; last: t = 0, the sample)."""
        if not self.n_frames:
            return
        i = int(min(max(i, 0), self.n_frames - 1))
        if self.slider.value() != i:
            self.slider.blockSignals(True)
            self.slider.setValue(i)
            self.slider.blockSignals(False)
        if self.kind == "curves":
            for key, data in (("x", self.x), ("x_hat", self.x_hat)):
                for v, curves in enumerate(self._items[key]):
                    for r, curve in enumerate(curves):
                        curve.setData(data[i, r, :, v])
        else:
            r = self.sample_spin.value()
            for key, data in (("x", self.x), ("x_hat", self.x_hat)):
                self._items[key].setImage(self._image(data[i, r]), autoLevels=False)
            if self.truth is not None:
                self._items["truth"].setImage(self._image(self.truth), autoLevels=False)
        total = int(self.steps[-1]) if len(self.steps) else self.n_frames - 1
        self.time_label.setText(f"t = {self.times[i]:.3f} (step {int(self.steps[i])} of {total})")
        self.frameShown.emit(i)

    def _redraw(self):
        if self.n_frames:
            self.show_frame(self.frame)

    def _slider_moved(self, value: int):
        self.animation.pause()
        self.animation.frame = int(value)
        self.show_frame(value)

    def _playing_changed(self, playing: bool):
        self.play_button.setText("Pause" if playing else "Play")

    # playback ---------------------------------------------------------------------------
    def play(self):
        self.animation.play()

    def pause(self):
        self.animation.pause()

    def set_frame(self, i: int):
        self.animation.set_frame(i)

    def export(self, path: Optional[str] = None, fps: Optional[float] = None) -> int:
        """Writes every frame to ``path`` (.gif or .mp4; asks when None); returns the frames written."""
        if not self.n_frames:
            return 0
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export the reverse diffusion", "diffusion.gif",
                                                  "Animations (*.gif *.mp4)")
            if not path:
                return 0
        from .export import export_animation

        self.pause()
        start = self.frame
        try:
            return export_animation(self.graphics, self.show_frame, self.n_frames, path,
                                    fps=fps or self.animation.fps)
        finally:
            self.show_frame(start)
