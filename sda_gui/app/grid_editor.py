"""The observation editor: paint which entries of the trajectory are observed.

For a 1-D state (Lorenz-63/96) the grid is a Hovmöller diagram: time step along x,
variable along y, each cell coloured by the truth. For a 2-D field (Kolmogorov) it is
the spatial grid at the time chosen with the slider. Observed cells keep their colour
and get a dark frame; unobserved ones are washed out.

Left-drag paints with the current tool, right-drag pans, the wheel zooms. Every tool
is also a method (``paint_cell``, ``rectangle``, ``random_pattern``, …) so tests and
scripts do exactly what a click does.

*Observe through* picks the observation operator: directly, block means
(``coarsen ×n``) or every n-th point (``subsample ×n``). With an operator the grid
shows the operator applied to the truth and its cells are the observed values, so
every tool paints coarse cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QScrollArea,
                               QSizePolicy, QSlider, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from . import operators as ops
from .plotting import lut, mask_overlay, robust_levels
from .state import AppState

__all__ = ["GridEditor", "TOOLS"]

TOOLS = ("brush", "eraser", "rectangle", "erase rectangle")
OBS_FILTER = "Observations (*.npz *.h5 *.hdf5);;All files (*)"
OVERLAY_SCALE = 6
HINT = "Left-drag paints with the chosen tool · right-drag pans · wheel zooms · hover a cell for its values"


class _PaintTarget(pg.ImageItem):
    """The truth image; turns left clicks and drags into editor calls (cell coordinates)."""

    def __init__(self, editor: "GridEditor"):
        super().__init__()
        self.editor = editor
        self.setAcceptHoverEvents(True)

    def mouseClickEvent(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        cell = self.editor.cell_at(ev.pos())
        if cell is not None:
            self.editor.begin_stroke()
            self.editor.stroke_to(cell)
            self.editor.end_stroke()

    def mouseDragEvent(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()  # the view box pans
            return
        ev.accept()
        if ev.isStart():
            self.editor.begin_stroke(self.editor.cell_at(ev.buttonDownPos(), clamp=True))
        self.editor.stroke_to(self.editor.cell_at(ev.pos(), clamp=True))
        if ev.isFinish():
            self.editor.end_stroke()

    def hoverEvent(self, ev):
        if ev.isExit():
            self.editor.show_hover(None)
        else:
            self.editor.show_hover(self.editor.cell_at(ev.pos()))


class GridEditor(QWidget):
    """Grid view plus tools; edits go to ``state.editor`` (the ``MaskEditor``)."""

    errorRaised = Signal(str)

    def __init__(self, state: AppState, settings=None, parent=None):
        super().__init__(parent)
        self.state = state
        self.settings = settings
        self.tool = "brush"
        self.time_index = 0          # the displayed time of a 2-D field
        self._stroke_last = None
        self._stroke_anchor = None
        self._stroke_open = False

        # --- the grid
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

        time_row = QHBoxLayout()
        time_row.addWidget(QLabel("time"))
        time_row.addWidget(self.time_slider, 1)
        time_row.addWidget(self.time_label)
        time_row.addWidget(QLabel("show"))
        time_row.addWidget(self.display_combo)
        time_row.addWidget(QLabel("observe"))
        time_row.addWidget(self.channel_combo)
        self.time_row = QWidget()
        self.time_row.setLayout(time_row)

        left = QVBoxLayout()
        left.addWidget(self.plot_widget, 1)
        left.addWidget(self.time_row)
        left.addWidget(self.hover_label)

        # --- what is observed
        op_box = QGroupBox("Observe through")
        op_form = QFormLayout(op_box)
        self.operator_combo = QComboBox()
        for kind, label in ops.KINDS.items():
            self.operator_combo.addItem(label, kind)
        self.operator_combo.setToolTip("The observation operator A: what one observed value measures")
        self.factor_combo = QComboBox()
        self.factor_combo.setToolTip("Block size (coarsen) or step (subsample), in grid points")
        self.operator_label = QLabel()
        self.operator_label.setWordWrap(True)
        op_form.addRow(self.operator_combo)
        op_form.addRow("n =", self.factor_combo)
        op_form.addRow(self.operator_label)
        self.operator_box = op_box

        # --- tools
        tools_box = QGroupBox("Paint")
        tools_grid = QGridLayout(tools_box)
        self.tool_buttons: dict[str, QToolButton] = {}
        self.tool_group = QButtonGroup(self)
        tips = {"brush": "Left-drag marks cells as observed (B)", "eraser": "Left-drag unmarks cells (E)",
                "rectangle": "Left-drag a box to mark (R)", "erase rectangle": "Left-drag a box to unmark"}
        for i, name in enumerate(TOOLS):
            b = QToolButton()
            b.setText(name.capitalize())
            b.setCheckable(True)
            b.setToolTip(tips[name])
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setSizePolicy(b.sizePolicy().horizontalPolicy().Expanding, b.sizePolicy().verticalPolicy())
            self.tool_group.addButton(b)
            self.tool_buttons[name] = b
            tools_grid.addWidget(b, i // 2, i % 2)
            b.clicked.connect(lambda _=False, n=name: self.set_tool(n))
        self.tool_buttons["brush"].setChecked(True)
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(1, 32)
        self.brush_spin.setValue(1)
        self.brush_spin.setToolTip("Brush width in cells")
        tools_grid.addWidget(QLabel("brush size"), 2, 0)
        tools_grid.addWidget(self.brush_spin, 2, 1)
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.clear_button = QPushButton("Clear")
        self.invert_button = QPushButton("Invert")
        tools_grid.addWidget(self.undo_button, 3, 0)
        tools_grid.addWidget(self.redo_button, 3, 1)
        tools_grid.addWidget(self.clear_button, 4, 0)
        tools_grid.addWidget(self.invert_button, 4, 1)

        pattern_box = QGroupBox("Patterns")
        pattern_form = QGridLayout(pattern_box)
        self.density_spin = QDoubleSpinBox()
        self.density_spin.setRange(0.0, 1.0)
        self.density_spin.setSingleStep(0.05)
        self.density_spin.setValue(0.2)
        self.density_spin.setToolTip("Fraction of entries observed")
        self.pattern_seed_spin = QSpinBox()
        self.pattern_seed_spin.setRange(0, 2**31 - 1)
        self.random_button = QPushButton("Random")
        self.random_button.setToolTip("Replace the pattern by a random one with this density and seed")
        pattern_form.addWidget(QLabel("density"), 0, 0)
        pattern_form.addWidget(self.density_spin, 0, 1)
        pattern_form.addWidget(QLabel("seed"), 1, 0)
        pattern_form.addWidget(self.pattern_seed_spin, 1, 1)
        pattern_form.addWidget(self.random_button, 2, 0, 1, 2)
        self.every_time_spin = QSpinBox()
        self.every_time_spin.setRange(1, 4096)
        self.every_time_spin.setValue(4)
        self.every_space_spin = QSpinBox()
        self.every_space_spin.setRange(1, 4096)
        self.every_space_spin.setValue(2)
        self.every_space_label = QLabel("every m variables")
        self.regular_button = QPushButton("Regular")
        self.regular_button.setToolTip("Replace the pattern by a lattice")
        pattern_form.addWidget(QLabel("every n states"), 3, 0)
        pattern_form.addWidget(self.every_time_spin, 3, 1)
        pattern_form.addWidget(self.every_space_label, 4, 0)
        pattern_form.addWidget(self.every_space_spin, 4, 1)
        pattern_form.addWidget(self.regular_button, 5, 0, 1, 2)
        self.copy_source_spin = QSpinBox()
        self.copy_source_spin.setToolTip("The time step whose pattern is copied")
        self.copy_from_spin = QSpinBox()
        self.copy_from_spin.setToolTip("First time step that receives the pattern")
        self.copy_to_spin = QSpinBox()
        self.copy_to_spin.setToolTip("Last time step that receives the pattern")
        self.copy_button = QPushButton("Copy pattern")
        self.copy_button.setToolTip("Copy the pattern of one time step to the time steps in the range")
        pattern_form.addWidget(QLabel("pattern of time"), 6, 0)
        pattern_form.addWidget(self.copy_source_spin, 6, 1)
        copy_range = QHBoxLayout()
        copy_range.addWidget(QLabel("to"))
        copy_range.addWidget(self.copy_from_spin)
        copy_range.addWidget(QLabel("…"))
        copy_range.addWidget(self.copy_to_spin)
        pattern_form.addLayout(copy_range, 7, 0, 1, 2)
        pattern_form.addWidget(self.copy_button, 8, 0, 1, 2)

        obs_box = QGroupBox("Observations")
        obs_form = QFormLayout(obs_box)
        self.count_label = QLabel()
        self.count_label.setWordWrap(True)
        self.std_spin = QDoubleSpinBox()
        self.std_spin.setDecimals(3)
        self.std_spin.setRange(0.001, 1000.0)
        self.std_spin.setSingleStep(0.1)
        self.std_spin.setToolTip("Observation noise standard deviation σ_y (physical units)")
        self.obs_seed_spin = QSpinBox()
        self.obs_seed_spin.setRange(0, 2**31 - 1)
        self.obs_seed_spin.setToolTip("Seed of the observation noise")
        self.generate_button = QPushButton("Generate from truth")
        self.generate_button.setToolTip("y = truth + σ·noise on the observed cells")
        self.values_label = QLabel()
        self.values_label.setWordWrap(True)
        self.save_button = QPushButton("Save…")
        self.load_button = QPushButton("Load…")
        obs_form.addRow(self.count_label)
        obs_form.addRow("noise σ", self.std_spin)
        obs_form.addRow("noise seed", self.obs_seed_spin)
        obs_form.addRow(self.generate_button)
        obs_form.addRow(self.values_label)
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        obs_form.addRow(files)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.setVisible(False)

        tools = QWidget()
        tl = QVBoxLayout(tools)
        tl.setContentsMargins(0, 0, 0, 0)
        for w in (op_box, tools_box, pattern_box, obs_box, self.error):
            tl.addWidget(w)
        tl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(tools)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(250)
        scroll.setMaximumWidth(290)

        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addWidget(scroll)

        # --- wiring
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.clear_button.clicked.connect(self.clear)
        self.invert_button.clicked.connect(self.invert)
        self.random_button.clicked.connect(lambda: self.random_pattern())
        self.regular_button.clicked.connect(lambda: self.regular_pattern())
        self.copy_button.clicked.connect(lambda: self.copy_time())
        self.generate_button.clicked.connect(lambda: self.generate_observations())
        self.save_button.clicked.connect(lambda: self.save_observations())
        self.load_button.clicked.connect(lambda: self.load_observations())
        self.std_spin.valueChanged.connect(self._std_changed)
        self.obs_seed_spin.valueChanged.connect(self.state.set_obs_seed)
        self.time_slider.valueChanged.connect(self.set_time)
        self.display_combo.currentIndexChanged.connect(lambda _: self.refresh_image())
        self.channel_combo.currentIndexChanged.connect(lambda _: self.refresh_overlay())
        self.operator_combo.activated.connect(lambda _: self._operator_chosen())
        self.factor_combo.activated.connect(lambda _: self._operator_chosen())
        for key, tool in (("B", "brush"), ("E", "eraser"), ("R", "rectangle")):
            QShortcut(QKeySequence(key), self, activated=lambda t=tool: self.set_tool(t))
        QShortcut(QKeySequence.StandardKey.Undo, self, activated=self.undo)
        QShortcut(QKeySequence.StandardKey.Redo, self, activated=self.redo)
        state.patternChanged.connect(self.refresh_overlay)
        state.operatorChanged.connect(self.rebuild)
        state.truthChanged.connect(self.rebuild)
        state.systemChanged.connect(self.rebuild)
        state.observationsChanged.connect(self.refresh_labels)
        self.rebuild()

    # geometry ---------------------------------------------------------------------------
    @property
    def is_field(self) -> bool:
        return len(self.state.state_shape) >= 2

    def _lead(self) -> tuple:
        """Indices between time and the painted spatial axes (the observed channels)."""
        if not self.is_field:
            return ()
        extra = self.state.state_shape[:-2]
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
    def rebuild(self):
        """New system or truth: axes, ranges and both images from scratch."""
        st = self.state
        cols, rows = self.grid_shape()
        self.time_row.setVisible(self.is_field)
        self.copy_source_spin.setRange(0, max(0, st.length - 1))
        for spin in (self.copy_from_spin, self.copy_to_spin):
            spin.setRange(0, max(0, st.length - 1))
        self.copy_from_spin.setValue(0)
        self.copy_to_spin.setValue(st.length - 1)
        self.time_slider.setRange(0, max(0, st.length - 1))
        self.time_index = min(self.time_index, st.length - 1)
        self.display_combo.blockSignals(True)
        self.display_combo.clear()
        self.channel_combo.blockSignals(True)
        self.channel_combo.clear()
        names = st.system.variable_names
        spec = st.operator
        if self.is_field:
            self.plot.setLabel("bottom", _field_axis_label(spec, "x"))
            self.plot.setLabel("left", _field_axis_label(spec, "y"))
            for axis, n in (("bottom", cols), ("left", rows)):
                self._set_pixel_ticks(self.plot.getAxis(axis), spec, n)
            self.every_space_label.setText("every m cells" if spec else "every m pixels")
            has_vort = _vorticity_fn(st.system) is not None
            if has_vort:
                self.display_combo.addItem("vorticity", "vorticity")
            for i, n in enumerate(names):
                self.display_combo.addItem(n, i)
            self.channel_combo.addItem(" and ".join(names), None)
            for i, n in enumerate(names):
                self.channel_combo.addItem(f"{n} only", i)
        else:
            dt = st.system.dt
            self.plot.setLabel("bottom", f"time step (Δt = {dt:g})")
            self.plot.setLabel("left", "variable j" if len(names) > 4 else "variable")
            self.every_space_label.setText("every m cells" if spec else "every m variables")
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
        self.display_combo.blockSignals(False)
        self.channel_combo.blockSignals(False)
        # short titles: a title wider than the view widens the plot and cuts off the colour bar
        title = f"{st.system.title} {'truth at the chosen time' if self.is_field else 'truth'}"
        if ops.kind_of(spec) == "coarsen":
            title = f"{st.system.title}: block means ×{ops.factor_of(spec)} of the truth"
        elif ops.kind_of(spec) == "subsample":
            title = f"{st.system.title}: truth at every {ops.ordinal(ops.factor_of(spec))} point"
        self.plot.setTitle(f"{title}: framed cells are observed", size="10pt")
        self._sync_operator_controls()
        self.image.setRect(QRectF(0, 0, cols, rows))
        self.overlay.setRect(QRectF(0, 0, cols, rows))
        self.refresh_image(levels=True)
        self.refresh_overlay()
        self.plot.getViewBox().setRange(xRange=(0, cols), yRange=(0, rows), padding=0.02)
        self.plot.getViewBox().setLimits(xMin=-cols * 0.5, xMax=cols * 1.5, yMin=-rows * 0.5, yMax=rows * 1.5)
        self.std_spin.blockSignals(True)
        self.std_spin.setValue(st.obs_std)
        self.std_spin.blockSignals(False)
        self.obs_seed_spin.blockSignals(True)
        self.obs_seed_spin.setValue(st.obs_seed)
        self.obs_seed_spin.blockSignals(False)

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
            w = np.asarray(_vorticity_fn(st.system)(st.truth[self.time_index]), dtype=np.float32)
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
        shown = "truth" if not self.is_field else self.display_combo.currentText()
        kind = ops.kind_of(self.state.operator)
        if kind == "coarsen":
            shown = f"block mean of {shown}"
        elif kind == "subsample":
            shown = f"sampled {shown}"
        if not self.is_field:
            shown = f"{shown} (model units)"
        elif kind == "identity":
            shown = f"truth: {shown}"
        self.colorbar.axis.setLabel(shown)

    def _mask2d(self) -> np.ndarray:
        m = self.state.mask
        if not self.is_field:
            return m.T
        frame = m[self.time_index]
        lead = self._lead()
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
        self.refresh_labels()

    def refresh_labels(self):
        st = self.state
        n, total = st.editor.count, st.mask.size
        self.count_label.setText(f"<b>{n}</b> / {total} observed ({100.0 * n / max(total, 1):.1f} %)")
        self.undo_button.setEnabled(st.editor.can_undo)
        self.redo_button.setEnabled(st.editor.can_redo)
        if self.std_spin.value() != st.obs_std:
            self.std_spin.blockSignals(True)
            self.std_spin.setValue(st.obs_std)
            self.std_spin.blockSignals(False)
        if st.obs_values is None:
            txt = "No values yet: they are drawn from the truth when you assimilate."
        elif st.values_stale:
            txt = "Values are out of date (σ or seed changed, or new cells): they are redrawn when you assimilate."
        else:
            txt = f"Values ready (σ = {st.obs_std:g}, seed {st.obs_seed})."
        self.values_label.setText(txt)
        if self.is_field:
            self.time_label.setText(f"{self.time_index} / {st.length - 1}")

    def show_hover(self, cell):
        if cell is None:
            self.hover_label.setText(HINT)
            return
        st = self.state
        c, r = cell
        spec = st.operator
        if self.is_field:
            t = self.time_index
            where = f"time step {t} · pixel (x={c}, y={r})"
            if spec:
                where = f"time step {t} · cell (x={c}, y={r}): pixels x {_span(spec, c)}, y {_span(spec, r)}"
            entries = self._field_entries(t, c, r)
        else:
            t, v = c, r
            names = st.system.variable_names
            var = names[v] if len(names) <= 8 else f"variable j = {v}"
            if spec:
                var = f"cell {v}: variables j = {_span(spec, v)}"
            where = f"time step {t} (t = {t * st.system.dt:.3g}) · {var}"
            entries = [("", (t, v))]
        parts = [where]
        truth = st.observed_truth()
        values = st.obs_values
        for name, idx in entries:
            bits = [] if truth is None else [f"{'A(truth)' if spec else 'truth'} {float(truth[idx]):.3g}"]
            observed = bool(st.mask[idx])
            bits.append("observed" if observed else "not observed")
            if observed and values is not None and values.shape == st.mask.shape and np.isfinite(values[idx]):
                bits.append(f"y = {float(values[idx]):.3g}")
            parts.append(f"{name}: " * bool(name) + ", ".join(bits))
        self.hover_label.setText(" · ".join(parts))

    def _field_entries(self, t: int, c: int, r: int) -> list[tuple[str, tuple]]:
        """(component name, index) of the components the hover reports: those the tools mark."""
        st = self.state
        if len(st.state_shape) != 3:
            return [("", (t, c, r))]
        lead = self._lead()
        chans = [lead[0]] if lead and isinstance(lead[0], int) else range(st.state_shape[0])
        names = st.system.variable_names
        return [(names[k] if k < len(names) else str(k), (t, k, c, r)) for k in chans]

    def set_time(self, t: int):
        t = int(np.clip(t, 0, self.state.length - 1))
        if t == self.time_index and self.time_slider.value() == t:
            return
        self.time_index = t
        if self.time_slider.value() != t:
            self.time_slider.setValue(t)
        self.copy_source_spin.setValue(t)
        if self.is_field:
            self.refresh_image(levels=self.display_combo.currentData() == "vorticity")
            self.refresh_overlay()

    # operator ---------------------------------------------------------------------------
    def set_operator(self, spec: Optional[str]) -> bool:
        """Observes through ``spec`` (``None``, ``"coarsen:8"``, ``"subsample:4"``); False with
        a message when it does not fit the state grid. Undo goes back to the previous one."""
        try:
            self.state.set_operator(spec)
        except ValueError as exc:
            self.show_error(str(exc))
            self._sync_operator_controls()
            return False
        self.show_error("")
        return True

    def _operator_chosen(self):
        kind = self.operator_combo.currentData()
        if kind == "identity":
            self.set_operator(None)
            return
        factor = self.factor_combo.currentData()
        if factor is None:
            factors = ops.operator_factors(self.state.state_shape)
            factor = 4 if 4 in factors else (factors[0] if factors else 2)
        self.set_operator(f"{kind}:{factor}")

    def _sync_operator_controls(self):
        """Shows the state's operator in the combos; offers operators only where the grid allows."""
        st = self.state
        spec = st.operator
        factors = ops.operator_factors(st.state_shape)
        if spec and ops.factor_of(spec) not in factors:
            factors = sorted(set(factors) | {ops.factor_of(spec)})  # e.g. from a loaded file
        for combo in (self.operator_combo, self.factor_combo):
            combo.blockSignals(True)
        self.factor_combo.clear()
        for f in factors:
            self.factor_combo.addItem(f"×{f}", f)
        kind = ops.kind_of(spec)
        self.operator_combo.setCurrentIndex(max(0, self.operator_combo.findData(kind)))
        if spec:
            self.factor_combo.setCurrentIndex(max(0, self.factor_combo.findData(ops.factor_of(spec))))
        else:
            self.factor_combo.setCurrentIndex(max(0, self.factor_combo.findData(4)))
        for combo in (self.operator_combo, self.factor_combo):
            combo.blockSignals(False)
        self.operator_box.setEnabled(bool(factors) or bool(spec))
        self.factor_combo.setEnabled(bool(spec))
        grid = "×".join(map(str, st.observed_grid[-2:] if self.is_field else st.observed_grid))
        per = " per component" if self.is_field and len(st.state_shape) > 2 else ""
        if not factors and not spec:
            text = "These few variables have no spatial grid to coarsen: each is observed directly."
        elif not spec:
            text = f"Each cell is one grid point of the state ({grid}{per})."
        else:
            text = f"Each cell is one observed value: {ops.describe(spec, self.is_field)} ({grid}{per})."
        self.operator_label.setText(text)

    # tools: every mouse action has a method ----------------------------------------------
    def set_tool(self, name: str):
        if name not in TOOLS:
            raise ValueError(f"unknown tool '{name}' (known: {', '.join(TOOLS)})")
        self.tool = name
        self.tool_buttons[name].setChecked(True)

    def _to_index(self, cell) -> tuple[int, tuple]:
        """Displayed (column, row) → (time, spatial position) in the mask."""
        c, r = cell
        if self.is_field:
            return self.time_index, (c, r)   # column = x, row = y; fields are [..., x, y]
        return c, (r,)

    def begin_stroke(self, cell=None):
        """Opens a stroke (one undo step); a drag starts at ``cell``, where the button went down."""
        self.state.editor.begin_stroke()
        self._stroke_open = True
        self._stroke_anchor = cell
        self._stroke_last = None
        if cell is not None and self.tool in ("brush", "eraser"):
            self.stroke_to(cell)

    def stroke_to(self, cell):
        """Continues the open stroke to ``cell``: paints along the way, or stretches the box."""
        if cell is None:
            return
        if self.tool in ("brush", "eraser"):
            start = self._stroke_last or cell
            n = max(abs(cell[0] - start[0]), abs(cell[1] - start[1]), 1)
            # a fast drag skips cells between two mouse events: fill the segment in between
            for i in range(n + 1):
                c = (round(start[0] + (cell[0] - start[0]) * i / n), round(start[1] + (cell[1] - start[1]) * i / n))
                self.paint_cell(*c, value=self.tool == "brush")
            self._stroke_last = cell
        else:
            if self._stroke_anchor is None:
                self._stroke_anchor = cell
            a = self._stroke_anchor
            x0, x1 = sorted((a[0], cell[0]))
            y0, y1 = sorted((a[1], cell[1]))
            self.rect_preview.setRect(QRectF(x0, y0, x1 - x0 + 1, y1 - y0 + 1))
            self.rect_preview.setVisible(True)
            self._stroke_last = cell

    def end_stroke(self):
        if self.tool in ("rectangle", "erase rectangle") and self._stroke_anchor and self._stroke_last:
            self.rect_preview.setVisible(False)
            self.rectangle(self._stroke_anchor, self._stroke_last, value=self.tool == "rectangle")
        self.state.editor.end_stroke()
        self._stroke_open = False
        self._stroke_anchor = self._stroke_last = None

    def paint_cell(self, col: int, row: int, value: bool = True, size: Optional[int] = None):
        """Marks (or unmarks) a brush-sized square around a displayed cell."""
        t, pos = self._to_index((col, row))
        self.state.editor.brush(t, pos, self.brush_spin.value() if size is None else size, value, self._lead())

    def rectangle(self, corner_a, corner_b, value: bool = True):
        """Fills the box between two displayed cells (inclusive)."""
        if self.is_field:
            (ta, pa), (_, pb) = self._to_index(corner_a), self._to_index(corner_b)
            t = self.time_index
            self.state.editor.rectangle(t, t, pa, pb, value, self._lead())
        else:
            (ta, pa), (tb, pb) = self._to_index(corner_a), self._to_index(corner_b)
            self.state.editor.rectangle(ta, tb, pa, pb, value)

    def undo(self):
        self.state.editor.undo()

    def redo(self):
        self.state.editor.redo()

    def clear(self):
        self.state.editor.clear()

    def invert(self):
        self.state.editor.invert()

    def random_pattern(self, density: Optional[float] = None, seed: Optional[int] = None):
        if density is not None:
            self.density_spin.setValue(density)
        if seed is not None:
            self.pattern_seed_spin.setValue(seed)
        self.state.editor.random(self.density_spin.value(), self.pattern_seed_spin.value())

    def regular_pattern(self, every_time: Optional[int] = None, every_space: Optional[int] = None):
        if every_time is not None:
            self.every_time_spin.setValue(every_time)
        if every_space is not None:
            self.every_space_spin.setValue(every_space)
        self.state.editor.regular(self.every_time_spin.value(), self.every_space_spin.value())

    def copy_time(self, source: Optional[int] = None, targets=None):
        """Copies the pattern of time ``source`` to ``targets`` (default: the range in the panel)."""
        if source is not None:
            self.copy_source_spin.setValue(source)
        if targets is None:
            a, b = sorted((self.copy_from_spin.value(), self.copy_to_spin.value()))
            targets = range(a, b + 1)
        self.state.editor.copy_time(self.copy_source_spin.value(), targets)

    def _std_changed(self, value: float):
        self.state.set_obs_std(value)

    def generate_observations(self, seed: Optional[int] = None, std: Optional[float] = None) -> bool:
        if seed is not None:
            self.obs_seed_spin.setValue(seed)
        if std is not None:
            self.std_spin.setValue(std)
        try:
            self.state.generate_observations(self.obs_seed_spin.value(), self.std_spin.value())
        except ValueError as exc:
            self.show_error(str(exc))
            return False
        self.show_error("")
        return True

    def show_error(self, text: str):
        self.error.setText(text)
        self.error.setVisible(bool(text))
        if text:
            self.errorRaised.emit(text)

    # files ------------------------------------------------------------------------------
    def _ask_path(self, save: bool) -> Optional[str]:
        folder = str(self.settings.value("last_folder", "")) if self.settings is not None else ""
        if save:
            path, _ = QFileDialog.getSaveFileName(self, "Save observations", str(Path(folder) / "observations.npz"), OBS_FILTER)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Load observations", folder, OBS_FILTER)
        if path and self.settings is not None:
            self.settings.setValue("last_folder", str(Path(path).parent))
        return path or None

    def save_observations(self, path: Optional[str] = None) -> bool:
        path = path or self._ask_path(save=True)
        if not path:
            return False
        try:
            obs = self.state.observation()
            obs.save(path)
        except (ValueError, OSError) as exc:
            self.show_error(f"cannot save observations: {exc}")
            return False
        self.show_error("")
        through = f" through {obs.operator}" if obs.operator else ""
        self.state.message.emit(f"saved {obs.count} observations{through} to {path}")
        return True

    def load_observations(self, path: Optional[str] = None) -> bool:
        path = path or self._ask_path(save=False)
        if not path:
            return False
        try:
            self.state.ensure_engine()
            from sda_gui.core.observation import Observation

            obs = Observation.load(path)
            self.state.set_observation(obs)
        except (ValueError, OSError) as exc:
            self.show_error(f"cannot load {Path(path).name}: {exc}")
            return False
        self.show_error("")
        through = f" through {obs.operator}" if obs.operator else ""
        self.state.message.emit(f"loaded {obs.count} observations{through} from {Path(path).name}")
        return True


def _field_axis_label(spec: Optional[str], axis: str) -> str:
    kind, f = ops.kind_of(spec), ops.factor_of(spec)
    if kind == "coarsen":
        return f"{axis} (pixel) · one cell = {f}×{f} pixels"
    if kind == "subsample":
        return f"{axis} (pixel) · one cell = every {ops.ordinal(f)} pixel"
    return f"{axis} (grid cell)"


def _span(spec: str, index: int) -> str:
    lo, hi = ops.cell_extent(spec, index)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def _vorticity_fn(system):
    """The system's vorticity function for 2-D velocity fields, if it has one."""
    if getattr(system, "name", "") != "kolmogorov":
        return None
    try:
        from sda_gui.core.systems.kolmogorov import vorticity
    except ImportError:
        return None

    def fn(frame):
        import torch

        w = vorticity(torch.as_tensor(np.asarray(frame))[None])
        return np.asarray(w[0].detach().cpu().numpy() if hasattr(w, "detach") else w[0])
    return fn
