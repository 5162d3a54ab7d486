"""The plots of the results viewer, one module per kind of state.

- ``ring``: many variables on a ring (Lorenz-96): the state at time t as curves and
  five Hovmöller maps (truth, mean, a sample, spread, error);
- ``lowdim``: a few variables (Lorenz-63): each variable against time and phase
  projections with moving markers;
- ``field``: 2-D fields (Kolmogorov): truth, a sample, mean and spread as images;
- ``base``: what they share (mode, sample, a run's fixed scales, the worker's preparer);
- ``common``: pyqtgraph helpers (images, titles, caches, legends, the time marker);
- ``data``: the numbers each kind draws (numpy, no Qt; runs on the worker thread).

``plots_for_system`` picks the kind for a system's state shape.
"""

from .base import Plots
from .common import MODES, quantity
from .data import (PlotData, colorize, field_data, image_levels, low_dim_data, observed_cell_frames, ring_data,
                   spaghetti)
from .field import FieldPlots
from .lowdim import LowDimPlots
from .ring import RingPlots

__all__ = ["Plots", "RingPlots", "LowDimPlots", "FieldPlots", "MODES", "PlotData", "ring_data", "low_dim_data",
           "field_data", "colorize", "image_levels", "observed_cell_frames", "spaghetti", "quantity",
           "plots_for_system"]


def plots_for_system(system):
    """Field plots for 2-D states, low-dimensional plots for ≤ 4 variables, ring plots otherwise."""
    shape = tuple(system.state_shape)
    if len(shape) >= 2:
        return FieldPlots(system)
    if shape[0] <= 4:
        return LowDimPlots(system)
    return RingPlots(system)
