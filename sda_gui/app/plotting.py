"""Shared pyqtgraph helpers: colour maps, cell overlays, robust colour levels, names of quantities."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

__all__ = ["configure_pyqtgraph", "lut", "mask_overlay", "symmetric_levels", "robust_levels", "quantity",
           "COLORS", "SAMPLE_PEN"]

COLORS = {
    "truth": (0, 0, 0),
    "mean": (214, 39, 40),
    # opaque: translucent strokes cost Qt's raster engine ~5× more per segment, and
    # the sample curves are redrawn every animation frame
    "samples": (150, 190, 225),
    "samples_faint": (205, 222, 238),
    "obs": (255, 127, 14),
    "spread": (214, 39, 40, 50),
    "train": (31, 119, 180),
    "val": (214, 39, 40),
    "marker": (44, 160, 44),
}
SAMPLE_PEN = pg.mkPen(COLORS["samples"], width=1)


def configure_pyqtgraph():
    # row-major: image[row, col] = image[y, x], as numpy prints it; white plots print well
    pg.setConfigOptions(imageAxisOrder="row-major", background="w", foreground="k", antialias=False)


_LUTS: dict = {}


def lut(name: str = "viridis") -> np.ndarray:
    if name not in _LUTS:
        _LUTS[name] = pg.colormap.get(name).getLookupTable(nPts=256, alpha=False)
    return _LUTS[name]


def mask_overlay(mask2d: np.ndarray, scale: int = 6, scale_y: int | None = None, wash: bool = True) -> np.ndarray:
    """RGBA image that washes out unobserved cells and frames observed ones.

    Each cell becomes ``scale_y × scale`` pixels: unobserved cells are covered by
    translucent white (unless ``wash`` is off), observed cells stay in full colour with
    a dark one-pixel frame, so the truth remains visible under the pattern. A taller
    ``scale_y`` keeps the frame thin on cells that are drawn much taller than wide
    (3 variables × 65 states).
    """
    sx = max(1, int(scale))
    sy = max(1, int(scale_y or scale))
    rows, cols = mask2d.shape
    out = np.zeros((rows * sy, cols * sx, 4), dtype=np.uint8)
    big = np.repeat(np.repeat(mask2d, sy, 0), sx, 1)
    if wash:
        out[~big] = (255, 255, 255, 120)
    if sx >= 3 and sy >= 3:
        edge = np.zeros((sy, sx), dtype=bool)
        edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
        frame = np.tile(edge, (rows, cols)) & big
        out[frame] = (20, 20, 20, 255)
    return out


def _finite(x) -> np.ndarray:
    x = np.asarray(x)
    return x[np.isfinite(x)] if x.size else x


def symmetric_levels(x: np.ndarray, q: float = 99.5) -> tuple[float, float]:
    """``(-m, m)`` with ``m`` the q-th percentile of ``|x|`` (NaN ignored)."""
    v = _finite(x)
    m = float(np.percentile(np.abs(v), q)) if v.size else 1.0
    m = m if np.isfinite(m) and m > 0 else 1.0
    return -m, m


def robust_levels(x: np.ndarray, q: float = 0.5) -> tuple[float, float]:
    """The ``q`` and ``100 − q`` percentiles of the finite values (a fallback if there are none)."""
    v = _finite(x)
    if not v.size:
        return 0.0, 1.0
    lo, hi = (float(t) for t in np.percentile(v, [q, 100 - q]))
    if hi <= lo:
        lo, hi = lo - 1, lo + 1
    return lo, hi


def quantity(system) -> str:
    """What the values of ``system`` are called on axes and colour bars.

    The plots show physical values, in the units of the system's variables: many
    variables of one name with an index (``x1 … x40``) read ``x_j``; a few named ones
    are listed (``x, y, z``).
    """
    names = list(getattr(system, "variable_names", []) or [])
    if len(names) > 4:
        stem = names[0].rstrip("0123456789")
        if stem and all(n.rstrip("0123456789") == stem for n in names):
            return f"{stem}_j"
        return "value"
    return ", ".join(names) if names else "value"
