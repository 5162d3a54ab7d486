"""*Observe through*: the observation operator the pattern is painted for.

Every operator the core knows for the state grid (``operators.offered_operators``):
directly (every grid point), block means (``coarsen:n``) or every n-th point
(``subsample:n``) with the factors the grid allows, the saturating ``w / (1 + |w|)``,
the vorticity of a velocity field (and its saturated form) and the operators of loaded
plugin files (``plugin:NAME``). A spec from a file that is none of these (a chain such
as ``coarsen:4+saturate``) is shown as one more choice. One row under the grid: the
choices and a line saying what one cell of the grid is.
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
        self.operator_combo.addItem(ops.KINDS["identity"], "identity")
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

    def keys(self) -> list[str]:
        """The choices offered now: ``identity``, ``coarsen``, ``subsample`` or whole specs."""
        return [self.operator_combo.itemData(i) for i in range(self.operator_combo.count())]

    def spec_of(self, key: str, factor: Optional[int] = None) -> Optional[str]:
        """The spec a choice stands for (a factor kind with ``factor``, or the default one)."""
        if key == "identity":
            return None
        if key in ops.FACTOR_KINDS:
            if factor is None:
                factors = self._factors
                factor = 4 if 4 in factors else (factors[0] if factors else 2)
            return f"{key}:{factor}"
        return key

    def _picked(self):
        self.chosen.emit(self.spec_of(self.operator_combo.currentData(), self.factor_combo.currentData()))

    def sync(self, state_shape: tuple, spec: Optional[str], observed_grid: tuple, is_field: bool):
        """Shows ``spec`` in the combos; offers the operators the state grid allows."""
        factors = ops.operator_factors(state_shape)
        self._factors = factors
        geometric = ops.is_geometric(spec)
        if geometric and ops.factor_of(spec) not in factors:
            factors = sorted(set(factors) | {ops.factor_of(spec)})  # e.g. from a loaded file
        offered = ops.offered_operators(state_shape)
        key = ops.kind_of(spec) if (geometric or not spec) else spec
        if key not in [k for k, _ in offered]:
            offered.append((key, key))                     # a chain or a kind from a file, shown as it is
        for combo in (self.operator_combo, self.factor_combo):
            combo.blockSignals(True)
        self.operator_combo.clear()
        for k, label in offered:
            self.operator_combo.addItem(label, k)
        self.factor_combo.clear()
        for f in factors:
            self.factor_combo.addItem(f"×{f}", f)
        self.operator_combo.setCurrentIndex(max(0, self.operator_combo.findData(key)))
        wanted = ops.factor_of(spec) if geometric else 4
        self.factor_combo.setCurrentIndex(max(0, self.factor_combo.findData(wanted)))
        for combo in (self.operator_combo, self.factor_combo):
            combo.blockSignals(False)
        self.setEnabled(len(offered) > 1)
        self.factor_combo.setEnabled(geometric)
        grid = "×".join(map(str, observed_grid[-2:] if is_field else observed_grid))
        per = " per component" if is_field and len(observed_grid) > 2 and observed_grid[0] > 1 else ""
        if not spec:
            text = (f"Each cell is one grid point of the state ({grid}{per})." if factors
                    else "No spatial grid to coarsen: each variable is observed directly.")
        else:
            text = f"Each cell is one observed value: {ops.describe(spec, is_field)} ({grid}{per})."
        self.operator_label.setText(text)
