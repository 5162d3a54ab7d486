"""Presenter mode: the window readable from the back of a room, and back again.

``set_presenter_mode(window, True)`` goes full screen and scales what is read from
afar by ``SCALE`` (1.6): the application font, the plot titles, the tick and label
fonts of every pyqtgraph axis, the line widths of every curve (``LINE_SCALE`` × 2, since a thin line
vanishes first on a projector) and the lesson dock's text. What it changed is kept
on the window (``_presenter``) so that ``set_presenter_mode(window, False)`` restores
exactly the fonts, pens and geometry of before. Curves drawn after switching on
keep their own widths; switching off and on again scales them too.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication

__all__ = ["set_presenter_mode", "is_presenter", "SCALE", "LINE_SCALE"]

SCALE = 1.6
LINE_SCALE = 2.0


def is_presenter(window) -> bool:
    return getattr(window, "_presenter", None) is not None


def _scaled(font: QFont, scale: float) -> QFont:
    out = QFont(font)
    if out.pointSizeF() > 0:
        out.setPointSizeF(out.pointSizeF() * scale)
    else:
        out.setPixelSize(max(1, round(out.pixelSize() * scale)))
    return out


def _plot_items(window):
    for view in window.findChildren(pg.GraphicsView):
        scene = view.scene()
        if scene is None:
            continue
        for item in scene.items():
            yield item


def set_presenter_mode(window, on: bool) -> None:
    """Full screen with larger fonts and thicker lines (``on``), or everything as it was."""
    if bool(on) == is_presenter(window):
        return
    app = QApplication.instance()
    if on:
        saved = {"font": QFont(app.font()), "geometry": window.saveGeometry(), "maximized": window.isMaximized(),
                 "axes": [], "pens": [], "titles": []}
        app.setFont(_scaled(app.font(), SCALE))
        for item in _plot_items(window):
            if isinstance(item, pg.PlotItem) and item.titleLabel.text:
                label = item.titleLabel
                saved["titles"].append((item, label.text, label.opts.get("size")))
                label.setText(label.text, size=f"{round(11 * SCALE)}pt")
            elif isinstance(item, pg.AxisItem):
                tick = item.style.get("tickFont")
                saved["axes"].append((item, tick, dict(item.labelStyle)))
                # no font of its own: the (now scaled) application font
                item.setTickFont(_scaled(tick, SCALE) if tick is not None else QFont(app.font()))
                item.labelStyle = {**item.labelStyle, "font-size": f"{round(11 * SCALE)}pt"}
                item._updateLabel()
            elif isinstance(item, pg.PlotDataItem) or (isinstance(item, pg.PlotCurveItem)
                                                       and not isinstance(item.parentItem(), pg.PlotDataItem)):
                pen = item.opts.get("pen")
                if pen is None:
                    continue
                pen = pg.mkPen(pen)
                saved["pens"].append((item, pg.mkPen(pen)))
                pen.setWidthF(max(1.0, pen.widthF()) * LINE_SCALE)
                item.setPen(pen)
        dock = getattr(window, "lesson_dock", None)
        if dock is not None:
            dock.set_text_scale(SCALE)
        window._presenter = saved
        window.showFullScreen()
        return
    saved = window._presenter
    window._presenter = None
    app.setFont(saved["font"])
    for item, tick_font, label_style in saved["axes"]:
        item.setTickFont(tick_font)
        item.labelStyle = label_style
        item._updateLabel()
    for item, pen in saved["pens"]:
        item.setPen(pen)
    for item, text, size in saved["titles"]:
        item.titleLabel.setText(text, **({"size": size} if size else {}))
    dock = getattr(window, "lesson_dock", None)
    if dock is not None:
        dock.set_text_scale(1.0)
    window.showNormal()
    window.restoreGeometry(saved["geometry"])
    if saved["maximized"]:
        window.showMaximized()
