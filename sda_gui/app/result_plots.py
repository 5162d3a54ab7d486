"""The plots of the results viewer, one class per kind of state.

- ``RingPlots`` (many variables, e.g. Lorenz-96): the state at time t as curves
  (samples, mean, truth, observed points) and four Hovmöller images (a sample, the
  mean, the spread, the error of the mean). Observations through an operator are
  drawn where they belong: a block mean at its block's centre, a sample at its point.
- ``LowDimPlots`` (a few variables, e.g. Lorenz-63): each variable against time with
  all samples as one spaghetti item, and 2-D phase projections with moving markers.
- ``FieldPlots`` (2-D fields, e.g. Kolmogorov): truth, a sample, the mean and the
  spread at time t as images. ``LowDimPlots`` and ``FieldPlots`` mark observed points
  only for direct observations (the metrics line names the operator otherwise).

Each class builds its items once (``configure``), swaps data in ``set_results``
(precomputing everything a frame needs) and only moves cheap things in
``show_frame``, which is what animation calls at 60+ frames per second. Images are
bare ``ImageItem``s with fixed levels and a lookup table; many samples are one
``PlotDataItem`` whose curves are separated by NaN (``connect="finite"``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from . import operators as ops
from .plotting import COLORS, SAMPLE_PEN, lut, robust_levels, symmetric_levels
from .state import Results

__all__ = ["RingPlots", "LowDimPlots", "FieldPlots", "MODES", "spaghetti"]

MODES = {"all": "all samples", "one": "one sample", "spread": "mean ± spread"}


def sample_curve(item_class=pg.PlotDataItem, **kwargs):
    """Many sample curves as one item, drawn as separate line segments.

    Qt strokes a polyline as one filled outline, which costs ~15 ms for a few hundred
    self-crossing segments; ``drawLines`` of the segments costs a fraction of that.
    """
    item = item_class(connect="finite", **kwargs)
    curve = item.curve if hasattr(item, "curve") else item
    curve.setSegmentedLineMode("on")
    return item


def set_curve(item, x: np.ndarray, y: np.ndarray):
    """``setData`` that survives NaN: pyqtgraph's segmented drawing fails on non-finite points."""
    ok = np.isfinite(y)
    if ok.all():
        item.setData(x, y)
    else:  # a diverged sample: draw what is finite, joined across the gaps
        item.setData(np.asarray(x)[ok], np.asarray(y)[ok])


def spaghetti(y: np.ndarray, x: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Curves ``y (n, m)`` → one (x, y) polyline with NaN breaks between curves.

    Curves with any non-finite value (a diverged sample) are left out.
    """
    finite = np.isfinite(y).all(axis=1)
    if not finite.all():
        y = y[finite]
    n, m = y.shape
    if n == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    if x is None:
        x = np.arange(m, dtype=np.float32)
    xs = np.empty((n, m + 1), dtype=np.float32)
    ys = np.empty((n, m + 1), dtype=np.float32)
    xs[:, :m] = x
    xs[:, m] = np.nan
    ys[:, :m] = y
    ys[:, m] = np.nan
    return xs.ravel(), ys.ravel()


def finite_samples(samples) -> np.ndarray:
    """Samples as float32 with non-finite or absurd values (a diverged sampler) turned to NaN."""
    x = np.asarray(samples, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | (np.abs(x) > 1e6)
    return np.where(bad, np.nan, x) if bad.any() else x


def mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over samples, ignoring NaN; entries with no finite sample stay NaN.

    Written out rather than ``np.nanmean``/``np.nanstd`` because those warn through the
    global ``warnings`` filters, which cannot be silenced safely while a worker thread
    also computes (``np.errstate`` is per thread).
    """
    ok = np.isfinite(x)
    n = ok.sum(0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = np.where(ok, x, 0.0)
        mean = z.sum(0) / n
        var = np.where(ok, (z - mean) ** 2, 0.0).sum(0) / n
    mean = np.where(n > 0, mean, np.nan).astype(np.float32)
    std = np.where(n > 0, np.sqrt(var), np.nan).astype(np.float32)
    return mean, std


def _safe_levels(levels) -> tuple[float, float]:
    lo, hi = (float(v) for v in levels)
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return (0.0, 1.0)
    return lo, hi


def _image_plot(layout: pg.GraphicsLayout, row: int, col: int, title: str, lut_name: str,
                xlabel: str, ylabel: str, cbar_label: str = ""):
    plot = layout.addPlot(row=row, col=col, title=title)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    img = pg.ImageItem()
    img.setLookupTable(lut(lut_name))
    plot.addItem(img)
    plot.setLabel("bottom", xlabel)
    plot.setLabel("left", ylabel)
    bar = pg.ColorBarItem(colorMap=pg.colormap.get(lut_name), interactive=False, width=10)
    bar.setImageItem(img, insert_in=plot)
    if cbar_label:
        bar.axis.setLabel(cbar_label)
    return plot, img, bar


def _nice(v: float) -> float:
    """Rounds to two significant digits, so colour bars don't relayout for tiny changes."""
    if v == 0 or not np.isfinite(v):
        return v
    return float(f"{v:.2g}")


def _set_image(img: pg.ImageItem, bar: pg.ColorBarItem, data: np.ndarray, levels, rect: QRectF):
    levels = _safe_levels(tuple(_nice(v) for v in levels))
    img.setImage(np.ascontiguousarray(data, dtype=np.float32), autoLevels=False, levels=levels)
    if getattr(img, "_sda_rect", None) != rect:
        img.setRect(rect)
        img._sda_rect = QRectF(rect)
    # axes regenerate their text on every change: touch them only when something changed,
    # which keeps a live preview (a new result 10 times a second) cheap to draw
    if getattr(bar, "_sda_levels", None) != levels:
        bar.setLevels(levels)
        bar._sda_levels = levels


def set_title(plot, text: str):
    if getattr(plot, "_sda_title", None) != text:
        plot.setTitle(text)
        plot._sda_title = text


def set_range(plot, xr, yr):
    key = (tuple(float(v) for v in xr), tuple(float(v) for v in yr))
    if getattr(plot, "_sda_range", None) != key:
        plot.setRange(xRange=xr, yRange=yr, padding=0)
        plot._sda_range = key


def cache_static_items(layout: pg.GraphicsLayout, images: bool = False):
    """Caches axes, titles, legends and images as pixmaps.

    A frame moves a few lines and curves, but the scene repaints every item whose
    bounds meet the changed region; drawing axes from their cached pixmaps instead of
    replaying their text is what keeps the animation above 60 frames per second.
    """
    mode = pg.QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
    for item in layout.items:
        if isinstance(item, pg.PlotItem):
            # fixed widths: tick labels growing by a digit would otherwise resize every plot
            # in the row, and a relayout costs more than the whole frame
            if isinstance(item, pg.ColorBarItem):
                item.axis.setWidth(38)
            else:
                item.getAxis("left").setWidth(46)
            for axis in item.axes.values():
                axis["item"].setCacheMode(mode)
            item.titleLabel.setCacheMode(mode)
            if item.legend is not None:
                item.legend.setCacheMode(mode)
            if isinstance(item, pg.ColorBarItem):
                item.setCacheMode(mode)
            if images:  # only for images that stay put while time moves (Hovmöller panels)
                for child in item.items:
                    if isinstance(child, pg.ImageItem):
                        child.setCacheMode(mode)


class _Plots:
    """Common state: the results, the display mode and the chosen sample."""

    def __init__(self):
        self.widget = pg.GraphicsLayoutWidget()
        self.layout = self.widget.ci
        self.results: Optional[Results] = None
        self.mode = "all"
        self.sample = 0
        self.frame = 0

    def set_mode(self, mode: str, sample: int = 0):
        self.mode, self.sample = mode, int(sample)
        if self.results is not None:
            self.set_results(self.results)

    def _sample_index(self) -> int:
        return min(self.sample, self.results.samples.shape[0] - 1) if self.results is not None else 0


class RingPlots(_Plots):
    def __init__(self, system):
        super().__init__()
        self.system = system
        dt = system.dt
        self.curve_plot = self.layout.addPlot(row=0, col=0, rowspan=2, title="State at time t (green lines)")
        self.curve_plot.setLabel("bottom", "variable index j")
        self.curve_plot.setLabel("left", "x_j (model units)")
        self.curve_plot.setMenuEnabled(False)
        self.curve_plot.showGrid(x=True, y=True, alpha=0.2)
        self.curve_plot.disableAutoRange()
        legend = self.curve_plot.addLegend(offset=(5, 5), labelTextSize="8pt")
        legend.setBrush(pg.mkBrush(255, 255, 255, 200))
        self.legend = legend
        # bare PlotCurveItems: these change every frame, and PlotDataItem's bookkeeping
        # would cost more than the drawing
        self.samples_item = sample_curve(pg.PlotCurveItem, pen=SAMPLE_PEN, name="samples")
        self.band_lo = pg.PlotCurveItem(pen=pg.mkPen(None))
        self.band_hi = pg.PlotCurveItem(pen=pg.mkPen(None))
        self.band = pg.FillBetweenItem(self.band_lo, self.band_hi, brush=pg.mkBrush(COLORS["spread"]))
        # the mean is drawn wide under a thin truth so both stay visible where they agree
        self.mean_item = pg.PlotCurveItem(pen=pg.mkPen(COLORS["mean"], width=3), name="posterior mean")
        self.truth_item = pg.PlotCurveItem(pen=pg.mkPen(COLORS["truth"], width=1.5), name="truth")
        self.obs_item = pg.ScatterPlotItem(symbol="o", size=8, pen=pg.mkPen("k"), brush=pg.mkBrush(COLORS["obs"]),
                                           name="observations")
        for it in (self.band_lo, self.band_hi, self.band, self.samples_item, self.mean_item, self.truth_item, self.obs_item):
            self.curve_plot.addItem(it)
        legend.addItem(pg.PlotDataItem(pen=pg.mkPen(COLORS["spread"][:3], width=6)), "mean ± 1 std")
        xlabel, ylabel = f"time step (Δt = {dt:g})", "variable j"
        self.hov = {}
        specs = [("sample", "Sample", "CET-D1", 0, 1), ("mean", "Posterior mean", "CET-D1", 0, 2),
                 ("spread", "Spread (std over samples)", "viridis", 1, 1), ("error", "Error: mean − truth", "CET-D1", 1, 2)]
        for key, title, cmap, r, c in specs:
            plot, img, bar = _image_plot(self.layout, r, c, title, cmap, xlabel, ylabel)
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(COLORS["marker"], width=2))
            plot.addItem(line)
            plot.disableAutoRange()
            self.hov[key] = (plot, img, bar, line)
        self.layout.layout.setColumnStretchFactor(0, 5)
        self.layout.layout.setColumnStretchFactor(1, 4)
        self.layout.layout.setColumnStretchFactor(2, 4)
        cache_static_items(self.layout, images=True)

    def set_results(self, results: Results):
        self.results = results
        x = finite_samples(results.samples)     # (N, L, V)
        n, length, v = x.shape
        self.mean, self.std = mean_std(x)
        self.truth = None if results.truth is None else np.asarray(results.truth, dtype=np.float32)
        obs = results.observation
        self.obs_mask = obs.mask if obs is not None else np.zeros((length, v), bool)
        self.obs_values = obs.values if obs is not None else np.zeros((length, v))
        spec = obs.operator if obs is not None else None
        self.obs_x = ops.positions(spec, self.obs_mask.shape[1])
        # the legend says what a dot is; a longer title would widen this column past the window
        label = self.legend.getLabel(self.obs_item)
        kind, f = ops.kind_of(spec), ops.factor_of(spec)
        text = {"coarsen": f"observed block means ×{f}", "subsample": f"observations (every {ops.ordinal(f)})"}.get(
            kind, "observations")
        if label is not None and label.text != text:
            label.setText(text, size="8pt")
        k = self._sample_index()
        self.shown = x[k:k + 1] if self.mode == "one" else x
        ref = self.truth if self.truth is not None else self.mean
        lo, hi = _safe_levels(robust_levels(np.concatenate([ref.ravel(), x.ravel()[: 200_000]]), q=0.2))
        pad = 0.08 * (hi - lo)
        set_range(self.curve_plot, (-0.5, v - 0.5), (_nice(lo - pad), _nice(hi + pad)))
        levels = _safe_levels(robust_levels(ref))
        rect = QRectF(0, 0, length, v)
        sample_label = f"Sample #{k + 1} of {n}"
        set_title(self.hov["sample"][0], sample_label)
        _set_image(self.hov["sample"][1], self.hov["sample"][2], x[k].T, levels, rect)
        _set_image(self.hov["mean"][1], self.hov["mean"][2], self.mean.T, levels, rect)
        _set_image(self.hov["spread"][1], self.hov["spread"][2], self.std.T,
                   (0.0, max(robust_levels(self.std, 0.5)[1], 1e-6)), rect)
        if self.truth is not None:
            err = (self.mean - self.truth).T
            _set_image(self.hov["error"][1], self.hov["error"][2], err, symmetric_levels(err), rect)
        else:
            self.hov["error"][1].clear()
        set_title(self.hov["error"][0], "Error: mean − truth" if self.truth is not None else "Error (no truth)")
        for plot, *_ in self.hov.values():
            set_range(plot, (0, length), (0, v))
        self.samples_item.setVisible(self.mode != "spread")
        self.band.setVisible(self.mode == "spread")
        self.mean_item.setVisible(self.mode != "one")
        self.show_frame(min(self.frame, length - 1))

    def show_frame(self, t: int):
        if self.results is None:
            return
        self.frame = t
        j = np.arange(self.mean.shape[1], dtype=np.float32)
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
        for _, _, _, line in self.hov.values():
            line.setValue(t + 0.5)


MARKER_STYLES = {  # name: (symbol, size, pen, brush) of the moving phase-space markers
    "samples": ("o", 7, pg.mkPen(None), pg.mkBrush(COLORS["marker"] + (200,))),
    "mean": ("s", 11, pg.mkPen("k"), pg.mkBrush(COLORS["mean"])),
    "truth": ("star", 14, pg.mkPen("k"), pg.mkBrush("y")),
}


class LowDimPlots(_Plots):
    def __init__(self, system):
        super().__init__()
        self.system = system
        names = list(system.variable_names)
        self.names = names
        dt = system.dt
        self.var_plots = []
        for i, name in enumerate(names):
            p = self.layout.addPlot(row=i, col=0)
            p.setMenuEnabled(False)
            p.hideButtons()
            p.setLabel("left", name)
            p.showGrid(x=True, y=True, alpha=0.2)
            if i == len(names) - 1:
                p.setLabel("bottom", f"time step (Δt = {dt:g})")
            if i > 0:
                p.setXLink(self.var_plots[0]["plot"])
            items = {
                "samples": sample_curve(pen=SAMPLE_PEN, name="samples"),
                "lo": pg.PlotDataItem(pen=pg.mkPen(None)),
                "hi": pg.PlotDataItem(pen=pg.mkPen(None)),
                "mean": pg.PlotDataItem(pen=pg.mkPen(COLORS["mean"], width=3), name="posterior mean"),
                "truth": pg.PlotDataItem(pen=pg.mkPen(COLORS["truth"], width=1.5), name="truth"),
                "obs": pg.ScatterPlotItem(symbol="o", size=7, pen=pg.mkPen("k"), brush=pg.mkBrush(COLORS["obs"]),
                                          name="observations"),
                "line": pg.InfiniteLine(angle=90, pen=pg.mkPen(COLORS["marker"], width=2)),
            }
            items["band"] = pg.FillBetweenItem(items["lo"], items["hi"], brush=pg.mkBrush(COLORS["spread"]))
            if i == 0:
                legend = p.addLegend(offset=(5, 5), labelTextSize="8pt", colCount=4)
                legend.setBrush(pg.mkBrush(255, 255, 255, 200))
            for key in ("lo", "hi", "band", "samples", "mean", "truth", "obs", "line"):
                p.addItem(items[key])
            items["plot"] = p
            self.var_plots.append(items)
        self.var_plots[0]["plot"].setTitle("Variables against time (green: time t)")
        pairs = [(0, 1), (0, 2), (1, 2)] if len(names) >= 3 else [(0, 1)]
        self.phase = []
        for r, (a, b) in enumerate(pairs[: max(1, len(names))]):
            p = self.layout.addPlot(row=r, col=1)
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
            first = self.phase[0]
            first["plot"].setTitle("Phase space at time t")
            legend = first["plot"].addLegend(offset=(5, 5), labelTextSize="8pt")
            legend.setBrush(pg.mkBrush(255, 255, 255, 200))
            for name, (symbol, size, pen, brush) in MARKER_STYLES.items():
                legend.addItem(pg.ScatterPlotItem(symbol=symbol, size=size, pen=pen, brush=brush), name)
        self.layout.layout.setColumnStretchFactor(0, 3)
        self.layout.layout.setColumnStretchFactor(1, 2)
        cache_static_items(self.layout)
        # curves against time and phase trajectories stay put while the time moves: blit them
        mode = pg.QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
        static = [items[key] for items in self.var_plots for key in ("samples", "mean", "truth", "obs", "band")]
        static += [items[key] for items in self.phase for key in ("samples", "truth")]
        for item in static:
            # a PlotDataItem draws through its curve and scatter children, each with its own cache
            for part in (item, getattr(item, "curve", None), getattr(item, "scatter", None)):
                if part is not None:
                    part.setCacheMode(mode)

    def set_results(self, results: Results):
        self.results = results
        x = finite_samples(results.samples)   # (N, L, V)
        n, length, v = x.shape
        k = self._sample_index()
        shown = x[k:k + 1] if self.mode == "one" else x
        self.shown = shown
        self.mean, self.std = mean_std(x)
        self.truth = None if results.truth is None else np.asarray(results.truth, dtype=np.float32)
        t = np.arange(length, dtype=np.float32)
        obs = results.observation
        for i, items in enumerate(self.var_plots):
            if self.mode != "spread":
                items["samples"].setData(*spaghetti(shown[:, :, i], t))
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
            items["plot"].enableAutoRange()
            items["plot"].autoRange(padding=0.02)
            items["plot"].disableAutoRange()
        for items in self.phase:
            a, b = items["pair"]
            ok = np.isfinite(shown[:, :, [a, b]]).all(axis=(1, 2))
            items["samples"].setData(spaghetti(shown[ok][:, :, a], None)[1], spaghetti(shown[ok][:, :, b], None)[1])
            if self.truth is not None:
                items["truth"].setData(self.truth[:, a], self.truth[:, b])
            items["plot"].enableAutoRange()
            items["plot"].autoRange(padding=0.05)
            items["plot"].disableAutoRange()
        self.show_frame(min(self.frame, length - 1))

    def show_frame(self, t: int):
        if self.results is None:
            return
        self.frame = t
        for items in self.var_plots:
            items["line"].setValue(t)
        cur = self.shown[:, t]
        pts = [cur, self.mean[t][None]] + ([self.truth[t][None]] if self.truth is not None else [])
        pts = np.concatenate(pts, axis=0)
        n = cur.shape[0]
        if getattr(self, "_marker_style_n", None) != (n, self.truth is not None):
            # per-spot styles are built once per result, not per frame
            kinds = ["samples"] * n + ["mean"] + (["truth"] if self.truth is not None else [])
            self._marker_style = {
                "symbol": [MARKER_STYLES[k][0] for k in kinds],
                "size": np.array([MARKER_STYLES[k][1] for k in kinds], dtype=float),
                "pen": [MARKER_STYLES[k][2] for k in kinds],
                "brush": [MARKER_STYLES[k][3] for k in kinds],
            }
            self._marker_style_n = (n, self.truth is not None)
        for items in self.phase:
            a, b = items["pair"]
            items["markers"].setData(pts[:, a], pts[:, b], **self._marker_style)


def _field_frames(system, x: np.ndarray) -> tuple[np.ndarray, str]:
    """(…, L, C, X, Y) → images (…, L, Y, X): vorticity when the system has it."""
    if getattr(system, "name", "") == "kolmogorov":
        try:
            import torch

            from sda_gui.core.systems.kolmogorov import vorticity

            lead = x.shape[:-3]
            w = vorticity(torch.as_tensor(x.reshape(-1, *x.shape[-3:])))
            w = w.detach().cpu().numpy() if hasattr(w, "detach") else np.asarray(w)
            return np.swapaxes(w.reshape(*lead, *w.shape[-2:]), -1, -2), "vorticity ω"
        except ImportError:
            pass
    # fields are indexed [..., x, y]; images are [row = y, column = x]
    return np.swapaxes(x[..., 0, :, :], -1, -2), system.variable_names[0]


class FieldPlots(_Plots):
    def __init__(self, system):
        super().__init__()
        self.system = system
        self.panels = {}
        specs = [("truth", "Truth", "CET-D1", 0, 0), ("sample", "Sample", "CET-D1", 0, 1),
                 ("mean", "Posterior mean", "CET-D1", 1, 0), ("spread", "Spread (std over samples)", "viridis", 1, 1)]
        for key, title, cmap, r, c in specs:
            plot, img, bar = _image_plot(self.layout, r, c, title, cmap, "x (grid cell)", "y (grid cell)")
            plot.setAspectLocked(True)
            plot.disableAutoRange()
            self.panels[key] = (plot, img, bar)
        cache_static_items(self.layout)

    def set_results(self, results: Results):
        self.results = results
        x = finite_samples(results.samples)   # (N, L, C, H, W)
        k = self._sample_index()
        self.sample_w, label = _field_frames(self.system, x[k])
        all_w, _ = _field_frames(self.system, x) if x.shape[0] <= 64 else _field_frames(self.system, x[:64])
        self.sample_w = np.ascontiguousarray(self.sample_w, dtype=np.float32)
        mean_w, std_w = mean_std(all_w)
        self.mean_w = np.ascontiguousarray(mean_w, dtype=np.float32)
        self.std_w = np.ascontiguousarray(std_w, dtype=np.float32)
        self.truth_w = None if results.truth is None else np.ascontiguousarray(
            _field_frames(self.system, np.asarray(results.truth, dtype=np.float32))[0], dtype=np.float32)
        ref = self.truth_w if self.truth_w is not None else self.mean_w
        self.levels = _safe_levels(symmetric_levels(ref))
        self.std_levels = _safe_levels((0.0, max(robust_levels(self.std_w, 0.5)[1], 1e-6)))
        h, w = ref.shape[-2:]
        self.rect = QRectF(0, 0, w, h)
        set_title(self.panels["sample"][0], f"Sample #{k + 1} of {x.shape[0]}: {label}")
        set_title(self.panels["mean"][0], f"Posterior mean: {label}")
        set_title(self.panels["truth"][0], f"Truth: {label}")
        for plot, *_ in self.panels.values():
            set_range(plot, (0, w), (0, h))
        t = min(self.frame, x.shape[1] - 1)
        pairs = [("truth", self.truth_w, self.levels), ("sample", self.sample_w, self.levels),
                 ("mean", self.mean_w, self.levels), ("spread", self.std_w, self.std_levels)]
        for key, frames, levels in pairs:
            if frames is None:
                self.panels[key][1].clear()
            else:
                _set_image(self.panels[key][1], self.panels[key][2], frames[t], levels, self.rect)
        self.show_frame(t)

    def show_frame(self, t: int):
        if self.results is None:
            return
        self.frame = t
        p = self.panels
        # per frame only the pixels change: levels, rect and colour bars stay as set_results left them
        if self.truth_w is not None:
            p["truth"][1].setImage(self.truth_w[t], autoLevels=False, levels=self.levels)
        sample = self.mean_w[t] if self.mode == "spread" else self.sample_w[t]
        p["sample"][1].setImage(sample, autoLevels=False, levels=self.levels)
        p["mean"][1].setImage(self.mean_w[t], autoLevels=False, levels=self.levels)
        p["spread"][1].setImage(self.std_w[t], autoLevels=False, levels=self.std_levels)
