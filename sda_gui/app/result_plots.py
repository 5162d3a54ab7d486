"""The results plots under their former module name; they live in ``sda_gui.app.plots``."""

from .plots import (MODES, FieldPlots, LowDimPlots, PlotData, Plots, RingPlots, colorize, field_data,  # noqa: F401
                    image_levels, low_dim_data, observed_cell_frames, plots_for_system, ring_data, spaghetti)
from .plots.data import finite_samples, mean_std, ring_run_levels  # noqa: F401

__all__ = ["RingPlots", "LowDimPlots", "FieldPlots", "MODES", "spaghetti", "PlotData", "ring_data", "low_dim_data",
           "field_data", "colorize", "image_levels", "observed_cell_frames", "plots_for_system"]
