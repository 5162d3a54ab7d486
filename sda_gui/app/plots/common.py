"""pyqtgraph helpers shared by the results plots: items that stay cheap at 60+ frames per second.

- many sample curves as one item drawn as separate segments (``sample_curve``);
- image panels (``image_plot``) whose levels, rect and colour bar are touched only when
  they change (``set_image``), and frames swapped without relayout (``show_frame_image``);
- titles and ranges set only when different (``set_title``, ``set_range``), axes and
  legends cached as pixmaps (``cache_static_items``);
- the time marker (``TimeMarker``): a black line with white edges, readable on any
  colour map and beside an axis at the first time step;
- legends (``Legend``) whose entries show exactly what is drawn (a band as a filled
  box with its mean line) and that never hide curves when clicked;
- ``quantity`` (from ``plotting``) names what a system's values are (``x_j``, ``x, y, z``):
  the plots show physical values, in the units of the system's variables.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from pyqtgraph.graphicsItems.ScatterPlotItem import drawSymbol

from ..plotting import lut, quantity  # noqa: F401 - re-exported for the plots

__all__ = ["MODES", "sample_curve", "set_curve", "image_plot", "set_image", "put_image", "show_frame_image",
           "set_title", "set_range", "cache_static_items", "TimeMarker", "Legend", "LegendSample", "band_sample",
           "quantity"]

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


def image_plot(layout: pg.GraphicsLayout, row: int, col: int, title: str, lut_name: str,
               xlabel: str, ylabel: str, cbar_label: str = ""):
    """A plot holding one ``ImageItem`` with a fixed lookup table and a (labelled) colour bar."""
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
    # values as they are: pyqtgraph would rescale small ones to "500 (x0.001)"
    bar.axis.enableAutoSIPrefix(False)
    if cbar_label:
        bar.axis.setLabel(cbar_label)
    bar._sda_labelled = bool(cbar_label)
    return plot, img, bar


def set_image(img: pg.ImageItem, bar: pg.ColorBarItem, data: np.ndarray, levels, rect: QRectF):
    """An image panel: float data drawn through the bar's levels, or RGBA bytes (``colorize``)."""
    from .data import image_levels

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


def put_image(img: pg.ImageItem, bar: pg.ColorBarItem, data, levels, rect: QRectF):
    """``set_image``, or an empty panel when there is nothing (e.g. no truth) to draw."""
    if data is None or levels is None:
        img.clear()
    else:
        set_image(img, bar, data, levels, rect)


def show_frame_image(img: pg.ImageItem, frame: np.ndarray, levels):
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
        if isinstance(item, pg.LegendItem):
            item.setCacheMode(mode)
        if isinstance(item, pg.PlotItem):
            # fixed widths: tick labels growing by a digit would otherwise resize every plot
            # in the row, and a relayout costs more than the whole frame
            if isinstance(item, pg.ColorBarItem):
                item.axis.setWidth(56 if getattr(item, "_sda_labelled", False) else 38)
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


class TimeMarker(pg.InfiniteLine):
    """A vertical line at the time shown: black with white edges, on top of the data.

    A thin coloured line vanishes on colour maps that contain its colour and against
    the axis at the first time steps; a black core between white edges reads on any
    map and stays apart from the axis line, and a triangle at each end (half of it
    inside the plot at the first step) points at it. One item draws both tones:
    the animation moves one item per plot, not two.
    """

    def __init__(self, plot):
        # the wide white pen is the item's own (its bounds cover it); the black core is drawn over it
        super().__init__(angle=90, pen=pg.mkPen((255, 255, 255), width=6), movable=False)
        self.core_pen = pg.mkPen((0, 0, 0), width=2)
        self.addMarker("v", position=1.0, size=14)
        self.addMarker("^", position=0.0, size=14)
        self.setZValue(20)
        plot.addItem(self, ignoreBounds=True)

    def paint(self, p, *args):
        left, right = self._endPoints
        p.setPen(self.currentPen)
        p.drawLine(QPointF(left, 0), QPointF(right, 0))
        edge, self.currentPen = self.currentPen, self.core_pen
        try:   # pyqtgraph's own paint: the core line and the markers, in the core's colour
            super().paint(p, *args)
        finally:
            self.currentPen = edge


class LegendSample(pg.ItemSample):
    """A legend icon that draws its item as shown, also while it is hidden, and ignores clicks.

    Also draws a ``TimeMarker`` (not a plot item) as the upright line it is.

    pyqtgraph's sample draws a crossed-out eye for a hidden item and hides the item
    when clicked; here the legend lists only what the mode draws, and the mode alone
    decides what is visible. A ``FillBetweenItem`` (a ±1 std band) is drawn as a filled
    box with its centre line, as the plot shows it.
    """

    def paint(self, p, *args):
        item = self.item
        if isinstance(item, TimeMarker):   # the marker as drawn: black between white edges, upright
            for pen in (item.pen, item.core_pen):
                p.setPen(pen)
                p.drawLine(QPointF(10, 2), QPointF(10, 19))
            return
        if isinstance(item, pg.FillBetweenItem):
            p.setPen(pg.mkPen(None))
            p.setBrush(item.brush())
            p.drawRect(QRectF(1, 4, 19, 14))
            center = getattr(item, "_sda_center_pen", None)
            if center is not None:
                p.setPen(center)
                p.drawLine(QPointF(1, 11), QPointF(20, 11))
            return
        opts = item.opts
        if not isinstance(item, pg.ScatterPlotItem):
            p.setPen(pg.mkPen(opts["pen"]))
            p.drawLine(QPointF(0, 11), QPointF(20, 11))
        symbol = opts.get("symbol")
        if symbol is not None:
            sym = item.scatter.opts if isinstance(item, pg.PlotDataItem) else opts
            p.translate(10, 10)
            drawSymbol(p, symbol, sym["size"], pg.mkPen(sym["pen"]), pg.mkBrush(sym["brush"]))

    def mouseClickEvent(self, event):
        event.ignore()


def band_sample(band: pg.FillBetweenItem, center_pen) -> pg.FillBetweenItem:
    """Tells the legend icon of a ±std band which centre line is drawn through it."""
    band._sda_center_pen = pg.mkPen(center_pen)
    return band


class Legend(pg.LegendItem):
    """A legend that sits in its own row of the figure, outside every plot, so it covers no curve.

    Its entries stay side by side at their own width (a fixed size policy) rather than
    spread over the whole row.
    """

    def __init__(self, columns: int = 6):
        super().__init__(colCount=columns, labelTextSize="8pt", sampleType=LegendSample, horSpacing=14)
        self.setBrush(pg.mkBrush(255, 255, 255, 0))
        self.setPen(pg.mkPen(None))
        policy = pg.QtWidgets.QSizePolicy.Policy.Fixed
        self.setSizePolicy(policy, policy)
        self._entries: tuple = ()

    def show_entries(self, entries):
        """``[(item, label), …]``: rebuilt only when the list changes (a mode switch)."""
        key = tuple((id(item), text) for item, text in entries)
        if key == self._entries:
            return
        self.clear()
        for item, text in entries:
            self.addItem(item, text)
        self._entries = key
        self.updateGeometry()
