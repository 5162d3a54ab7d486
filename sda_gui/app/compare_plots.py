"""The Compare view's plots: every method's posterior mean and spread beside the truth, and rank histograms.

A view only: it draws arrays the Compare panel hands it (computed on the worker).
Every method gets the *same* panels and colour scales, so a difference in the
picture is a difference between the methods:

- a few variables (Lorenz-63): one plot per variable against time — the truth
  (black), the observations (orange), and each method's mean with a band of
  ± one spread, in the method's colour;
- many variables on a ring (Lorenz-96): Hovmöller diagrams (time × variable) of
  the truth and of each method's mean on the truth's colour scale, and below each
  mean its spread on one scale shared by all methods;
- a 2-D field (Kolmogorov): the first channel at the chosen time, truth, each
  mean and each spread, the same way.

The bottom row holds each method's rank histogram: the truth's rank among the
members over all entries; flat when the spread is right, ∪-shaped when the
members are too close together (over-confident), ∩-shaped when too far apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from .plotting import COLORS, lut, robust_levels

__all__ = ["ComparePlots", "MethodCurves", "METHOD_COLORS"]

#: one colour per method, in the order they are compared (tab10 without the truth's black)
METHOD_COLORS = [(214, 39, 40), (31, 119, 180), (44, 160, 44), (148, 103, 189), (140, 86, 75),
                 (227, 119, 194), (188, 189, 34), (23, 190, 207), (255, 127, 14)]


@dataclass
class MethodCurves:
    """What the view draws of one method: its title, mean, spread and rank counts."""

    title: str
    mean: np.ndarray          # (L, *state_shape)
    spread: np.ndarray        # (L, *state_shape)
    rank_counts: np.ndarray   # (N + 1,)


def _rgba(color, alpha: int) -> tuple:
    return (*color[:3], alpha)


class ComparePlots(pg.GraphicsLayoutWidget):
    """Redrawn whole on each ``show``; ``time_index`` picks the field's frame."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(320)
        self._args = None
        self._title_size = "11pt"
        self.plots: list = []      # every PlotItem drawn, for tests and exports
        self.images: list = []     # (title, ImageItem) pairs

    # ------------------------------------------------------------------ entry point
    def show_comparison(self, truth: np.ndarray, methods: list, variable_names: list, dt: float = 1.0,
                        observed: Optional[tuple] = None, time_index: int = 0) -> None:
        """``observed``: ``(times, variable, values)`` of direct observations (low-dim systems), or None."""
        self._args = (truth, methods, variable_names, dt, observed)
        self.clear()
        self.plots, self.images = [], []
        if not methods:
            return
        # a column is as wide as its title: with many methods smaller titles keep every column in view
        self._title_size = "11pt" if len(methods) <= 3 else "9pt"
        truth = np.asarray(truth, dtype=np.float64)
        if truth.ndim == 2 and truth.shape[1] <= 4:
            self._low_dim(truth, methods, variable_names, dt, observed)
        elif truth.ndim == 2:
            self._ring(truth, methods, dt)
        else:
            self._field(truth, methods, variable_names, int(np.clip(time_index, 0, len(truth) - 1)))
        self._ranks(methods, beside_truth=not (truth.ndim == 2 and truth.shape[1] <= 4))

    def set_time_index(self, index: int) -> None:
        if self._args is not None and np.asarray(self._args[0]).ndim > 2:
            self.show_comparison(*self._args, time_index=index)

    # ------------------------------------------------------------------ kinds of state
    def _low_dim(self, truth, methods, names, dt, observed):
        t = np.arange(len(truth)) * dt
        span = max(1, len(methods))
        # the legend is a line of its own above the plots, so it never covers a curve
        keys = [f"<span style='color:rgb{METHOD_COLORS[m % len(METHOD_COLORS)]}'>━━ {c.title} (mean ± spread)</span>"
                for m, c in enumerate(methods)]
        keys += ["<span style='color:black'>━━ truth</span>"]
        if observed is not None:
            keys += [f"<span style='color:rgb{COLORS['obs'][:3]}'>● observations</span>"]
        self.addLabel("Posterior mean ± spread of each method against the truth<br>" + " &nbsp; ".join(keys),
                      row=0, col=0, colspan=span)
        for j in range(truth.shape[1]):
            name = names[j] if j < len(names) else f"variable {j}"
            plot = self.addPlot(row=j + 1, col=0, colspan=span)
            plot.setLabel("left", name)
            if j == truth.shape[1] - 1:
                plot.setLabel("bottom", "time")
            plot.setMenuEnabled(False)
            for axis in ("left", "bottom"):
                plot.getAxis(axis).enableAutoSIPrefix(False)
            for m, curves in enumerate(methods):
                color = METHOD_COLORS[m % len(METHOD_COLORS)]
                mean, spread = curves.mean[:, j], curves.spread[:, j]
                lo = pg.PlotDataItem(t, mean - spread, pen=pg.mkPen(_rgba(color, 90), width=1))
                hi = pg.PlotDataItem(t, mean + spread, pen=pg.mkPen(_rgba(color, 90), width=1))
                plot.addItem(lo)
                plot.addItem(hi)
                plot.addItem(pg.FillBetweenItem(lo, hi, brush=_rgba(color, 50)))
                plot.addItem(pg.PlotDataItem(t, mean, pen=pg.mkPen(color, width=2)))
            plot.addItem(pg.PlotDataItem(t, truth[:, j], pen=pg.mkPen(COLORS["truth"], width=2)))
            if observed is not None:
                times, var, values = observed
                sel = var == j
                if sel.any():
                    plot.addItem(pg.ScatterPlotItem(times[sel] * dt, values[sel], size=7, pen=None,
                                                    brush=COLORS["obs"]))
            self.plots.append(plot)

    def _image(self, row, col, title, data, levels, lut_name, rect, ylabel, xlabel):
        plot = self.addPlot(row=row, col=col)
        plot.setTitle(title, size=self._title_size)
        plot.setMenuEnabled(False)
        plot.hideButtons()
        img = pg.ImageItem(np.asarray(data, dtype=np.float32))
        img.setLookupTable(lut(lut_name))
        img.setLevels(levels)
        img.setRect(rect)
        plot.addItem(img)
        plot.setLabel("left", ylabel)
        plot.setLabel("bottom", xlabel)
        for axis in ("left", "bottom"):
            plot.getAxis(axis).enableAutoSIPrefix(False)
        self.plots.append(plot)
        self.images.append((title, img))
        return plot, img

    def _ring(self, truth, methods, dt):
        # image rows = variables, columns = time: the Hovmöller diagram of the observation editor
        length, n = truth.shape
        rect = QRectF(0, -0.5, length * dt, n)
        levels = robust_levels(truth)
        spread_top = max(float(np.percentile(c.spread, 99.5)) for c in methods) or 1.0
        _, img = self._image(0, 0, "truth", truth.T, levels, "viridis", rect, "variable j", "time")
        self._bar(img, 0, len(methods) + 1, levels, "value")
        for m, curves in enumerate(methods):
            self._image(0, m + 1, f"{curves.title}: mean", curves.mean.T, levels, "viridis", rect, "", "time")
            _, simg = self._image(1, m + 1, f"{curves.title}: spread", curves.spread.T, (0.0, spread_top),
                                  "inferno", rect, "", "time")
        self._bar(simg, 1, len(methods) + 1, (0.0, spread_top), "spread", "inferno")

    def _field(self, truth, methods, names, i):
        frame = truth[i, 0]
        h, w = frame.shape
        rect = QRectF(0, 0, w, h)
        name = names[0] if names else "value"
        levels = robust_levels(truth[:, 0])
        spread_top = max(float(np.percentile(c.spread[:, 0], 99.5)) for c in methods) or 1.0
        _, img = self._image(0, 0, f"truth {name}, state {i}", frame, levels, "viridis", rect, "y", "x")
        self._bar(img, 0, len(methods) + 1, levels, name)
        for m, curves in enumerate(methods):
            self._image(0, m + 1, f"{curves.title}: mean", curves.mean[i, 0], levels, "viridis", rect, "", "x")
            _, simg = self._image(1, m + 1, f"{curves.title}: spread", curves.spread[i, 0], (0.0, spread_top),
                                  "inferno", rect, "", "x")
        self._bar(simg, 1, len(methods) + 1, (0.0, spread_top), "spread", "inferno")

    def _bar(self, img, row, col, levels, label, cmap="viridis"):
        bar = pg.ColorBarItem(values=tuple(levels), colorMap=pg.colormap.get(cmap), interactive=False,
                              label=label, width=12)
        bar.setImageItem(img)
        self.addItem(bar, row=row, col=col)

    def _ranks(self, methods, beside_truth: bool):
        """One histogram per method; under each method's maps when there is a truth column."""
        row = self.ci.layout.rowCount()
        first = 1 if beside_truth else 0
        if beside_truth:
            self.addLabel("rank histograms<br>(flat: spread right;<br>∪: over-confident)", row=row, col=0)
        for m, curves in enumerate(methods):
            counts = np.asarray(curves.rank_counts, dtype=np.float64)
            # short titles: the row's columns are shared with the maps above
            plot = self.addPlot(row=row, col=first + m)
            plot.setTitle(f"{curves.title}: ranks", size=self._title_size)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            if counts.size:
                color = METHOD_COLORS[m % len(METHOD_COLORS)]
                plot.addItem(pg.BarGraphItem(x=np.arange(counts.size), height=counts / counts.sum(), width=0.85,
                                             brush=color, pen=None))
                plot.addItem(pg.InfiniteLine(pos=1.0 / counts.size, angle=0,
                                             pen=pg.mkPen((0, 0, 0), width=1, style=pg.QtCore.Qt.PenStyle.DashLine)))
            plot.setLabel("bottom", "rank of the truth")
            plot.getAxis("left").enableAutoSIPrefix(False)
            if m == 0:
                plot.setLabel("left", "fraction")
            self.plots.append(plot)
