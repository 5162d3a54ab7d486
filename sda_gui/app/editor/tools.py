"""The editor's tools: what a left-drag does, and patterns made in one click.

*Paint*: brush, eraser, rectangle and erase-rectangle (B, E, R), the brush width,
undo/redo/clear/invert. *Patterns*: a random pattern of a density and seed, a
regular lattice (every n states, every m variables or cells), and the pattern of
one time step copied to a range of time steps. The widgets only; ``GridEditor``
connects them to the ``MaskEditor``. Laid out compactly so that the whole side
panel, with the observations below it, fits a 1280×800 window.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QDoubleSpinBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QPushButton, QSizePolicy, QSpinBox, QToolButton, QVBoxLayout, QWidget)

__all__ = ["ToolsPanel", "TOOLS"]

TOOLS = ("brush", "eraser", "rectangle", "erase rectangle")
TIPS = {"brush": "Left-drag marks cells as observed (B)", "eraser": "Left-drag unmarks cells (E)",
        "rectangle": "Left-drag a box to mark (R)", "erase rectangle": "Left-drag a box to unmark"}


def _spin(lo: int, hi: int, value: int = 0, tip: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    if tip:
        s.setToolTip(tip)
    return s


class ToolsPanel(QWidget):
    """The *Paint* and *Patterns* boxes."""

    def __init__(self, parent=None):
        super().__init__(parent)
        tools_box = QGroupBox("Paint")
        grid = QGridLayout(tools_box)
        grid.setVerticalSpacing(4)
        self.tool_buttons: dict[str, QToolButton] = {}
        self.tool_group = QButtonGroup(self)
        for i, name in enumerate(TOOLS):
            b = QToolButton()
            b.setText(name.capitalize())
            b.setCheckable(True)
            b.setToolTip(TIPS[name])
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, b.sizePolicy().verticalPolicy())
            self.tool_group.addButton(b)
            self.tool_buttons[name] = b
            grid.addWidget(b, i // 2, i % 2)
        self.tool_buttons["brush"].setChecked(True)
        self.brush_spin = _spin(1, 32, 1, "Brush width in cells")
        grid.addWidget(QLabel("brush size"), 2, 0)
        grid.addWidget(self.brush_spin, 2, 1)
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Unmark every cell")
        self.invert_button = QPushButton("Invert")
        self.invert_button.setToolTip("Observed cells become unobserved and the other way round")
        edits = QHBoxLayout()
        edits.setSpacing(3)
        for b in (self.undo_button, self.redo_button, self.clear_button, self.invert_button):
            b.setMinimumWidth(20)
            edits.addWidget(b)
        grid.addLayout(edits, 3, 0, 1, 2)

        pattern_box = QGroupBox("Patterns")
        form = QGridLayout(pattern_box)
        form.setVerticalSpacing(4)
        self.density_spin = QDoubleSpinBox()
        self.density_spin.setRange(0.0, 1.0)
        self.density_spin.setSingleStep(0.05)
        self.density_spin.setValue(0.2)
        self.density_spin.setToolTip("Fraction of entries observed")
        self.pattern_seed_spin = _spin(0, 2**31 - 1, 0, "Seed of the random pattern")
        self.random_button = QPushButton("Random")
        self.random_button.setToolTip("Replace the pattern by a random one with this density and seed")
        form.addWidget(QLabel("density"), 0, 0)
        form.addWidget(self.density_spin, 0, 1)
        form.addWidget(self.random_button, 0, 2)
        form.addWidget(QLabel("seed"), 1, 0)
        form.addWidget(self.pattern_seed_spin, 1, 1)
        self.every_time_spin = _spin(1, 4096, 4, "Observe every n-th time step")
        self.every_space_spin = _spin(1, 4096, 2, "Observe every m-th variable (or cell)")
        self.every_space_label = QLabel("every m variables")
        self.regular_button = QPushButton("Regular")
        self.regular_button.setToolTip("Replace the pattern by a lattice")
        form.addWidget(QLabel("every n states"), 2, 0)
        form.addWidget(self.every_time_spin, 2, 1)
        form.addWidget(self.regular_button, 2, 2)
        form.addWidget(self.every_space_label, 3, 0)
        form.addWidget(self.every_space_spin, 3, 1)
        self.copy_source_spin = _spin(0, 0, 0, "The time step whose pattern is copied")
        self.copy_from_spin = _spin(0, 0, 0, "First time step that receives the pattern")
        self.copy_to_spin = _spin(0, 0, 0, "Last time step that receives the pattern")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the pattern of one time step to the time steps in the range")
        form.addWidget(QLabel("pattern of time"), 4, 0)
        form.addWidget(self.copy_source_spin, 4, 1)
        form.addWidget(self.copy_button, 4, 2)
        copy_range = QHBoxLayout()
        copy_range.addWidget(QLabel("to time"))
        copy_range.addWidget(self.copy_from_spin, 1)
        copy_range.addWidget(QLabel("…"))
        copy_range.addWidget(self.copy_to_spin, 1)
        form.addLayout(copy_range, 5, 0, 1, 3)
        form.setColumnStretch(1, 1)

        # narrow number fields: the column must fit beside the grid at 1280 pixels
        for spin in (self.density_spin, self.pattern_seed_spin, self.every_time_spin, self.every_space_spin,
                     self.copy_source_spin):
            spin.setMaximumWidth(68)
        for b in (self.random_button, self.regular_button, self.copy_button):
            b.setMinimumWidth(60)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(tools_box)
        layout.addWidget(pattern_box)
        layout.addStretch(1)

    def set_length(self, length: int):
        """Time steps ``0 … length − 1`` for the copy controls (the range covers all of them)."""
        for spin in (self.copy_source_spin, self.copy_from_spin, self.copy_to_spin):
            spin.setRange(0, max(0, length - 1))
        self.copy_from_spin.setValue(0)
        self.copy_to_spin.setValue(length - 1)
