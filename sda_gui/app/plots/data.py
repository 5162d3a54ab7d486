"""What the results plots draw of one result: numpy (and torch for vorticity), no Qt.

Runs on any thread: the assimilation's worker calls these on every preview (through
a plots class's ``preparer``), so the UI thread only hands ready arrays to plot items.

- ``ring_data`` (many variables, samples ``(N, L, V)``): the shown samples, their mean
  and std over samples, four Hovmöller images (a sample, the mean, the spread, the
  error of the mean) plus the truth's, and where the observed values sit along ``j``.
- ``low_dim_data`` (a few variables): the shown samples as one NaN-separated
  polyline per variable (``spaghetti``), mean, std.
- ``field_data`` (2-D fields ``(N, L, C, H, W)``): truth, a sample, mean and spread as
  frames (vorticity when the system has it).

Colour levels come from robust percentiles (0.5–99.5 %, or symmetric about 0 for
signed fields and errors) rounded to two significant digits, so a colour bar does not
relayout for tiny changes. ``colorize`` applies a 256-entry lookup table exactly as
``pg.ImageItem`` does, so previews can be coloured on the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import operators as ops
from ..fields import vorticity_frames
from ..plotting import mask_overlay, robust_levels, symmetric_levels
from ..state import Results

__all__ = ["PlotData", "ring_data", "ring_run_levels", "low_dim_data", "field_data", "field_frames",
           "observed_cell_frames", "spaghetti", "finite_samples", "mean_std", "colorize", "image_levels",
           "safe_levels", "nice", "reference"]


def spaghetti(y: np.ndarray, x: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Curves ``y (n, m)`` → one (x, y) polyline with NaN breaks between curves.

    Curves with any non-finite value (a diverged sample) are left out.
    """
    finite = np.isfinite(y).all(axis=1)
    if not finite.all():
        y = y[finite]
    n, m = y.shape
    if n == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    if x is None:
        x = np.arange(m, dtype=np.float32)
    xs = np.empty((n, m + 1), dtype=np.float32)
    ys = np.empty((n, m + 1), dtype=np.float32)
    xs[:, :m] = x
    xs[:, m] = np.nan
    ys[:, :m] = y
    ys[:, m] = np.nan
    return xs.ravel(), ys.ravel()


def finite_samples(samples) -> np.ndarray:
    """Samples as float32 with non-finite or absurd values (a diverged sampler) turned to NaN."""
    x = np.asarray(samples, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | (np.abs(x) > 1e6)
    return np.where(bad, np.nan, x) if bad.any() else x


def mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over samples, ignoring NaN; entries with no finite sample stay NaN.

    Written out rather than ``np.nanmean``/``np.nanstd`` because those warn through the
    global ``warnings`` filters, which cannot be silenced safely while a worker thread
    also computes (``np.errstate`` is per thread).
    """
    ok = np.isfinite(x)
    n = ok.sum(0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = np.where(ok, x, 0.0)
        mean = z.sum(0) / n
        var = np.where(ok, (z - mean) ** 2, 0.0).sum(0) / n
    mean = np.where(n > 0, mean, np.nan).astype(np.float32)
    std = np.where(n > 0, np.sqrt(var), np.nan).astype(np.float32)
    return mean, std


def safe_levels(levels) -> tuple[float, float]:
    """``(lo, hi)`` as floats, or ``(0, 1)`` when they are not finite or empty."""
    lo, hi = (float(v) for v in levels)
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return (0.0, 1.0)
    return lo, hi


def nice(v: float) -> float:
    """Rounds to two significant digits, so colour bars don't relayout for tiny changes."""
    if v == 0 or not np.isfinite(v):
        return v
    return float(f"{v:.2g}")


def image_levels(levels) -> tuple[float, float]:
    """The levels an image panel and its colour bar use: two significant digits, never empty."""
    return safe_levels(tuple(nice(v) for v in levels))


def colorize(data: np.ndarray, levels, table: np.ndarray) -> np.ndarray:
    """Float image(s) ``(…, H, W)`` → RGBA uint8 ``(…, H, W, 4)``, as the ImageItems draw them.

    Same mapping as pyqtgraph's for a 256-entry lookup table between ``levels``; NaN is
    transparent. Pure numpy: the worker thread colours previews, the UI thread only
    hands the bytes to Qt.
    """
    lo, hi = image_levels(levels)
    x = np.asarray(data, dtype=np.float32)
    bad = ~np.isfinite(x)
    with np.errstate(invalid="ignore"):
        idx = np.clip((np.where(bad, lo, x) - lo) * (len(table) / (hi - lo)), 0, len(table) - 1).astype(np.uint8)
    out = np.empty(x.shape + (4,), dtype=np.uint8)
    out[..., :3] = table[idx, :3]
    out[..., 3] = np.where(bad, 0, 255)
    return out


@dataclass
class PlotData:
    """What a plots class draws of one result, for one display mode and sample.

    ``key`` is ``(mode, sample index)``: a view uses the data only while it still shows
    that. ``levels`` are the colour levels and ranges the data suggest (the view keeps
    its own during a run). Built by ``ring_data``, ``low_dim_data`` or ``field_data``.
    """

    kind: str
    key: tuple
    arrays: dict
    levels: dict


def reference(results: Results) -> Optional[np.ndarray]:
    """Values that set a run's colour scale before any sample exists: the truth, else the observations."""
    if results.truth is not None:
        return np.asarray(results.truth, dtype=np.float32)
    obs = results.observation
    if obs is not None and obs.count:
        return np.asarray(obs.values, dtype=np.float32)[np.asarray(obs.mask, dtype=bool)]
    return None


def _colour_images(images: dict, colors: dict, which: dict):
    """Colours ``images[key]`` in place with the run's levels ``colors["levels"][which[key][0]]``."""
    lev, tables = colors["levels"], colors["tables"]
    for key, (level_key, table_key) in which.items():
        if images.get(key) is not None and lev.get(level_key) is not None:
            images[key] = colorize(images[key], lev[level_key], tables[table_key])


#: image → (level kind, lookup table) of the ring plots' Hovmöller panels
RING_IMAGE_LEVELS = {"truth": ("state", "state"), "sample": ("state", "state"), "mean": ("state", "state"),
                     "spread": ("spread", "spread"), "error": ("error", "state")}


def ring_data(results: Results, mode: str = "all", sample: int = 0, colors: Optional[dict] = None) -> PlotData:
    """Everything ``RingPlots`` shows of ``results`` (samples ``(N, L, V)``); any thread.

    ``colors``: ``{"levels": run levels, "tables": {"state": lut, "spread": lut}}`` colours
    the images here (RGBA) instead of on the UI thread.
    """
    x = finite_samples(results.samples)     # (N, L, V)
    n, length, v = x.shape
    mean, std = mean_std(x)
    truth = None if results.truth is None else np.asarray(results.truth, dtype=np.float32)
    obs = results.observation
    obs_mask = obs.mask if obs is not None else np.zeros((length, v), bool)
    obs_values = obs.values if obs is not None else np.zeros((length, v))
    spec = obs.operator if obs is not None else None
    k = min(int(sample), n - 1)
    ref = truth if truth is not None else mean
    lo, hi = safe_levels(robust_levels(np.concatenate([ref.ravel(), x.ravel()[: 200_000]]), q=0.2))
    pad = 0.08 * (hi - lo)
    err = None if truth is None else np.ascontiguousarray((mean - truth).T)
    levels = {"curve": (nice(lo - pad), nice(hi + pad)), "state": safe_levels(robust_levels(ref)),
              "spread": (0.0, max(robust_levels(std, 0.5)[1], 1e-6)),
              "error": None if err is None else symmetric_levels(err)}
    images = {"truth": None if truth is None else np.ascontiguousarray(truth.T),
              "sample": np.ascontiguousarray(x[k].T), "mean": np.ascontiguousarray(mean.T),
              "spread": np.ascontiguousarray(std.T), "error": err}
    arrays = {"shown": x[k:k + 1] if mode == "one" else x, "mean": mean, "std": std, "truth": truth,
              "obs_mask": obs_mask, "obs_values": obs_values, "obs_x": ops.positions(spec, obs_mask.shape[1]),
              "spec": spec, "n": n, "k": k, "images": images}
    if colors is not None:
        _colour_images(images, colors, RING_IMAGE_LEVELS)
    return PlotData("ring", (mode, int(sample)), arrays, levels)


def ring_run_levels(run: Results) -> Optional[dict]:
    """Fixed colour levels and curve range for the previews of a run (from its truth or observations)."""
    ref = reference(run)
    if ref is None or not np.isfinite(ref).any():
        return None
    lo, hi = safe_levels(robust_levels(ref))
    clo, chi = safe_levels(robust_levels(ref, q=0.2))
    pad = 0.08 * (chi - clo)
    half = nice(max((hi - lo) / 2, 1e-6))
    return {"curve": (nice(clo - pad), nice(chi + pad)), "state": (lo, hi), "spread": (0.0, half),
            "error": (-half, half)}


def low_dim_data(results: Results, mode: str = "all", sample: int = 0, colors: Optional[dict] = None) -> PlotData:
    """Everything ``LowDimPlots`` shows of ``results`` (samples ``(N, L, V)``); any thread (no images:
    ``colors`` is unused)."""
    x = finite_samples(results.samples)   # (N, L, V)
    n, length, v = x.shape
    k = min(int(sample), n - 1)
    shown = x[k:k + 1] if mode == "one" else x
    mean, std = mean_std(x)
    truth = None if results.truth is None else np.asarray(results.truth, dtype=np.float32)
    t = np.arange(length, dtype=np.float32)
    curves = [spaghetti(shown[:, :, i], t) for i in range(v)] if mode != "spread" else None
    arrays = {"shown": shown, "mean": mean, "std": std, "truth": truth, "t": t, "curves": curves, "n": n, "k": k}
    return PlotData("lowdim", (mode, int(sample)), arrays, {})


def field_frames(system, x: np.ndarray) -> tuple[np.ndarray, str]:
    """(…, L, C, X, Y) → images (…, L, Y, X) and what they show: vorticity when the system has it."""
    w = vorticity_frames(system, x)
    if w is not None:
        return np.swapaxes(w, -1, -2), "vorticity ω"
    # fields are indexed [..., x, y]; images are [row = y, column = x]
    return np.swapaxes(x[..., 0, :, :], -1, -2), system.variable_names[0]


FIELD_IMAGE_LEVELS = {"truth": ("state", "state"), "sample": ("state", "state"), "mean": ("state", "state"),
                      "spread": ("spread", "spread")}


def field_data(system, results: Results, mode: str = "all", sample: int = 0,
               truth_w: Optional[np.ndarray] = None, colors: Optional[dict] = None) -> PlotData:
    """Everything ``FieldPlots`` shows of ``results`` (samples ``(N, L, C, H, W)``); any thread.

    Vorticity frames cost the most: ``truth_w`` (the truth's, computed once per run) saves
    recomputing them for every preview. ``colors`` as for ``ring_data``.
    """
    x = finite_samples(results.samples)   # (N, L, C, H, W)
    k = min(int(sample), x.shape[0] - 1)
    sample_w, label = field_frames(system, x[k])
    all_w, _ = field_frames(system, x) if x.shape[0] <= 64 else field_frames(system, x[:64])
    mean_w, std_w = mean_std(all_w)
    if truth_w is None and results.truth is not None:
        truth_w = field_frames(system, np.asarray(results.truth, dtype=np.float32))[0]
    arrays = {"sample": np.ascontiguousarray(sample_w, dtype=np.float32),
              "mean": np.ascontiguousarray(mean_w, dtype=np.float32),
              "spread": np.ascontiguousarray(std_w, dtype=np.float32),
              "truth": None if truth_w is None else np.ascontiguousarray(truth_w, dtype=np.float32),
              "label": label, "n": x.shape[0], "k": k, "length": x.shape[1]}
    ref = arrays["truth"] if arrays["truth"] is not None else arrays["mean"]
    levels = {"state": safe_levels(symmetric_levels(ref)),
              "spread": safe_levels((0.0, max(robust_levels(arrays["spread"], 0.5)[1], 1e-6)))}
    if colors is not None:
        _colour_images(arrays, colors, FIELD_IMAGE_LEVELS)
    return PlotData("field", (mode, int(sample)), arrays, levels)


def observed_cell_frames(observation, state_shape) -> list[Optional[np.ndarray]]:
    """Per state, an RGBA image framing the observed cells over the whole field (None: none).

    A coarse cell is framed as the block it averages; a pixel mask or sampled points
    are framed pixel by pixel on the state grid. Channels observed at the same place
    share one frame. States with the same pattern share one image.
    """
    if observation is None:
        return []
    mask = np.asarray(observation.mask, dtype=bool)
    spec = observation.operator
    if ops.kind_of(spec) != "coarsen":
        mask = ops.convert_mask(mask, spec, None, state_shape)
    cells = mask.reshape(mask.shape[0], -1, *mask.shape[-2:]).any(axis=1)   # (L, x, y)
    # about 256 overlay pixels across, so that frames stay one thin line on any grid
    scale = max(3, 256 // max(cells.shape[1:]))
    images, out = {}, []
    for frame in cells:
        if not frame.any():
            out.append(None)
            continue
        key = frame.tobytes()
        if key not in images:
            images[key] = mask_overlay(frame.T, scale, wash=False)   # [x, y] → rows are y
        out.append(images[key])
    return out
