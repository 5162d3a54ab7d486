"""Results plots of a state with a few variables (Lorenz-63).

Left, each variable against time: all samples as one spaghetti item (or a ±1 std
band about the mean), the mean, the truth, the observed points and a time marker.
Right, 2-D phase projections of the trajectories with the samples, mean and truth at
time t as moving markers. One legend row above both says what each line and marker
is. Observed points are drawn only for direct observations: the values of an
operator mix variables (the metrics line names the operator instead). The previous
result's mean (a *ghost*, ``Plots.set_ghost``) runs dashed and grey beside each
variable's curves, with its ±1 std band in the *mean ± spread* mode.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from ..plotting import COLORS, SAMPLE_PEN
from ..state import Results
from .base import GHOST_BRUSH, GHOST_LABEL, GHOST_PEN, Plots
from .common import TimeMarker, band_sample, cache_static_items, sample_curve, set_curve
from .data import PlotData, low_dim_data, spaghetti

__all__ = ["LowDimPlots", "MARKER_STYLES"]

MARKER_STYLES = {  # name: (symbol, size, pen, brush) of the moving phase-space markers
    "samples": ("o", 7, pg.mkPen(None), pg.mkBrush(COLORS["marker"] + (200,))),
    "mean": ("s", 11, pg.mkPen("k"), pg.mkBrush(COLORS["mean"])),
    "truth": ("star", 14, pg.mkPen("k"), pg.mkBrush("y")),
}
MARKER_LABELS = {"samples": "samples at t", "mean": "mean at t", "truth": "truth at t"}


class LowDimPlots(Plots):
    kind = "lowdim"
    has_ghost = True
    compute = staticmethod(low_dim_data)

    def __init__(self, system):
        super().__init__()
        self.system = system
        names = list(system.variable_names)
        self.names = names
        dt = system.dt
        self.var_plots = []
        mean_pen = pg.mkPen(COLORS["mean"], width=3)
        for i, name in enumerate(names):
            p = self.layout.addPlot(row=i + 1, col=0)
            p.setMenuEnabled(False)
            p.hideButtons()
            p.setLabel("left", name)
            p.getAxis("left").enableAutoSIPrefix(False)
            p.showGrid(x=True, y=True, alpha=0.2)
            if i == len(names) - 1:
                p.setLabel("bottom", f"time step (Δt = {dt:g})")
            if i > 0:
                p.setXLink(self.var_plots[0]["plot"])
            items = {
                "samples": sample_curve(pen=SAMPLE_PEN),
                "lo": pg.PlotDataItem(pen=pg.mkPen(None)),
                "hi": pg.PlotDataItem(pen=pg.mkPen(None)),
                "mean": pg.PlotDataItem(pen=mean_pen),
                "truth": pg.PlotDataItem(pen=pg.mkPen(COLORS["truth"], width=1.5)),
                "obs": pg.ScatterPlotItem(symbol="o", size=7, pen=pg.mkPen("k"), brush=pg.mkBrush(COLORS["obs"])),
            }
            items["band"] = band_sample(pg.FillBetweenItem(items["lo"], items["hi"], brush=pg.mkBrush(COLORS["spread"])),
                                        mean_pen)
            # the previous result: its band under the samples, its mean over them and under this mean
            items["ghost"] = pg.PlotDataItem(pen=GHOST_PEN)
            items["ghost_lo"] = pg.PlotDataItem(pen=pg.mkPen(None))
            items["ghost_hi"] = pg.PlotDataItem(pen=pg.mkPen(None))
            items["ghost_band"] = band_sample(pg.FillBetweenItem(items["ghost_lo"], items["ghost_hi"],
                                                                 brush=GHOST_BRUSH), GHOST_PEN)
            # hidden items do not count when the axes are fitted: the band's edges only in its mode
            for key in ("ghost", "ghost_lo", "ghost_hi", "ghost_band"):
                items[key].setVisible(False)
            for key in ("lo", "hi", "band", "ghost_lo", "ghost_hi", "ghost_band", "samples", "ghost", "mean", "truth",
                        "obs"):
                p.addItem(items[key])
            items["line"] = TimeMarker(p)
            items["plot"] = p
            self.var_plots.append(items)
        self.var_plots[0]["plot"].setTitle("Variables against time")
        pairs = [(0, 1), (0, 2), (1, 2)] if len(names) >= 3 else [(0, 1)]
        self.phase = []
        for r, (a, b) in enumerate(pairs[: max(1, len(names))]):
            p = self.layout.addPlot(row=r + 1, col=1)
            p.setMenuEnabled(False)
            p.hideButtons()
            p.setLabel("bottom", names[a])
            p.setLabel("left", names[b])
            items = {
                "samples": sample_curve(pen=pg.mkPen(COLORS["samples_faint"])),
                "truth": pg.PlotDataItem(pen=pg.mkPen(COLORS["truth"], width=1.5)),
                # samples, mean and truth at time t in ONE scatter item: each scatter item costs
                # more to lay out and paint than its few points, and these move every frame
                "markers": pg.ScatterPlotItem(pxMode=True),
                "pair": (a, b), "plot": p,
            }
            for key in ("samples", "truth", "markers"):
                p.addItem(items[key])
            self.phase.append(items)
        if self.phase:
            self.phase[0]["plot"].setTitle("Phase space at time t")
        # legend samples for the moving markers (never added to a plot)
        self._marker_samples = {k: pg.ScatterPlotItem(symbol=s, size=z, pen=pen, brush=brush)
                                for k, (s, z, pen, brush) in MARKER_STYLES.items()}
        self.legend = self.add_legend_row(0, columns=8)
        self._update_legend()
        self.layout.layout.setColumnStretchFactor(0, 3)
        self.layout.layout.setColumnStretchFactor(1, 2)
        cache_static_items(self.layout)
        # curves against time and phase trajectories stay put while the time moves: blit them
        mode = pg.QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
        static = [items[key] for items in self.var_plots
                  for key in ("samples", "mean", "truth", "obs", "band", "ghost", "ghost_band")]
        static += [items[key] for items in self.phase for key in ("samples", "truth")]
        for item in static:
            # a PlotDataItem draws through its curve and scatter children, each with its own cache
            for part in (item, getattr(item, "curve", None), getattr(item, "scatter", None)):
                if part is not None:
                    part.setCacheMode(mode)
        self._ranged = False   # the axes were fitted to a preview of the current run

    def begin_run(self, run: Results):
        super().begin_run(run)
        self._ranged = False

    def _update_legend(self, k: int = 0):
        """One legend for both columns: what this mode draws against time, then the markers."""
        first = self.var_plots[0]
        if self.mode == "spread":
            lead = [(first["band"], "mean ± 1 std")]
        elif self.mode == "one":
            lead = [(first["samples"], f"sample #{k + 1}")]
        else:
            lead = [(first["samples"], "samples"), (first["mean"], "posterior mean")]
        has_truth = getattr(self, "truth", 0) is not None
        obs = self.results.observation if self.results is not None else None
        lead += [(first["truth"], "truth")] if has_truth else []
        if self.ghost is not None:
            lead += [(first["ghost_band"], f"{GHOST_LABEL} ± 1 std") if self.mode == "spread"
                     else (first["ghost"], GHOST_LABEL)]
        lead += [(first["obs"], "observations")] if obs is None or not obs.operator else []
        lead += [(first["line"], "time t")]
        markers = [k_ for k_ in MARKER_STYLES if k_ != "truth" or has_truth]
        if self.mode == "one":
            markers = [m for m in markers if m != "mean"]
        self.legend.show_entries(lead + [(self._marker_samples[m], MARKER_LABELS[m]) for m in markers])

    def _fit(self, plot, padding: float):
        plot.enableAutoRange()
        plot.autoRange(padding=padding)
        plot.disableAutoRange()

    def apply(self, d: PlotData, levels: dict):
        a = d.arrays
        shown, self.mean, self.std, self.truth, t = a["shown"], a["mean"], a["std"], a["truth"], a["t"]
        self.shown = shown
        length = self.mean.shape[0]
        obs = self.results.observation
        self._k = a.get("k", 0)
        # before the axes are fitted: they make room for the previous result too
        self.draw_ghost()
        # previews keep the axes of the first one that had numbers: refitting means new tick labels
        fit = not (self._running and self._ranged)
        if self._running and self._finite(d):
            self._ranged = True
        for i, items in enumerate(self.var_plots):
            if a["curves"] is not None:
                items["samples"].setData(*a["curves"][i])
            items["samples"].setVisible(self.mode != "spread")
            items["band"].setVisible(self.mode == "spread")
            set_curve(items["lo"], t, self.mean[:, i] - self.std[:, i])
            set_curve(items["hi"], t, self.mean[:, i] + self.std[:, i])
            set_curve(items["mean"], t, self.mean[:, i])
            items["mean"].setVisible(self.mode != "one")
            if self.truth is not None:
                items["truth"].setData(t, self.truth[:, i])
            if obs is not None and not obs.operator:
                m = obs.mask[:, i]
                items["obs"].setData(t[m], obs.values[:, i][m])
            else:  # values of an operator mix variables: no point of this curve was observed
                items["obs"].setData([], [])
            if fit:
                self._fit(items["plot"], 0.02)
        for items in self.phase:
            a_, b = items["pair"]
            ok = np.isfinite(shown[:, :, [a_, b]]).all(axis=(1, 2))
            items["samples"].setData(spaghetti(shown[ok][:, :, a_], None)[1], spaghetti(shown[ok][:, :, b], None)[1])
            if self.truth is not None:
                items["truth"].setData(self.truth[:, a_], self.truth[:, b])
            if fit:
                self._fit(items["plot"], 0.05)
        self.show_frame(min(self.frame, length - 1))

    def draw_ghost(self):
        g = self.ghost
        mean = getattr(self, "mean", None)
        on = g is not None and mean is not None and g["mean"].shape == mean.shape
        if on:
            t = np.arange(mean.shape[0], dtype=np.float32)
        for i, items in enumerate(self.var_plots):
            items["ghost"].setVisible(on)
            for key in ("ghost_lo", "ghost_hi", "ghost_band"):
                items[key].setVisible(on and self.mode == "spread")
            if on:
                m, s = g["mean"][:, i], g["std"][:, i]
                set_curve(items["ghost"], t, m)
                set_curve(items["ghost_lo"], t, m - s)
                set_curve(items["ghost_hi"], t, m + s)
        if not on:
            self.ghost = None
        self._update_legend(getattr(self, "_k", 0))

    def show_frame(self, t: int):
        if self.results is None:
            return
        self.frame = t
        for items in self.var_plots:
            items["line"].setValue(t)
        cur = self.shown[:, t]
        with_mean = self.mode != "one"
        pts = [cur] + ([self.mean[t][None]] if with_mean else []) + \
              ([self.truth[t][None]] if self.truth is not None else [])
        pts = np.concatenate(pts, axis=0)
        n = cur.shape[0]
        style_key = (n, with_mean, self.truth is not None)
        if getattr(self, "_marker_style_n", None) != style_key:
            # per-spot styles are built once per result, not per frame
            kinds = ["samples"] * n + (["mean"] if with_mean else []) + (["truth"] if self.truth is not None else [])
            self._marker_style = {
                "symbol": [MARKER_STYLES[k][0] for k in kinds],
                "size": np.array([MARKER_STYLES[k][1] for k in kinds], dtype=float),
                "pen": [MARKER_STYLES[k][2] for k in kinds],
                "brush": [MARKER_STYLES[k][3] for k in kinds],
            }
            self._marker_style_n = style_key
        for items in self.phase:
            a, b = items["pair"]
            items["markers"].setData(pts[:, a], pts[:, b], **self._marker_style)
