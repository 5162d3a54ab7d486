"""The editor's status line: which entry is under the mouse, its truth and its observed value.

One line, e.g. ``time step 12 (t = 0.6) · variable j = 7 · truth 3.21, observed, y = 3.05``.
With an operator the cell is a block (or a sampled point) and the line names the
state entries it reads and ``A(truth)``; for a 2-D field it names the pixel or cell
and every component the tools mark.
"""

from __future__ import annotations

import numpy as np

from .. import operators as ops

__all__ = ["HINT", "hover_text", "span"]

HINT = "Left-drag paints with the chosen tool · right-drag pans · wheel zooms · hover a cell for its values"


def span(spec: str, index: int) -> str:
    """The state indices one cell of ``spec`` reads, ``"8–15"`` (or one index)."""
    lo, hi = ops.cell_extent(spec, index)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def _field_entries(state, t: int, c: int, r: int, lead: tuple) -> list[tuple[str, tuple]]:
    """(component name, index) of the components the hover reports: those the tools mark."""
    grid = state.observed_grid                  # the painted grid: ω has one component
    if len(grid) != 3:
        return [("", (t, c, r))]
    chans = [lead[0]] if lead and isinstance(lead[0], int) else range(grid[0])
    names = ops.observed_names(state.state_shape, state.operator, state.system.variable_names)
    return [(names[k] if k < len(names) else str(k), (t, k, c, r)) for k in chans]


def hover_text(state, cell, is_field: bool, time_index: int, lead: tuple) -> str:
    """The status line for displayed ``cell`` (column, row), or the hint when there is none."""
    if cell is None:
        return HINT
    c, r = cell
    spec = state.operator
    if is_field:
        t = time_index
        where = f"time step {t} · pixel (x={c}, y={r})"
        if spec:
            where = f"time step {t} · cell (x={c}, y={r}): pixels x {span(spec, c)}, y {span(spec, r)}"
        entries = _field_entries(state, t, c, r, lead)
    else:
        t, v = c, r
        names = state.system.variable_names
        var = names[v] if len(names) <= 8 else f"variable j = {v}"
        if spec:
            var = f"cell {v}: variables j = {span(spec, v)}"
        where = f"time step {t} (t = {t * state.system.dt:.3g}) · {var}"
        entries = [("", (t, v))]
    parts = [where]
    truth = state.observed_truth()
    values = state.obs_values
    for name, idx in entries:
        bits = [] if truth is None else [f"{'A(truth)' if spec else 'truth'} {float(truth[idx]):.3g}"]
        observed = bool(state.mask[idx])
        bits.append("observed" if observed else "not observed")
        if observed and values is not None and values.shape == state.mask.shape and np.isfinite(values[idx]):
            bits.append(f"y = {float(values[idx]):.3g}")
        parts.append(f"{name}: " * bool(name) + ", ".join(bits))
    return " · ".join(parts)
