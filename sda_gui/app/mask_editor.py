"""The observation pattern being edited: a boolean mask over the observed grid.

Pure numpy so that every edit the grid view makes with the mouse is a method a test
(or a script) can call. Each edit is one undo step; a brush stroke made of many
mouse moves is grouped by ``begin_stroke``/``end_stroke`` into one step.

The mask lives in a *space*: ``None`` for the state grid ``(L, *state_shape)``, or
an operator spec such as ``"coarsen:8"`` for that operator's output grid. The
history keeps each mask with its space, so undoing a change of operator brings
back the previous grid and pattern together.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

__all__ = ["MaskEditor"]


class MaskEditor:
    """A mask with edit operations, an undo/redo history and a change callback."""

    def __init__(self, shape: Sequence[int], history: int = 100,
                 on_change: Optional[Callable[[], None]] = None, space: Optional[str] = None):
        self.mask = np.zeros(tuple(shape), dtype=bool)
        self.space = space
        self._undo: list[tuple[np.ndarray, Optional[str]]] = []
        self._redo: list[tuple[np.ndarray, Optional[str]]] = []
        self._history = int(history)
        self._stroke_start: Optional[np.ndarray] = None
        self.on_change = on_change

    # bookkeeping ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.mask.shape

    @property
    def count(self) -> int:
        return int(self.mask.sum())

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def _changed(self):
        if self.on_change is not None:
            self.on_change()

    def _push(self, before: np.ndarray, space: Optional[str] = None, same_space: bool = True):
        if same_space and np.array_equal(before, self.mask):
            return
        self._undo.append((before, self.space if same_space else space))
        del self._undo[:-self._history]
        self._redo.clear()

    def _apply(self, fn: Callable[[np.ndarray], None]):
        """Runs an in-place edit as one undo step (or as part of the open stroke)."""
        before = self.mask.copy() if self._stroke_start is None else None
        fn(self.mask)
        if before is not None:
            self._push(before)
        self._changed()

    def reset(self, mask: np.ndarray, keep_history: bool = False, space=...):
        """Replaces the whole mask (a new system or a loaded file): a new history, unless kept.

        ``space`` (default: unchanged) is the grid the new mask lives on.
        """
        mask = np.asarray(mask, dtype=bool)
        space = self.space if space is ... else space
        if keep_history and mask.shape == self.mask.shape and space == self.space:
            before = self.mask.copy()
            self.mask = mask.copy()
            self._push(before)
        else:
            self.mask = mask.copy()
            self.space = space
            self._undo.clear()
            self._redo.clear()
        self._stroke_start = None
        self._changed()

    def change_space(self, mask: np.ndarray, space: Optional[str]):
        """Moves the pattern to another grid (a new operator) as one undoable edit."""
        mask = np.asarray(mask, dtype=bool)
        if space == self.space:
            self.reset(mask, keep_history=True)
            return
        before, before_space = self.mask, self.space
        self.mask, self.space = mask.copy(), space
        self._push(before, before_space, same_space=False)
        self._stroke_start = None
        self._changed()

    def set_mask(self, mask: np.ndarray):
        """Replaces the mask as one undoable edit (shape must match)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self.mask.shape:
            raise ValueError(f"pattern shape {mask.shape} does not match {self.mask.shape}")
        self.reset(mask, keep_history=True)

    # strokes ----------------------------------------------------------------------------
    @property
    def in_stroke(self) -> bool:
        """Whether a drag is painting right now (its edits become one undo step at its end)."""
        return self._stroke_start is not None

    def begin_stroke(self):
        if self._stroke_start is None:
            self._stroke_start = self.mask.copy()

    def end_stroke(self):
        if self._stroke_start is not None:
            before, self._stroke_start = self._stroke_start, None
            self._push(before)
            self._changed()

    # edits ------------------------------------------------------------------------------
    def fill(self, region, value: bool = True):
        """Sets ``mask[region] = value``; ``region`` is any numpy index."""
        def edit(m):
            m[region] = bool(value)
        self._apply(edit)

    def brush(self, time: int, position: Sequence[int], size: int = 1, value: bool = True,
              lead: tuple = ()):
        """A square brush of ``size`` cells centred on ``(time, *position)``.

        ``position`` indexes the last spatial axes (one for a ring of variables, two
        for a field); ``lead`` selects the axes in between (e.g. the channels of a field).
        For a 1-D state the brush also spans ``size`` time steps, so it paints a square
        on the time × variable grid; for a field it paints at the current time only.
        """
        size = max(1, int(size))
        lo = -((size - 1) // 2)
        hi = lo + size
        length = self.mask.shape[0]
        spatial = self.mask.shape[1 + len(lead):]
        slices = []
        for p, n in zip(position, spatial):
            slices.append(slice(max(0, p + lo), min(n, p + hi)))
        if len(spatial) == 1:
            t = slice(max(0, time + lo), min(length, time + hi))
        else:
            t = int(time)
        self.fill((t, *lead, *slices), value)

    def rectangle(self, t0: int, t1: int, p0: Sequence[int], p1: Sequence[int], value: bool = True,
                  lead: tuple = ()):
        """Fills the inclusive box from ``(t0, *p0)`` to ``(t1, *p1)`` (corners in any order)."""
        ta, tb = sorted((int(t0), int(t1)))
        slices = [slice(min(a, b), max(a, b) + 1) for a, b in zip(p0, p1)]
        self.fill((slice(ta, tb + 1), *lead, *slices), value)

    def clear(self):
        self.fill(Ellipsis, False)

    def invert(self):
        def edit(m):
            np.logical_not(m, out=m)
        self._apply(edit)

    def random(self, density: float, seed: int = 0):
        """Replaces the pattern by a random one observing a fraction ``density`` of entries."""
        density = float(np.clip(density, 0.0, 1.0))
        rng = np.random.default_rng(int(seed))
        new = rng.random(self.mask.shape) < density

        def edit(m):
            m[...] = new
        self._apply(edit)

    def regular(self, every_time: int = 1, every_space: int = 1, offset_time: int = 0,
                offset_space: int = 0):
        """Replaces the pattern by a lattice: every n-th state, every m-th variable/pixel."""
        nt, ns = max(1, int(every_time)), max(1, int(every_space))
        new = np.zeros_like(self.mask)
        spatial_dims = 1 if self.mask.ndim == 2 else 2
        idx = [slice(offset_time % nt, None, nt)] + [slice(None)] * (self.mask.ndim - 1 - spatial_dims)
        idx += [slice(offset_space % ns, None, ns)] * spatial_dims
        new[tuple(idx)] = True

        def edit(m):
            m[...] = new
        self._apply(edit)

    def copy_time(self, source: int, targets: Optional[Sequence[int]] = None):
        """Copies the pattern of state ``source`` to ``targets`` (default: every state)."""
        src = self.mask[int(source)].copy()
        tg = range(self.mask.shape[0]) if targets is None else [int(t) for t in targets]

        def edit(m):
            for t in tg:
                m[t] = src
        self._apply(edit)

    # history ----------------------------------------------------------------------------
    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append((self.mask.copy(), self.space))
        self.mask, self.space = self._undo.pop()
        self._changed()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append((self.mask.copy(), self.space))
        self.mask, self.space = self._redo.pop()
        self._changed()
        return True
