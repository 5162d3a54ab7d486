"""The editor's grid: the truth under the observation pattern, and the mouse that paints it.

For a 1-D state (Lorenz-63/96) the grid is a Hovmöller diagram: time step along x,
variable along y, each cell coloured by the truth. For a 2-D field (Kolmogorov) it is
the spatial grid at the time chosen with the slider (the row under the grid also
picks the field shown and the components the tools mark). With an operator the grid
shows ``A(truth)``, one cell per observed value. Observed cells keep their colour and
get a dark frame; unobserved ones are washed out (``plotting.mask_overlay``).

Left clicks and drags go to a *painter* (the ``GridEditor``: ``begin_stroke``,
``stroke_to``, ``end_stroke``, ``show_hover``) in cell coordinates; right-drag pans,
the wheel zooms (pyqtgraph's view box).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from .. import operators as ops
from ..fields import vorticity_fn
from ..plotting import lut, mask_overlay, quantity, robust_levels
from .hover import HINT

__all__ = ["GridView", "OVERLAY_SCALE", "vorticity_fn"]

OVERLAY_SCALE = 6


class _PaintTarget(pg.ImageItem):
    """The truth image; turns left clicks and drags into painter calls (cell coordinates)."""

    def __init__(self, view: "GridView"):
        super().__init__()
        self.view = view
        self.setAcceptHoverEvents(True)

    def mouseClickEvent(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        cell = self.view.cell_at(ev.pos())
        painter = self.view.painter
        if cell is not None and painter is not None:
            painter.begin_stroke()
            painter.stroke_to(cell)
            painter.end_stroke()

    def mouseDragEvent(self, ev):
        painter = self.view.painter
        if ev.button() != Qt.MouseButton.LeftButton or painter is None:
            ev.ignore()  # the view box pans
            return
        ev.accept()
        if ev.isStart():
            painter.begin_stroke(self.view.cell_at(ev.buttonDownPos(), clamp=True))
        painter.stroke_to(self.view.cell_at(ev.pos(), clamp=True))
        if ev.isFinish():
            painter.end_stroke()

    def hoverEvent(self, ev):
        if self.view.painter is None:
            return
        self.view.painter.show_hover(None if ev.isExit() else self.view.cell_at(ev.pos()))


def _field_axis_label(spec: Optional[str], axis: str) -> str:
    kind, f = ops.kind_of(spec), ops.factor_of(spec)
    if kind == "coarsen":
        return f"{axis} (pixel) · one cell = {f}×{f} pixels"
    if kind == "subsample":
        return f"{axis} (pixel) · one cell = every {ops.ordinal(f)} pixel"
    return f"{axis} (grid cell)"


class GridView(QWidget):
    """The plot with the truth image, the pattern overlay, the box preview, the colour bar,
    the time/display/channel row of fields and the hover line."""

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.painter = None
        self.time_index = 0          # the displayed time of a 2-D field
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.image = _PaintTarget(self)
        self.image.setLookupTable(lut("CET-D1"))
        self.overlay = pg.ImageItem()
        self.overlay.setZValue(5)
        self.overlay.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.plot.addItem(self.image)
        self.plot.addItem(self.overlay)
        self.rect_preview = pg.QtWidgets.QGraphicsRectItem()
        self.rect_preview.setPen(pg.mkPen((255, 0, 0), width=2, cosmetic=True))
        self.rect_preview.setZValue(10)
        self.rect_preview.setVisible(False)
        self.plot.addItem(self.rect_preview)
        self.colorbar = pg.ColorBarItem(colorMap=pg.colormap.get("CET-D1"), interactive=False, width=12)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        # pyqtgraph sizes the bar's axis for its numbers only: make room for the label saying
        # which field (and which block mean of it) the colours show
        self.colorbar.axis.setWidth(64)
        self.plot.getViewBox().setMouseEnabled(x=True, y=True)
        self.hover_label = QLabel(HINT)
        # a long hover line is cut, never allowed to widen the window
        self.hover_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.time_slider = QSlider(Qt.Orientation.Horizontal)
        self.time_slider.setToolTip("Time step shown (2-D fields)")
        self.time_label = QLabel()
        self.display_combo = QComboBox()
        self.display_combo.setToolTip("Which field colours the grid")
        self.channel_combo = QComboBox()
        self.channel_combo.setToolTip("Which components the tools mark as observed")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for w, stretch in ((QLabel("time"), 0), (self.time_slider, 1), (self.time_label, 0), (QLabel("show"), 0),
                           (self.display_combo, 0), (QLabel("observe"), 0), (self.channel_combo, 0)):
            row.addWidget(w, stretch)
        self.time_row = QWidget()
        self.time_row.setLayout(row)
        self.below = QVBoxLayout()   # rows under the grid (GridEditor adds the operator row)
        self.below.setContentsMargins(0, 0, 0, 0)
        self.below.addWidget(self.time_row)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot_widget, 1)
        layout.addLayout(self.below)
        layout.addWidget(self.hover_label)

    # geometry ---------------------------------------------------------------------------
    @property
    def is_field(self) -> bool:
        return len(self.state.state_shape) >= 2

    def lead(self) -> tuple:
        """Indices between time and the painted spatial axes (the observed channels)."""
        if not self.is_field:
            return ()
        extra = self.state.observed_grid[:-2]     # the painted grid's components (ω: one)
        c = self.channel_combo.currentData()
        lead = tuple(slice(None) for _ in extra)
        if c is not None and extra:
            lead = (int(c),) + lead[1:]
        return lead

    def grid_shape(self) -> tuple[int, int]:
        """(columns, rows) of the displayed grid: the operator's output cells."""
        grid = self.state.observed_grid
        if self.is_field:
            nx, ny = grid[-2:]   # fields are indexed [..., x, y]
            return nx, ny
        return self.state.length, grid[0]

    def cell_at(self, pos: QPointF, clamp: bool = False) -> Optional[tuple[int, int]]:
        """Image position → (column, row) cell, or None outside (clamped to the grid if asked)."""
        cols, rows = self.grid_shape()
        c, r = int(np.floor(pos.x())), int(np.floor(pos.y()))
        if clamp:
            return min(max(c, 0), cols - 1), min(max(r, 0), rows - 1)
        if 0 <= c < cols and 0 <= r < rows:
            return c, r
        return None

    def cell_center_in_view(self, col: int, row: int):
        """Widget coordinates (of ``plot_widget.viewport()``) of a cell's centre: for tests."""
        # a new grid's view range is applied at the next paint; a test may click before it
        self.plot.getViewBox().updateMatrix()
        scene = self.image.mapToScene(QPointF(col + 0.5, row + 0.5))
        return self.plot_widget.mapFromScene(scene)

    # drawing ----------------------------------------------------------------------------
    def rebuild_axes(self):
        """Axis labels, ticks, the display and channel choices, the title, and the full range."""
        st = self.state
        cols, rows = self.grid_shape()
        self.time_row.setVisible(self.is_field)
        self.time_slider.setRange(0, max(0, st.length - 1))
        self.time_index = min(self.time_index, st.length - 1)
        for combo in (self.display_combo, self.channel_combo):
            combo.blockSignals(True)
            combo.clear()
        spec = st.operator
        names = ops.observed_names(st.state_shape, spec, st.system.variable_names)
        if self.is_field:
            self.plot.setLabel("bottom", _field_axis_label(spec, "x"))
            self.plot.setLabel("left", _field_axis_label(spec, "y"))
            for axis, n in (("bottom", cols), ("left", rows)):
                self._set_pixel_ticks(self.plot.getAxis(axis), spec, n)
            # the fine vorticity under the operator's cells, where the operator reads velocities cell-wise
            if vorticity_fn(st.system) is not None and names == list(st.system.variable_names):
                self.display_combo.addItem("vorticity", "vorticity")
            for i, n in enumerate(names):
                self.display_combo.addItem(n, i)
            self.channel_combo.addItem(" and ".join(names), None)
            for i, n in enumerate(names):
                self.channel_combo.addItem(f"{n} only", i)
        else:
            self.plot.setLabel("bottom", f"time step (Δt = {st.system.dt:g})")
            self.plot.setLabel("left", "variable j" if len(names) > 4 else "variable")
            self.plot.getAxis("bottom").setTicks(None)
            left = self.plot.getAxis("left")
            if spec:
                self._set_block_ticks(left, spec, rows)
            elif len(names) <= 8:
                left.setTicks([[(i + 0.5, n) for i, n in enumerate(names)]])
            else:
                # 0-based j, as on the results plots
                step = max(1, len(names) // 8)
                left.setTicks([[(i + 0.5, str(i)) for i in range(0, len(names), step)], []])
        for combo in (self.display_combo, self.channel_combo):
            combo.blockSignals(False)
        # short titles: a title wider than the view widens the plot and cuts off the colour bar
        title = f"{st.system.title} {'truth at the chosen time' if self.is_field else 'truth'}"
        if spec:
            title = f"{st.system.title}: {ops.observed_title(spec)}"
        self.plot.setTitle(f"{title}: framed cells are observed", size="10pt")
        self.image.setRect(QRectF(0, 0, cols, rows))
        self.overlay.setRect(QRectF(0, 0, cols, rows))

    def fit_range(self):
        cols, rows = self.grid_shape()
        vb = self.plot.getViewBox()
        vb.setRange(xRange=(0, cols), yRange=(0, rows), padding=0.02)
        vb.setLimits(xMin=-cols * 0.5, xMax=cols * 1.5, yMin=-rows * 0.5, yMax=rows * 1.5)

    @staticmethod
    def _set_pixel_ticks(axis, spec: Optional[str], n: int):
        """Coarse cells keep pixel coordinates on the axes: cell i starts at pixel i·factor."""
        if not spec:
            axis.setTicks(None)
            return
        f, step = ops.factor_of(spec), max(1, n // 8)
        axis.setTicks([[(i, str(i * f)) for i in range(0, n + 1, step)], []])

    @staticmethod
    def _set_block_ticks(axis, spec: str, rows: int):
        """Row ticks of a coarse 1-D grid name the variables each row reads (``j 0–1``)."""
        step = max(1, rows // 8)
        ticks = []
        for i in range(0, rows, step):
            lo, hi = ops.cell_extent(spec, i)
            ticks.append((i + 0.5, f"{lo}" if lo == hi else f"{lo}–{hi}"))
        axis.setTicks([ticks, []])

    def _display_data(self) -> Optional[np.ndarray]:
        """The image under the pattern: the operator applied to the truth (what is observed)."""
        st = self.state
        observed = st.observed_truth()
        if observed is None:
            return None
        if not self.is_field:
            return observed.T  # rows = variables (or blocks of them), columns = time
        key = self.display_combo.currentData()
        if key == "vorticity":
            # the block mean (or samples) of the fine vorticity: what the eye reads as the flow
            w = np.asarray(vorticity_fn(st.system)(st.truth[self.time_index]), dtype=np.float32)
            return ops.apply(w[None], st.operator, 3)[0].T
        return observed[self.time_index][int(key or 0)].T  # [x, y] → image rows are y

    def refresh_image(self, levels: bool = True):
        data = self._display_data()
        cols, rows = self.grid_shape()
        if data is None or data.shape != (rows, cols):
            data = np.zeros((rows, cols), dtype=np.float32)
        if levels or not hasattr(self, "_levels"):
            observed = self.state.observed_truth()
            full = observed if observed is not None else data
            if self.is_field and self.display_combo.currentData() == "vorticity":
                full = data
            self._levels = robust_levels(np.asarray(full))
        self.image.setImage(np.asarray(data, dtype=np.float32), autoLevels=False, levels=self._levels)
        self.image.setRect(QRectF(0, 0, cols, rows))
        self.colorbar.setLevels(self._levels)
        # the colours are physical values, in the system's units: name the quantity
        shown = f"truth {quantity(self.state.system)}" if not self.is_field else self.display_combo.currentText()
        kind = ops.kind_of(self.state.operator)
        if kind == "coarsen":
            shown = f"block mean of {shown}"
        elif kind == "subsample":
            shown = f"sampled {shown}"
        elif self.is_field:
            shown = f"truth: {shown}"
        self.colorbar.axis.setLabel(shown)

    def _mask2d(self) -> np.ndarray:
        m = self.state.mask
        if not self.is_field:
            return m.T
        frame = m[self.time_index]
        lead = self.lead()
        sel = frame[lead] if lead else frame
        while sel.ndim > 2:
            sel = sel.any(0)
        return sel.T

    def refresh_overlay(self):
        cols, rows = self.grid_shape()
        # the plot is drawn roughly square, so a cell's height/width ratio is about cols/rows
        ratio = np.clip(cols / max(rows, 1), 1 / 16, 16)
        # few big cells (a coarse grid) get a finer overlay, so their frames stay thin lines
        base = max(OVERLAY_SCALE, min(32, 256 // max(cols, rows, 1)))
        sx = base * max(1.0, 1 / ratio)
        sy = base * max(1.0, ratio)
        self.overlay.setImage(mask_overlay(self._mask2d(), int(sx), int(sy)), autoLevels=False, levels=(0, 255))
        self.overlay.setRect(QRectF(0, 0, cols, rows))
