"""Results plots of a state with many variables on a ring (Lorenz-96).

Two rows under one legend: the state at time t as curves over the variable index j
(samples, mean, truth, observed points; a ±1 std band in the *mean ± spread* mode),
then five Hovmöller maps (time along x, variable along y) — the truth, the posterior
mean, a sample, the spread and the error of the mean — each with a time marker at t.
Observations through an operator are drawn where they belong: a block mean at its
block's centre, a sample at its point. Values are physical, in the system's units.
The previous result's mean at time t (a *ghost*, ``Plots.set_ghost``) is a dashed
grey curve among the state curves; the maps show this result only.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from .. import operators as ops
from ..plotting import COLORS, SAMPLE_PEN
from ..state import Results
from .base import GHOST_LABEL, GHOST_PEN, Plots
from .common import (TimeMarker, band_sample, cache_static_items, image_plot, put_image, quantity, sample_curve,
                     set_curve, set_range, set_title)
from .data import PlotData, ring_data, ring_run_levels, spaghetti

__all__ = ["RingPlots"]

#: key → (title, colour map, row, column) of the Hovmöller maps
MAPS = {"truth": ("Truth", "CET-D1", 1, 1), "mean": ("Posterior mean", "CET-D1", 1, 2),
        "sample": ("Sample", "CET-D1", 2, 0), "spread": ("Spread (std)", "viridis", 2, 1),
        "error": ("Error: mean − truth", "CET-D1", 2, 2)}


class RingPlots(Plots):
    kind = "ring"
    has_ghost = True
    tables = {"state": "CET-D1", "spread": "viridis"}
    compute = staticmethod(ring_data)

    def __init__(self, system):
        super().__init__()
        self.system = system
        self.dt = float(system.dt)
        q = quantity(system)
        self.curve_plot = self.layout.addPlot(row=1, col=0, title="State at time t")
        self.curve_plot.setLabel("bottom", "variable index j")
        self.curve_plot.setLabel("left", q)
        self.curve_plot.getAxis("left").enableAutoSIPrefix(False)
        self.curve_plot.setMenuEnabled(False)
        self.curve_plot.hideButtons()
        self.curve_plot.showGrid(x=True, y=True, alpha=0.2)
        self.curve_plot.disableAutoRange()
        # bare PlotCurveItems: these change every frame, and PlotDataItem's bookkeeping
        # would cost more than the drawing
        self.samples_item = sample_curve(pg.PlotCurveItem, pen=SAMPLE_PEN)
        self.band_lo = pg.PlotCurveItem(pen=pg.mkPen(None))
        self.band_hi = pg.PlotCurveItem(pen=pg.mkPen(None))
        self.band = pg.FillBetweenItem(self.band_lo, self.band_hi, brush=pg.mkBrush(COLORS["spread"]))
        # the mean is drawn wide under a thin truth so both stay visible where they agree
        mean_pen = pg.mkPen(COLORS["mean"], width=3)
        band_sample(self.band, mean_pen)
        self.mean_item = pg.PlotCurveItem(pen=mean_pen)
        self.truth_item = pg.PlotCurveItem(pen=pg.mkPen(COLORS["truth"], width=1.5))
        self.obs_item = pg.ScatterPlotItem(symbol="o", size=8, pen=pg.mkPen("k"), brush=pg.mkBrush(COLORS["obs"]))
        self.ghost_item = pg.PlotCurveItem(pen=GHOST_PEN)
        self.ghost_item.setVisible(False)
        for it in (self.band_lo, self.band_hi, self.band, self.samples_item, self.ghost_item, self.mean_item,
                   self.truth_item, self.obs_item):
            self.curve_plot.addItem(it)
        # the time of the curves, inside the plot (it travels with PNG, SVG and GIF exports)
        self.time_text = pg.TextItem("", color=(0, 0, 0), anchor=(0, 0), fill=pg.mkBrush(255, 255, 255, 220))
        self.time_text.setZValue(30)
        self.curve_plot.addItem(self.time_text, ignoreBounds=True)
        self._time_shown = None
        xlabel, ylabel = f"time step (Δt = {self.dt:g})", "variable j"
        bar_labels = {"spread": f"std of {q} over samples", "error": f"error of {q}"}
        self.hov = {}
        self.markers = {}
        for key, (title, cmap, r, c) in MAPS.items():
            plot, img, bar = image_plot(self.layout, r, c, title, cmap, xlabel, ylabel, bar_labels.get(key, q))
            marker = TimeMarker(plot)
            plot.disableAutoRange()
            self.hov[key] = (plot, img, bar, marker)
        self.legend = self.add_legend_row(0, columns=5)
        self._obs_text = "observations"
        self._update_legend()
        for c in range(3):
            self.layout.layout.setColumnStretchFactor(c, 1)
        # room between columns, so a colour bar's label reads as the bar's, not the next plot's
        self.layout.layout.setHorizontalSpacing(14)
        cache_static_items(self.layout, images=True)

    def _run_levels(self, run: Results) -> Optional[dict]:
        return ring_run_levels(run)

    def _update_legend(self, k: int = 0):
        """The legend lists what this mode draws, and nothing else."""
        if self.mode == "spread":
            lead = [(self.band, "posterior mean ± 1 std")]
        elif self.mode == "one":
            lead = [(self.samples_item, f"sample #{k + 1}")]
        else:
            lead = [(self.samples_item, "samples"), (self.mean_item, "posterior mean")]
        truth = [(self.truth_item, "truth")] if getattr(self, "truth", 0) is not None else []
        truth += [(self.ghost_item, GHOST_LABEL)] if self.ghost is not None else []
        self.legend.show_entries(lead + truth + [(self.obs_item, self._obs_text),
                                                 (self.hov["mean"][3], "time t (in the maps)")])

    def apply(self, d: PlotData, levels: dict):
        a = d.arrays
        self.mean, self.std, self.truth, self.shown = a["mean"], a["std"], a["truth"], a["shown"]
        self.obs_mask, self.obs_values, self.obs_x = a["obs_mask"], a["obs_values"], a["obs_x"]
        length, v = self.mean.shape
        spec = a["spec"]
        kind, f = ops.kind_of(spec), ops.factor_of(spec)
        self._obs_text = {"coarsen": f"observed block means ×{f}",
                          "subsample": f"observations (every {ops.ordinal(f)})"}.get(kind, "observations")
        self._k = a["k"]
        self.draw_ghost(frame=False)
        set_range(self.curve_plot, (-0.5, v - 0.5), levels["curve"])
        self.time_text.setPos(-0.5, levels["curve"][1])
        rect = QRectF(0, 0, length, v)
        set_title(self.hov["sample"][0], f"Sample #{a['k'] + 1} of {a['n']}")
        set_title(self.hov["truth"][0], "Truth" if self.truth is not None else "Truth (none loaded)")
        set_title(self.hov["error"][0], "Error: mean − truth" if self.truth is not None else "Error (no truth)")
        images = a["images"]
        for key, lev in (("truth", levels["state"]), ("sample", levels["state"]), ("mean", levels["state"]),
                         ("spread", levels["spread"]), ("error", levels["error"])):
            put_image(self.hov[key][1], self.hov[key][2], images.get(key), lev, rect)
        for plot, *_ in self.hov.values():
            set_range(plot, (0, length), (0, v))
        self.samples_item.setVisible(self.mode != "spread")
        self.band.setVisible(self.mode == "spread")
        self.mean_item.setVisible(self.mode != "one")
        self.show_frame(min(self.frame, length - 1))

    def draw_ghost(self, frame: bool = True):
        on = self.ghost is not None and self.ghost["mean"].shape == getattr(self, "mean", np.zeros(0)).shape
        if not on:
            self.ghost = None
        self.ghost_item.setVisible(on)
        self._update_legend(getattr(self, "_k", 0))
        if frame:
            self.show_frame(min(self.frame, self.mean.shape[0] - 1))

    def show_frame(self, t: int):
        if self.results is None:
            return
        self.frame = t
        j = np.arange(self.mean.shape[1], dtype=np.float32)
        if self.ghost is not None:
            set_curve(self.ghost_item, j, self.ghost["mean"][t])
        if self.mode != "spread":
            xs, ys = spaghetti(self.shown[:, t, :], j)
            self.samples_item.setData(xs, ys)
        else:
            set_curve(self.band_lo, j, self.mean[t] - self.std[t])
            set_curve(self.band_hi, j, self.mean[t] + self.std[t])
        set_curve(self.mean_item, j, self.mean[t])
        if self.truth is not None:
            set_curve(self.truth_item, j, self.truth[t])
        m = self.obs_mask[t]
        self.obs_item.setData(self.obs_x[m], self.obs_values[t][m])
        text = f"t = {t * self.dt:.2f} (step {t})"
        if text != self._time_shown:
            self.time_text.setText(text)
            self._time_shown = text
        for *_, marker in self.hov.values():
            marker.setValue(t + 0.5)
