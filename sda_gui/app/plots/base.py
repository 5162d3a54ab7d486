"""What every kind of results plot shares: the result shown, the display mode, a run's fixed scales.

``set_results`` is two halves. The numbers a result needs come from the class's
``compute`` (a function of ``plots.data``: numpy and torch, no Qt), which the
assimilation's worker thread runs on each preview through ``preparer()``; ``apply``
then hands ready arrays to the plot items on the UI thread. While a run goes on
(``begin_run``) colour levels, ranges and titles stay fixed, so a preview repaints
pixels, never axes. ``show_frame`` moves only cheap things: animation calls it at 60+
frames per second.

A *ghost* is the posterior mean (and spread) of the result shown before this one,
which the results view keeps and hands over with ``set_ghost``: kinds with curves
(``has_ghost``) draw it as a faint dashed grey line labelled "previous", so a rerun
with other settings can be compared with the last one at a glance.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from ..plotting import lut
from ..state import Results
from .common import Legend
from .data import PlotData

__all__ = ["Plots", "GHOST_PEN", "GHOST_BRUSH", "GHOST_LABEL"]

#: the previous result's mean: grey and dashed, so it reads as "not this result" beside the red mean
GHOST_PEN = pg.mkPen((110, 110, 110), width=1.5, style=Qt.PenStyle.DashLine)
#: its ±1 std band, fainter than the current one's
GHOST_BRUSH = pg.mkBrush(110, 110, 110, 40)
GHOST_LABEL = "previous"


class Plots:
    """Common state: the results, the display mode and the chosen sample.

    Subclasses define ``kind``, ``compute(results, mode, sample, colors)`` (the numbers,
    any thread) and ``apply(data, levels)`` (the plot items, UI thread).
    """

    kind = ""
    #: whether this kind draws the previous result's mean (``set_ghost``); image panels do not
    has_ghost = False
    #: colour map of each level kind (``run_levels`` keys) of the image panels
    tables: dict = {}

    def __init__(self):
        self.widget = pg.GraphicsLayoutWidget()
        self.layout = self.widget.ci
        self.results: Optional[Results] = None
        self.mode = "all"
        self.sample = 0
        self.frame = 0
        #: colour levels and ranges kept while a run's previews come in (None: not running)
        self.run_levels: Optional[dict] = None
        self._running = False
        #: the ``PlotData`` drawn last (the results view keeps a final one's mean as the next ghost)
        self.last_data: Optional[PlotData] = None
        #: ``{"mean": (L, …), "std": (L, …)}`` of the previous result, drawn faintly; None: none shown
        self.ghost: Optional[dict] = None

    def add_legend_row(self, row: int, columns: int = 6) -> Legend:
        """A legend in a row of its own above the plots: it never covers data."""
        legend = Legend(columns)
        self.layout.addItem(legend, row=row, col=0, colspan=self.layout.layout.columnCount() or 1)
        self.layout.layout.setAlignment(legend, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter)
        return legend

    def set_mode(self, mode: str, sample: int = 0):
        self.mode, self.sample = mode, int(sample)
        if self.results is not None:
            self.set_results(self.results)

    def _sample_index(self) -> int:
        return min(self.sample, self.results.samples.shape[0] - 1) if self.results is not None else 0

    # a run ------------------------------------------------------------------------------
    def begin_run(self, run: Results):
        """A run starts (its truth and observation, blank samples): previews keep one scale."""
        self._running = True
        self.run_levels = self._run_levels(run)

    def _run_levels(self, run: Results) -> Optional[dict]:
        return None

    def _colors(self) -> Optional[dict]:
        """The run's levels and lookup tables, for previews coloured on the worker thread."""
        if self.run_levels is None or not self.tables:
            return None
        return {"levels": dict(self.run_levels), "tables": {k: lut(name) for k, name in self.tables.items()}}

    def preparer(self, run: Results) -> Callable[..., PlotData]:
        """``prepare(samples, preview=True) -> PlotData`` for the worker: this view's mode and
        sample, the run's truth and observation; previews are coloured with the run's scale,
        final samples get their own levels. Touches no Qt object and nothing the view
        changes later."""
        mode, sample, colors = self.mode, self.sample, self._colors()
        obs, truth = run.observation, run.truth
        data = type(self).compute

        def prepare(samples: np.ndarray, preview: bool = True) -> PlotData:
            return data(Results(samples=samples, observation=obs, truth=truth), mode, sample,
                        colors if preview else None)
        return prepare

    @staticmethod
    def compute(results: Results, mode: str, sample: int, colors: Optional[dict] = None) -> PlotData:
        raise NotImplementedError

    def data(self, results: Results, mode: str, sample: int) -> PlotData:
        return self.compute(results, mode, sample)

    # results ----------------------------------------------------------------------------
    def set_results(self, results: Results):
        self.results = results
        d = results.prepared
        if not (isinstance(d, PlotData) and d.kind == self.kind and d.key == (self.mode, self.sample)):
            d = self.data(results, self.mode, self.sample)
        if results.preview:
            if self.run_levels is None and self._finite(d):
                self.run_levels = dict(d.levels)   # a run without begin_run: the first preview sets the scale
            levels = self.run_levels or d.levels
        else:
            self._running = False
            self.run_levels = None
            levels = d.levels
        self.last_data = d
        self.apply(d, levels)

    def set_ghost(self, ghost: Optional[dict]):
        """Draws ``ghost`` (the previous result's ``mean`` and ``std``, shaped as this result's) or hides it."""
        if not self.has_ghost:
            return
        self.ghost = ghost
        if self.results is not None:
            self.draw_ghost()

    def draw_ghost(self):
        """Puts ``self.ghost`` on the plot items (and the legend); kinds with ``has_ghost`` define it."""

    @staticmethod
    def _finite(d: PlotData) -> bool:
        m = d.arrays.get("mean")
        return m is not None and bool(np.isfinite(m).any())

    def apply(self, d: PlotData, levels: dict):
        raise NotImplementedError

    def show_frame(self, t: int):
        raise NotImplementedError
