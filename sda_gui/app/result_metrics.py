"""Scores of a finished result, computed on the worker thread (never in a view).

RMSE of the posterior mean against the truth, the ensemble spread, and the
residual std ``RMS(A(x) − y)`` over observed entries against the observation σ
(``sda_gui.core.metrics``); ``bad_values`` counts non-finite or overflowing
entries (|x| > 1e6) so a diverged run says so instead of drawing garbage.
"""

from __future__ import annotations

import numpy as np

from .state import Results

__all__ = ["compute_metrics"]


def compute_metrics(results: Results) -> dict:
    """RMSE of the mean, spread, and the residual std against the observation σ."""
    from sda_gui.core import metrics

    samples = np.asarray(results.samples)
    with np.errstate(invalid="ignore"):
        bad = int((~np.isfinite(samples) | (np.abs(np.nan_to_num(samples)) > 1e6)).sum())
    out = {"samples": int(samples.shape[0]), "bad_values": bad}
    # a diverged sample overflows; the metrics line says so (errstate is per thread: this runs on the worker)
    with np.errstate(all="ignore"):
        out["spread"] = metrics.spread(samples)
        if results.truth is not None:
            out["rmse"] = metrics.rmse(samples, results.truth)
        obs = results.observation
        if obs is not None and obs.count:
            out["residual_std"] = metrics.residual_std(samples, obs)
            out["obs_std"] = float(np.mean(obs.observed_std()))
            out["n_obs"] = obs.count
            out["operator"] = obs.operator or ""
    return out
