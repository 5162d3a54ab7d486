"""The Training tab's live plot of the denoising score-matching loss.

Training (smoothed) and validation losses on a log scale against the optimiser step.
A run stopped before its first loss report has no curve: the plot then marks the step
it reached and says why nothing is drawn, rather than staying blank.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt

from .plotting import COLORS

__all__ = ["LossPlot"]


class LossPlot:
    """The plot widget (``widget``) and its curves; ``add`` one report, ``clear``, ``note``."""

    def __init__(self):
        self.widget = pg.PlotWidget(title="Denoising score-matching loss")
        self.plot = self.widget.getPlotItem()
        self.plot.setLabel("bottom", "optimiser step")
        self.plot.setLabel("left", "loss ‖ε_φ − ε‖² (log scale)")
        self.plot.setLogMode(y=True)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.addLegend(offset=(-10, 10))
        self.train_curve = self.plot.plot([], [], pen=pg.mkPen(COLORS["train"], width=2), name="training (smoothed)")
        self.val_curve = self.plot.plot([], [], pen=pg.mkPen(COLORS["val"], width=2), symbol="o", symbolSize=6,
                                        symbolBrush=COLORS["val"], name="validation")
        self.note = pg.TextItem(color=(90, 90, 90), anchor=(1.0, 0.5))   # ends left of the stop line
        self.note.setVisible(False)
        self.plot.addItem(self.note, ignoreBounds=True)
        self.stop_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(COLORS["train"], width=2, style=Qt.PenStyle.DashLine))
        self.stop_line.setVisible(False)
        self.plot.addItem(self.stop_line, ignoreBounds=True)
        self.steps, self.train, self.val_steps, self.val = [], [], [], []

    def add(self, step: int, train_loss: float, val_loss=None):
        self.steps.append(step)
        self.train.append(max(train_loss, 1e-12))
        self.train_curve.setData(self.steps, self.train)
        if val_loss is not None:
            self.val_steps.append(step)
            self.val.append(max(val_loss, 1e-12))
            self.val_curve.setData(self.val_steps, self.val)

    def clear(self):
        self.steps, self.train, self.val_steps, self.val = [], [], [], []
        self.train_curve.setData([], [])
        self.val_curve.setData([], [])
        self.note.setVisible(False)
        self.stop_line.setVisible(False)
        self.plot.getAxis("left").setStyle(showValues=True)
        self.plot.setLogMode(y=True)
        self.plot.enableAutoRange()

    def show_stop(self, steps: int, text: str):
        """The steps done (a line at the last one) and why there is no loss curve."""
        self.plot.setLogMode(y=False)
        self.plot.getAxis("left").setStyle(showValues=False)
        self.plot.setRange(xRange=(0, max(steps, 1) * 1.25), yRange=(0, 1), padding=0)
        self.stop_line.setPos(steps)
        self.stop_line.setVisible(True)
        self.note.setText(text)
        self.note.setPos(max(steps, 1) * 0.98, 0.5)
        self.note.setVisible(True)
