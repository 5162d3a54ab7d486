"""*Observe through*: the observation operator the pattern is painted for.

Directly (every grid point), block means (``coarsen:n``) or every n-th point
(``subsample:n``), with the factors the state grid allows. One row under the grid:
the two choices and a line saying what one cell of the grid is.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QWidget

from .. import operators as ops

__all__ = ["OperatorBox"]


class OperatorBox(QWidget):
    """The operator and factor combos; ``chosen(spec)`` when the user picks one (None: directly)."""

    chosen = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.operator_combo = QComboBox()
        for kind, label in ops.KINDS.items():
            self.operator_combo.addItem(label, kind)
        self.operator_combo.setToolTip("The observation operator A: what one observed value measures")
        self.factor_combo = QComboBox()
        self.factor_combo.setToolTip("Block size (coarsen) or step (subsample), in grid points")
        self.operator_label = QLabel()
        self.operator_label.setWordWrap(True)
        # a long description wraps, it never widens the window
        self.operator_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("observe through"))
        row.addWidget(self.operator_combo)
        row.addWidget(QLabel("n ="))
        row.addWidget(self.factor_combo)
        row.addWidget(self.operator_label, 1)
        self.operator_combo.activated.connect(lambda _: self._picked())
        self.factor_combo.activated.connect(lambda _: self._picked())
        self._factors: list = []

    def _picked(self):
        kind = self.operator_combo.currentData()
        if kind == "identity":
            self.chosen.emit(None)
            return
        factor = self.factor_combo.currentData()
        if factor is None:
            factors = self._factors
            factor = 4 if 4 in factors else (factors[0] if factors else 2)
        self.chosen.emit(f"{kind}:{factor}")

    def sync(self, state_shape: tuple, spec: Optional[str], observed_grid: tuple, is_field: bool):
        """Shows ``spec`` in the combos; offers operators only where the grid allows."""
        factors = ops.operator_factors(state_shape)
        self._factors = factors
        if spec and ops.factor_of(spec) not in factors:
            factors = sorted(set(factors) | {ops.factor_of(spec)})  # e.g. from a loaded file
        for combo in (self.operator_combo, self.factor_combo):
            combo.blockSignals(True)
        self.factor_combo.clear()
        for f in factors:
            self.factor_combo.addItem(f"×{f}", f)
        self.operator_combo.setCurrentIndex(max(0, self.operator_combo.findData(ops.kind_of(spec))))
        wanted = ops.factor_of(spec) if spec else 4
        self.factor_combo.setCurrentIndex(max(0, self.factor_combo.findData(wanted)))
        for combo in (self.operator_combo, self.factor_combo):
            combo.blockSignals(False)
        self.setEnabled(bool(factors) or bool(spec))
        self.factor_combo.setEnabled(bool(spec))
        grid = "×".join(map(str, observed_grid[-2:] if is_field else observed_grid))
        per = " per component" if is_field and len(state_shape) > 2 else ""
        if not factors and not spec:
            text = "No spatial grid to coarsen: each variable is observed directly."
        elif not spec:
            text = f"Each cell is one grid point of the state ({grid}{per})."
        else:
            text = f"Each cell is one observed value: {ops.describe(spec, is_field)} ({grid}{per})."
        self.operator_label.setText(text)
