"""Results plots of a 2-D field (Kolmogorov flow): truth, a sample, the mean and the spread at time t.

Four image panels with colour bars labelled by what they show (vorticity ω for a
velocity field, else the first component). The observed cells are framed on the
truth, per state (``observed_cell_frames``): a coarse cell as the block it averages,
a pixel or a sampled point pixel by pixel. Previews reuse the truth's vorticity,
computed once per run.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from ..plotting import symmetric_levels
from ..state import Results
from .base import Plots
from .common import cache_static_items, image_plot, put_image, set_range, set_title, show_frame_image
from .data import PlotData, field_data, field_frames, image_levels, nice, observed_cell_frames, safe_levels

__all__ = ["FieldPlots"]

#: key → (title, colour map, row, column)
PANELS = {"truth": ("Truth", "CET-D1", 0, 0), "sample": ("Sample", "CET-D1", 0, 1),
          "mean": ("Posterior mean", "CET-D1", 1, 0), "spread": ("Spread (std over samples)", "viridis", 1, 1)}


class FieldPlots(Plots):
    kind = "field"
    tables = {"state": "CET-D1", "spread": "viridis"}

    def __init__(self, system):
        super().__init__()
        self.system = system
        self.panels = {}
        self._run_truth_w = None
        what = "vorticity ω" if getattr(system, "name", "") == "kolmogorov" else system.variable_names[0]
        for key, (title, cmap, r, c) in PANELS.items():
            label = f"std of {what}" if key == "spread" else what
            plot, img, bar = image_plot(self.layout, r, c, title, cmap, "x (grid cell)", "y (grid cell)", label)
            plot.setAspectLocked(True)
            plot.disableAutoRange()
            self.panels[key] = (plot, img, bar)
        # observed cells framed on the truth, per state (see observed_cell_frames)
        self.observed = pg.ImageItem()
        self.observed.setZValue(10)
        self.panels["truth"][0].addItem(self.observed)
        self._observed_frames: list = []
        self._observed_for = None
        self._observed_shown = None
        # room between columns, so a colour bar's label reads as the bar's, not the next plot's
        self.layout.layout.setHorizontalSpacing(14)
        cache_static_items(self.layout)

    def _run_levels(self, run: Results) -> Optional[dict]:
        # the truth's vorticity, once per run: the scale of every preview and reused by the worker
        self._run_truth_w = None
        if run.truth is None:
            return None
        self._run_truth_w = np.ascontiguousarray(
            field_frames(self.system, np.asarray(run.truth, dtype=np.float32))[0], dtype=np.float32)
        m = safe_levels(symmetric_levels(self._run_truth_w))
        return {"state": m, "spread": (0.0, nice(m[1] / 2))}

    def preparer(self, run: Results) -> Callable[..., PlotData]:
        mode, sample, system, colors = self.mode, self.sample, self.system, self._colors()
        obs, truth, truth_w = run.observation, run.truth, self._run_truth_w

        def prepare(samples: np.ndarray, preview: bool = True) -> PlotData:
            return field_data(system, Results(samples=samples, observation=obs, truth=truth), mode, sample, truth_w,
                              colors if preview else None)
        return prepare

    def data(self, results: Results, mode: str, sample: int) -> PlotData:
        truth_w = self._run_truth_w if self._running and results.truth is not None else None
        return field_data(self.system, results, mode, sample, truth_w)

    def apply(self, d: PlotData, levels: dict):
        a = d.arrays
        self.sample_w, self.mean_w, self.std_w, self.truth_w = a["sample"], a["mean"], a["spread"], a["truth"]
        self.levels, self.std_levels = levels["state"], levels["spread"]
        label = a["label"]
        h, w = self.mean_w.shape[1:3]   # frames (L, H, W), or RGBA (L, H, W, 4) in a preview
        self.rect = QRectF(0, 0, w, h)
        # the 'mean ± spread' view shows the mean where a sample would be
        shown = "Posterior mean" if self.mode == "spread" else f"Sample #{a['k'] + 1} of {a['n']}"
        set_title(self.panels["sample"][0], f"{shown}: {label}")
        set_title(self.panels["mean"][0], f"Posterior mean: {label}")
        obs = self.results.observation if self.results is not None else None
        if obs is not self._observed_for:
            self._observed_for = obs
            self._observed_frames = observed_cell_frames(obs, self.system.state_shape)
        self._observed_shown = None   # the rect may have changed: set the overlay again
        framed = any(f is not None for f in self._observed_frames)
        truth_title = f"Truth: {label}" if self.truth_w is not None else "Truth (none loaded)"
        set_title(self.panels["truth"][0], truth_title + (" · framed: observed" if framed else ""))
        for plot, *_ in self.panels.values():
            set_range(plot, (0, w), (0, h))
        t = min(self.frame, a["length"] - 1)
        pairs = [("truth", self.truth_w, self.levels), ("sample", self.sample_w, self.levels),
                 ("mean", self.mean_w, self.levels), ("spread", self.std_w, self.std_levels)]
        for key, frames, lev in pairs:
            put_image(self.panels[key][1], self.panels[key][2], None if frames is None else frames[t], lev, self.rect)
        self.show_frame(t)

    def show_frame(self, t: int):
        if self.results is None:
            return
        self.frame = t
        p = self.panels
        # per frame only the pixels change: levels, rect and colour bars stay as set_results left them
        levels, std_levels = image_levels(self.levels), image_levels(self.std_levels)
        if self.truth_w is not None:
            show_frame_image(p["truth"][1], self.truth_w[t], levels)
        self._show_observed(t)
        sample = self.mean_w[t] if self.mode == "spread" else self.sample_w[t]
        show_frame_image(p["sample"][1], sample, levels)
        show_frame_image(p["mean"][1], self.mean_w[t], levels)
        show_frame_image(p["spread"][1], self.std_w[t], std_levels)

    def _show_observed(self, t: int):
        frames = self._observed_frames
        image = frames[t] if self.truth_w is not None and t < len(frames) else None
        if image is self._observed_shown:
            return   # most frames keep the pattern: no new texture
        self._observed_shown = image
        if image is None:
            self.observed.clear()
        else:
            self.observed.setImage(image, autoLevels=False, levels=(0, 255))
            self.observed.setRect(self.rect)
