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

Each class builds its items once, swaps data in ``set_results`` and only moves cheap
things in ``show_frame``, which is what animation calls at 60+ frames per second.
Images are bare ``ImageItem``s with fixed levels and a lookup table; many samples are
one ``PlotDataItem`` whose curves are separated by NaN (``connect="finite"``).

``set_results`` is two halves. The numbers a result needs (means, spreads, Hovmöller
images, vorticity frames, colour levels) come from a module function (``ring_data``,
``low_dim_data``, ``field_data``: numpy and torch, no Qt), which the assimilation's
worker thread runs on each preview through ``preparer()``; the other half hands ready
arrays to the plot items on the UI thread. While a run goes on (``begin_run``) colour
levels, ranges and titles stay fixed, so a preview repaints pixels, never axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from . import operators as ops
from .plotting import COLORS, SAMPLE_PEN, lut, mask_overlay, robust_levels, symmetric_levels
from .state import Results

__all__ = ["RingPlots", "LowDimPlots", "FieldPlots", "MODES", "spaghetti", "PlotData", "ring_data", "low_dim_data",
           "field_data"]

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


def image_levels(levels) -> tuple[float, float]:
    """The levels an image panel and its colour bar use: two significant digits, never empty."""
    return _safe_levels(tuple(_nice(v) for v in levels))


def colorize(data: np.ndarray, levels, table: np.ndarray) -> np.ndarray:
    """Float image(s) ``(…, H, W)`` → RGBA uint8 ``(…, H, W, 4)``, as the ImageItems draw them.

    Same mapping as pyqtgraph's for a 256-entry lookup table between ``levels``; NaN is
    transparent. Pure numpy: the worker thread colours previews, the UI thread only
    hands the bytes to Qt.
    """
    lo, hi = image_levels(levels)
    x = np.asarray(data, dtype=np.float32)
    bad = ~np.isfinite(x)
    with np.errstate(invalid="ignore"):
        idx = np.clip((np.where(bad, lo, x) - lo) * (len(table) / (hi - lo)), 0, len(table) - 1).astype(np.uint8)
    out = np.empty(x.shape + (4,), dtype=np.uint8)
    out[..., :3] = table[idx, :3]
    out[..., 3] = np.where(bad, 0, 255)
    return out


def _set_image(img: pg.ImageItem, bar: pg.ColorBarItem, data: np.ndarray, levels, rect: QRectF):
    """An image panel: float data drawn through the bar's levels, or RGBA bytes (``colorize``)."""
    levels = image_levels(levels)
    # axes regenerate their text on every change: touch them only when something changed,
    # which keeps a live preview cheap to draw. The bar first: it pushes its levels to the image
    if getattr(bar, "_sda_levels", None) != levels:
        bar.setLevels(levels)
        bar._sda_levels = levels
    if data.dtype == np.uint8:   # already coloured: no levels, or Qt would rescale the bytes
        img.setImage(data, autoLevels=False, levels=None)
    else:
        img.setImage(np.ascontiguousarray(data, dtype=np.float32), autoLevels=False, levels=levels)
    if getattr(img, "_sda_rect", None) != rect:
        img.setRect(rect)
        img._sda_rect = QRectF(rect)


def _show_frame_image(img: pg.ImageItem, frame: np.ndarray, levels):
    """One frame of a field panel: float through ``levels`` or RGBA bytes."""
    if frame.dtype == np.uint8:
        img.setImage(frame, autoLevels=False, levels=None)
    else:
        img.setImage(frame, autoLevels=False, levels=levels)


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


@dataclass
class PlotData:
    """What a plots class draws of one result, for one display mode and sample.

    ``key`` is ``(mode, sample index)``: a view uses the data only while it still shows
    that. ``levels`` are the colour levels and ranges the data suggest (the view keeps
    its own during a run). Built by ``ring_data``, ``low_dim_data`` or ``field_data``.
    """

    kind: str
    key: tuple
    arrays: dict
    levels: dict


def _reference(results: Results) -> Optional[np.ndarray]:
    """Values that set a run's colour scale before any sample exists: the truth, else the observations."""
    if results.truth is not None:
        return np.asarray(results.truth, dtype=np.float32)
    obs = results.observation
    if obs is not None and obs.count:
        return np.asarray(obs.values, dtype=np.float32)[np.asarray(obs.mask, dtype=bool)]
    return None


def ring_data(results: Results, mode: str = "all", sample: int = 0, colors: Optional[dict] = None) -> PlotData:
    """Everything ``RingPlots`` shows of ``results`` (samples ``(N, L, V)``); any thread.

    ``colors``: ``{"levels": run levels, "tables": {"state": lut, "spread": lut}}`` colours
    the four images here (RGBA) instead of on the UI thread.
    """
    x = finite_samples(results.samples)     # (N, L, V)
    n, length, v = x.shape
    mean, std = mean_std(x)
    truth = None if results.truth is None else np.asarray(results.truth, dtype=np.float32)
    obs = results.observation
    obs_mask = obs.mask if obs is not None else np.zeros((length, v), bool)
    obs_values = obs.values if obs is not None else np.zeros((length, v))
    spec = obs.operator if obs is not None else None
    k = min(int(sample), n - 1)
    ref = truth if truth is not None else mean
    lo, hi = _safe_levels(robust_levels(np.concatenate([ref.ravel(), x.ravel()[: 200_000]]), q=0.2))
    pad = 0.08 * (hi - lo)
    err = None if truth is None else np.ascontiguousarray((mean - truth).T)
    levels = {"curve": (_nice(lo - pad), _nice(hi + pad)), "state": _safe_levels(robust_levels(ref)),
              "spread": (0.0, max(robust_levels(std, 0.5)[1], 1e-6)),
              "error": None if err is None else symmetric_levels(err)}
    arrays = {"shown": x[k:k + 1] if mode == "one" else x, "mean": mean, "std": std, "truth": truth,
              "obs_mask": obs_mask, "obs_values": obs_values, "obs_x": ops.positions(spec, obs_mask.shape[1]),
              "spec": spec, "n": n, "k": k,
              "images": {"sample": np.ascontiguousarray(x[k].T), "mean": np.ascontiguousarray(mean.T),
                         "spread": np.ascontiguousarray(std.T), "error": err}}
    if colors is not None:
        lev, tables = colors["levels"], colors["tables"]
        images = arrays["images"]
        for key, which, table in (("sample", "state", "state"), ("mean", "state", "state"),
                                  ("spread", "spread", "spread"), ("error", "error", "state")):
            if images[key] is not None and lev.get(which) is not None:
                images[key] = colorize(images[key], lev[which], tables[table])
    return PlotData("ring", (mode, int(sample)), arrays, levels)


def ring_run_levels(run: Results) -> Optional[dict]:
    """Fixed colour levels and curve range for the previews of a run (from its truth or observations)."""
    ref = _reference(run)
    if ref is None or not np.isfinite(ref).any():
        return None
    lo, hi = _safe_levels(robust_levels(ref))
    clo, chi = _safe_levels(robust_levels(ref, q=0.2))
    pad = 0.08 * (chi - clo)
    half = _nice(max((hi - lo) / 2, 1e-6))
    return {"curve": (_nice(clo - pad), _nice(chi + pad)), "state": (lo, hi), "spread": (0.0, half),
            "error": (-half, half)}


def low_dim_data(results: Results, mode: str = "all", sample: int = 0, colors: Optional[dict] = None) -> PlotData:
    """Everything ``LowDimPlots`` shows of ``results`` (samples ``(N, L, V)``); any thread (no images:
    ``colors`` is unused)."""
    x = finite_samples(results.samples)   # (N, L, V)
    n, length, v = x.shape
    k = min(int(sample), n - 1)
    shown = x[k:k + 1] if mode == "one" else x
    mean, std = mean_std(x)
    truth = None if results.truth is None else np.asarray(results.truth, dtype=np.float32)
    t = np.arange(length, dtype=np.float32)
    curves = [spaghetti(shown[:, :, i], t) for i in range(v)] if mode != "spread" else None
    arrays = {"shown": shown, "mean": mean, "std": std, "truth": truth, "t": t, "curves": curves}
    return PlotData("lowdim", (mode, int(sample)), arrays, {})


def field_data(system, results: Results, mode: str = "all", sample: int = 0,
               truth_w: Optional[np.ndarray] = None, colors: Optional[dict] = None) -> PlotData:
    """Everything ``FieldPlots`` shows of ``results`` (samples ``(N, L, C, H, W)``); any thread.

    Vorticity frames cost the most: ``truth_w`` (the truth's, computed once per run) saves
    recomputing them for every preview. ``colors`` as for ``ring_data``.
    """
    x = finite_samples(results.samples)   # (N, L, C, H, W)
    k = min(int(sample), x.shape[0] - 1)
    sample_w, label = _field_frames(system, x[k])
    all_w, _ = _field_frames(system, x) if x.shape[0] <= 64 else _field_frames(system, x[:64])
    mean_w, std_w = mean_std(all_w)
    if truth_w is None and results.truth is not None:
        truth_w = _field_frames(system, np.asarray(results.truth, dtype=np.float32))[0]
    arrays = {"sample": np.ascontiguousarray(sample_w, dtype=np.float32),
              "mean": np.ascontiguousarray(mean_w, dtype=np.float32),
              "spread": np.ascontiguousarray(std_w, dtype=np.float32),
              "truth": None if truth_w is None else np.ascontiguousarray(truth_w, dtype=np.float32),
              "label": label, "n": x.shape[0], "k": k, "length": x.shape[1]}
    ref = arrays["truth"] if arrays["truth"] is not None else arrays["mean"]
    levels = {"state": _safe_levels(symmetric_levels(ref)),
              "spread": _safe_levels((0.0, max(robust_levels(arrays["spread"], 0.5)[1], 1e-6)))}
    if colors is not None:
        lev, tables = colors["levels"], colors["tables"]
        for key, which in (("truth", "state"), ("sample", "state"), ("mean", "state"), ("spread", "spread")):
            if arrays[key] is not None:
                arrays[key] = colorize(arrays[key], lev[which], tables[which])
    return PlotData("field", (mode, int(sample)), arrays, levels)


class _Plots:
    """Common state: the results, the display mode and the chosen sample.

    Subclasses define ``kind``, ``data(results)`` (the numbers, any thread) and
    ``apply(data, results)`` (the plot items, UI thread).
    """

    kind = ""

    def __init__(self):
        self.widget = pg.GraphicsLayoutWidget()
        self.layout = self.widget.ci
        self.results: Optional[Results] = None
        self.mode = "all"
        self.sample = 0
        self.frame = 0
        #: colour levels and ranges kept while a run's previews come in (None: not running)
        self.run_levels: Optional[dict] = None
        self._running = False

    def set_mode(self, mode: str, sample: int = 0):
        self.mode, self.sample = mode, int(sample)
        if self.results is not None:
            self.set_results(self.results)

    def _sample_index(self) -> int:
        return min(self.sample, self.results.samples.shape[0] - 1) if self.results is not None else 0

    # a run ------------------------------------------------------------------------------
    def begin_run(self, run: Results):
        """A run starts (its truth and observation, blank samples): previews keep one scale."""
        self._running = True
        self.run_levels = self._run_levels(run)

    def _run_levels(self, run: Results) -> Optional[dict]:
        return None

    #: colour map of each level kind (``run_levels`` keys) of the image panels
    tables: dict = {}

    def _colors(self) -> Optional[dict]:
        """The run's levels and lookup tables, for previews coloured on the worker thread."""
        if self.run_levels is None or not self.tables:
            return None
        return {"levels": dict(self.run_levels), "tables": {k: lut(name) for k, name in self.tables.items()}}

    def preparer(self, run: Results) -> Callable[..., PlotData]:
        """``prepare(samples, preview=True) -> PlotData`` for the worker: this view's mode and
        sample, the run's truth and observation; previews are coloured with the run's scale,
        final samples get their own levels. Touches no Qt object and nothing the view
        changes later."""
        mode, sample, colors = self.mode, self.sample, self._colors()
        obs, truth = run.observation, run.truth
        data = type(self).compute

        def prepare(samples: np.ndarray, preview: bool = True) -> PlotData:
            return data(Results(samples=samples, observation=obs, truth=truth), mode, sample,
                        colors if preview else None)
        return prepare

    @staticmethod
    def compute(results: Results, mode: str, sample: int, colors: Optional[dict] = None) -> PlotData:
        raise NotImplementedError

    def data(self, results: Results, mode: str, sample: int) -> PlotData:
        return self.compute(results, mode, sample)

    # results ----------------------------------------------------------------------------
    def set_results(self, results: Results):
        self.results = results
        d = results.prepared
        if not (isinstance(d, PlotData) and d.kind == self.kind and d.key == (self.mode, self.sample)):
            d = self.data(results, self.mode, self.sample)
        if results.preview:
            if self.run_levels is None and self._finite(d):
                self.run_levels = dict(d.levels)   # a run without begin_run: the first preview sets the scale
            levels = self.run_levels or d.levels
        else:
            self._running = False
            self.run_levels = None
            levels = d.levels
        self.apply(d, levels)

    @staticmethod
    def _finite(d: PlotData) -> bool:
        m = d.arrays.get("mean")
        return m is not None and bool(np.isfinite(m).any())

    def apply(self, d: PlotData, levels: dict):
        raise NotImplementedError


def _put_image(img: pg.ImageItem, bar: pg.ColorBarItem, data: Optional[np.ndarray], levels, rect: QRectF):
    if data is None or levels is None:
        img.clear()
    else:
        _set_image(img, bar, data, levels, rect)


class RingPlots(_Plots):
    kind = "ring"

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

    tables = {"state": "CET-D1", "spread": "viridis"}
    compute = staticmethod(ring_data)

    def _run_levels(self, run: Results) -> Optional[dict]:
        return ring_run_levels(run)

    def apply(self, d: PlotData, levels: dict):
        a = d.arrays
        self.mean, self.std, self.truth, self.shown = a["mean"], a["std"], a["truth"], a["shown"]
        self.obs_mask, self.obs_values, self.obs_x = a["obs_mask"], a["obs_values"], a["obs_x"]
        length, v = self.mean.shape
        # the legend says what a dot is; a longer title would widen this column past the window
        label = self.legend.getLabel(self.obs_item)
        spec = a["spec"]
        kind, f = ops.kind_of(spec), ops.factor_of(spec)
        text = {"coarsen": f"observed block means ×{f}", "subsample": f"observations (every {ops.ordinal(f)})"}.get(
            kind, "observations")
        if label is not None and label.text != text:
            label.setText(text, size="8pt")
        set_range(self.curve_plot, (-0.5, v - 0.5), levels["curve"])
        rect = QRectF(0, 0, length, v)
        set_title(self.hov["sample"][0], f"Sample #{a['k'] + 1} of {a['n']}")
        images = a["images"]
        for key, lev in (("sample", levels["state"]), ("mean", levels["state"]), ("spread", levels["spread"]),
                         ("error", levels["error"])):
            _put_image(self.hov[key][1], self.hov[key][2], images[key], lev, rect)
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
    kind = "lowdim"

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
        self._ranged = False   # the axes were fitted to a preview of the current run

    compute = staticmethod(low_dim_data)

    def begin_run(self, run: Results):
        super().begin_run(run)
        self._ranged = False

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


def observed_cell_frames(observation, state_shape) -> list[Optional[np.ndarray]]:
    """Per state, an RGBA image framing the observed cells over the whole field (None: none).

    A coarse cell is framed as the block it averages; a pixel mask or sampled points
    are framed pixel by pixel on the state grid. Channels observed at the same place
    share one frame. States with the same pattern share one image.
    """
    if observation is None:
        return []
    mask = np.asarray(observation.mask, dtype=bool)
    spec = observation.operator
    if ops.kind_of(spec) != "coarsen":
        mask = ops.convert_mask(mask, spec, None, state_shape)
    cells = mask.reshape(mask.shape[0], -1, *mask.shape[-2:]).any(axis=1)   # (L, x, y)
    # about 256 overlay pixels across, so that frames stay one thin line on any grid
    scale = max(3, 256 // max(cells.shape[1:]))
    images, out = {}, []
    for frame in cells:
        if not frame.any():
            out.append(None)
            continue
        key = frame.tobytes()
        if key not in images:
            images[key] = mask_overlay(frame.T, scale, wash=False)   # [x, y] → rows are y
        out.append(images[key])
    return out


class FieldPlots(_Plots):
    kind = "field"

    def __init__(self, system):
        super().__init__()
        self.system = system
        self.panels = {}
        self._run_truth_w = None
        specs = [("truth", "Truth", "CET-D1", 0, 0), ("sample", "Sample", "CET-D1", 0, 1),
                 ("mean", "Posterior mean", "CET-D1", 1, 0), ("spread", "Spread (std over samples)", "viridis", 1, 1)]
        for key, title, cmap, r, c in specs:
            plot, img, bar = _image_plot(self.layout, r, c, title, cmap, "x (grid cell)", "y (grid cell)")
            plot.setAspectLocked(True)
            plot.disableAutoRange()
            self.panels[key] = (plot, img, bar)
        # observed cells framed on the truth, per state (see observed_cell_frames)
        self.observed = pg.ImageItem()
        self.observed.setZValue(10)
        self.panels["truth"][0].addItem(self.observed)
        self._observed_frames: list = []
        self._observed_for = None
        self._observed_shown = None
        cache_static_items(self.layout)

    def _run_levels(self, run: Results) -> Optional[dict]:
        # the truth's vorticity, once per run: the scale of every preview and reused by the worker
        self._run_truth_w = None
        if run.truth is None:
            return None
        self._run_truth_w = np.ascontiguousarray(
            _field_frames(self.system, np.asarray(run.truth, dtype=np.float32))[0], dtype=np.float32)
        m = _safe_levels(symmetric_levels(self._run_truth_w))
        return {"state": m, "spread": (0.0, _nice(m[1] / 2))}

    tables = {"state": "CET-D1", "spread": "viridis"}

    def preparer(self, run: Results) -> Callable[..., PlotData]:
        mode, sample, system, colors = self.mode, self.sample, self.system, self._colors()
        obs, truth, truth_w = run.observation, run.truth, self._run_truth_w

        def prepare(samples: np.ndarray, preview: bool = True) -> PlotData:
            return field_data(system, Results(samples=samples, observation=obs, truth=truth), mode, sample, truth_w,
                              colors if preview else None)
        return prepare

    def data(self, results: Results, mode: str, sample: int) -> PlotData:
        truth_w = self._run_truth_w if self._running and results.truth is not None else None
        return field_data(self.system, results, mode, sample, truth_w)

    def apply(self, d: PlotData, levels: dict):
        a = d.arrays
        self.sample_w, self.mean_w, self.std_w, self.truth_w = a["sample"], a["mean"], a["spread"], a["truth"]
        self.levels, self.std_levels = levels["state"], levels["spread"]
        label = a["label"]
        h, w = self.mean_w.shape[1:3]   # frames (L, H, W), or RGBA (L, H, W, 4) in a preview
        self.rect = QRectF(0, 0, w, h)
        set_title(self.panels["sample"][0], f"Sample #{a['k'] + 1} of {a['n']}: {label}")
        set_title(self.panels["mean"][0], f"Posterior mean: {label}")
        obs = self.results.observation if self.results is not None else None
        if obs is not self._observed_for:
            self._observed_for = obs
            self._observed_frames = observed_cell_frames(obs, self.system.state_shape)
        self._observed_shown = None   # the rect may have changed: set the overlay again
        framed = any(f is not None for f in self._observed_frames)
        set_title(self.panels["truth"][0], f"Truth: {label}" + (" · framed: observed" if framed else ""))
        for plot, *_ in self.panels.values():
            set_range(plot, (0, w), (0, h))
        t = min(self.frame, a["length"] - 1)
        pairs = [("truth", self.truth_w, self.levels), ("sample", self.sample_w, self.levels),
                 ("mean", self.mean_w, self.levels), ("spread", self.std_w, self.std_levels)]
        for key, frames, lev in pairs:
            _put_image(self.panels[key][1], self.panels[key][2], None if frames is None else frames[t], lev, self.rect)
        self.show_frame(t)

    def show_frame(self, t: int):
        if self.results is None:
            return
        self.frame = t
        p = self.panels
        # per frame only the pixels change: levels, rect and colour bars stay as set_results left them
        levels, std_levels = image_levels(self.levels), image_levels(self.std_levels)
        if self.truth_w is not None:
            _show_frame_image(p["truth"][1], self.truth_w[t], levels)
        self._show_observed(t)
        sample = self.mean_w[t] if self.mode == "spread" else self.sample_w[t]
        _show_frame_image(p["sample"][1], sample, levels)
        _show_frame_image(p["mean"][1], self.mean_w[t], levels)
        _show_frame_image(p["spread"][1], self.std_w[t], std_levels)

    def _show_observed(self, t: int):
        frames = self._observed_frames
        image = frames[t] if self.truth_w is not None and t < len(frames) else None
        if image is self._observed_shown:
            return   # most frames keep the pattern: no new texture
        self._observed_shown = image
        if image is None:
            self.observed.clear()
        else:
            self.observed.setImage(image, autoLevels=False, levels=(0, 255))
            self.observed.setRect(self.rect)
