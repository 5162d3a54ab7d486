"""The observation editor: paint which entries of the trajectory are observed.

``GridEditor`` puts the parts of ``sda_gui.app.editor`` together — the grid and its
mouse (``view``), *Observe through* under it (``operator_box``), and a side column
with the paint tools and patterns (``tools``) above the observation box (noise σ,
*Generate from truth*, save/load: ``observations``), which stays in view below the
tools at any height — and turns their actions into ``MaskEditor`` edits (strokes,
boxes, patterns; one undo step each).

Every tool is also a method (``paint_cell``, ``rectangle``, ``random_pattern``, …) so
tests and scripts do exactly what a click does. With an operator the grid shows the
operator applied to the truth and its cells are the observed values, so every tool
paints coarse cells.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QScrollArea, QVBoxLayout, QWidget

from .editor.hover import HINT, hover_text
from .editor.observations import OBS_FILTER, ObservationPanel
from .editor.operator_box import OperatorBox
from .editor.tools import TOOLS, ToolsPanel
from .editor.view import OVERLAY_SCALE, GridView
from .state import AppState

__all__ = ["GridEditor", "TOOLS", "HINT", "OBS_FILTER", "OVERLAY_SCALE"]

#: widgets of the parts that the editor shows as its own (tests and the window use these names)
_VIEW = ("plot_widget", "plot", "image", "overlay", "rect_preview", "colorbar", "hover_label", "time_slider",
         "time_label", "display_combo", "channel_combo", "time_row")
_TOOLS = ("tool_buttons", "tool_group", "brush_spin", "undo_button", "redo_button", "clear_button", "invert_button",
          "density_spin", "pattern_seed_spin", "random_button", "every_time_spin", "every_space_spin",
          "every_space_label", "regular_button", "copy_source_spin", "copy_from_spin", "copy_to_spin", "copy_button")
_OBS = ("count_label", "std_spin", "obs_seed_spin", "generate_button", "values_label", "save_button", "load_button",
        "error")
_OPERATOR = ("operator_combo", "factor_combo", "operator_label")


class GridEditor(QWidget):
    """Grid view plus tools; edits go to ``state.editor`` (the ``MaskEditor``)."""

    errorRaised = Signal(str)

    def __init__(self, state: AppState, settings=None, parent=None):
        super().__init__(parent)
        self.state = state
        self.settings = settings
        self.tool = "brush"
        self._stroke_last = None
        self._stroke_anchor = None
        self._stroke_open = False

        self.view = GridView(state)
        self.view.painter = self
        self.operator_box = OperatorBox()
        self.view.below.addWidget(self.operator_box)
        self.tools = ToolsPanel()
        self.observations = ObservationPanel(state, settings)
        for names, part in ((_VIEW, self.view), (_TOOLS, self.tools), (_OBS, self.observations),
                            (_OPERATOR, self.operator_box)):
            for name in names:
                setattr(self, name, getattr(part, name))

        # the tools scroll when the window is short; the observation box stays in view below them
        scroll = QScrollArea()
        scroll.setWidget(self.tools)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tools_scroll = scroll
        side = QWidget()
        side.setMinimumWidth(250)
        side.setMaximumWidth(290)
        column = QVBoxLayout(side)
        column.setContentsMargins(0, 0, 0, 0)
        # as tall as the tools where there is room, so the observation box sits right below them
        scroll.setMaximumHeight(self.tools.sizeHint().height() + 2)
        column.addWidget(scroll, 1)
        column.addWidget(self.observations)
        column.addStretch(0)
        self.side = side
        layout = QHBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(side)

        # --- wiring
        for name, b in self.tool_buttons.items():
            b.clicked.connect(lambda _=False, n=name: self.set_tool(n))
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.clear_button.clicked.connect(self.clear)
        self.invert_button.clicked.connect(self.invert)
        self.random_button.clicked.connect(lambda: self.random_pattern())
        self.regular_button.clicked.connect(lambda: self.regular_pattern())
        self.copy_button.clicked.connect(lambda: self.copy_time())
        self.observations.errorRaised.connect(self.errorRaised)
        self.time_slider.valueChanged.connect(self.set_time)
        self.display_combo.currentIndexChanged.connect(lambda _: self.refresh_image())
        self.channel_combo.currentIndexChanged.connect(lambda _: self.refresh_overlay())
        self.operator_box.chosen.connect(self.set_operator)
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

    # geometry (the view's) --------------------------------------------------------------
    @property
    def is_field(self) -> bool:
        return self.view.is_field

    @property
    def time_index(self) -> int:
        return self.view.time_index

    def _lead(self) -> tuple:
        return self.view.lead()

    def grid_shape(self) -> tuple[int, int]:
        return self.view.grid_shape()

    def cell_at(self, pos, clamp: bool = False):
        return self.view.cell_at(pos, clamp)

    def cell_center_in_view(self, col: int, row: int):
        return self.view.cell_center_in_view(col, row)

    # drawing ----------------------------------------------------------------------------
    def rebuild(self):
        """New system, truth or operator: axes, ranges, both images and the controls from scratch."""
        st = self.state
        self.tools.set_length(st.length)
        self.view.rebuild_axes()
        spec = st.operator
        self.every_space_label.setText("every m cells" if spec else
                                       ("every m pixels" if self.is_field else "every m variables"))
        self.operator_box.sync(st.state_shape, spec, st.observed_grid, self.is_field)
        self.refresh_image(levels=True)
        self.refresh_overlay()
        self.view.fit_range()
        self.observations.show_std_seed()

    def refresh_image(self, levels: bool = True):
        self.view.refresh_image(levels)

    def refresh_overlay(self):
        self.view.refresh_overlay()
        self.refresh_labels()

    def refresh_labels(self):
        st = self.state
        self.undo_button.setEnabled(st.editor.can_undo)
        self.redo_button.setEnabled(st.editor.can_redo)
        self.observations.refresh()
        if self.is_field:
            self.time_label.setText(f"{self.time_index} / {st.length - 1}")

    def show_hover(self, cell):
        self.hover_label.setText(hover_text(self.state, cell, self.is_field, self.time_index, self._lead()))

    def set_time(self, t: int):
        t = int(np.clip(t, 0, self.state.length - 1))
        if t == self.time_index and self.time_slider.value() == t:
            return
        self.view.time_index = t
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
            st = self.state
            self.operator_box.sync(st.state_shape, st.operator, st.observed_grid, self.is_field)
            return False
        self.show_error("")
        return True

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
        (ta, pa), (tb, pb) = self._to_index(corner_a), self._to_index(corner_b)
        if self.is_field:
            t = self.time_index
            self.state.editor.rectangle(t, t, pa, pb, value, self._lead())
        else:
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

    # observations (the side box's) ------------------------------------------------------
    def generate_observations(self, seed: Optional[int] = None, std: Optional[float] = None) -> bool:
        return self.observations.generate(seed, std)

    def save_observations(self, path: Optional[str] = None) -> bool:
        return self.observations.save(path)

    def load_observations(self, path: Optional[str] = None) -> bool:
        return self.observations.load(path)

    def show_error(self, text: str):
        self.observations.show_error(text)
