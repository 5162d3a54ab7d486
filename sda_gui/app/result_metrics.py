"""Scores of a finished result, and plain warnings when it blew up; computed on the worker thread.

RMSE of the posterior mean against the truth, the ensemble spread, and the
residual std ``RMS(A(x) − y)`` over observed entries against the observation σ
(``sda_gui.core.metrics``); ``bad_values`` counts non-finite or overflowing
entries (|x| > 1e6).

``warnings`` says in words what a user should not miss:

- the residual std far from σ_y: above ``RESIDUAL_HIGH`` × σ_y the samples do not
  explain the observations (a sampler that spikes at observed entries), below
  ``RESIDUAL_LOW`` × σ_y they follow the noise closer than the truth does;
- samples outside the climatological range: ``|x − m| > CLIMATE_STDS · s`` anywhere,
  with ``(m, s)`` the system's ``normalization()`` (its climatological mean and
  scale), i.e. values the dynamics essentially never reach;
- non-finite or huge values.

Each warning names what helps (more steps, corrections C ≥ 1, MMPS guidance),
leaving out what the run already used.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .state import Results

__all__ = ["compute_metrics", "result_warnings", "climate_excursion", "RESIDUAL_HIGH", "RESIDUAL_LOW",
           "CLIMATE_STDS"]

RESIDUAL_HIGH = 3.0
RESIDUAL_LOW = 0.3
CLIMATE_STDS = 6.0


def compute_metrics(results: Results, system=None) -> dict:
    """RMSE of the mean, spread, the residual std against σ_y, and ``warnings`` (a list of lines).

    ``system`` (its ``normalization()``) enables the climatological-range check;
    ``results.settings`` (guidance, steps, corrections) tailors the advice.
    """
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
        if system is not None:
            out.update(climate_excursion(samples, system))
    out["warnings"] = result_warnings(out, results.settings or {})
    return out


def climate_excursion(samples: np.ndarray, system) -> dict:
    """How far samples ``(N, L, *s)`` leave the climatology ``(m, s) = system.normalization()``.

    ``out_of_range``: samples with any finite entry beyond ``CLIMATE_STDS`` scales of
    the mean; ``max_excursion``: the largest ``|x − m| / s`` over finite entries.
    """
    mean, scale = (np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, dtype=np.float64)
                   for v in system.normalization())
    x = np.asarray(samples, dtype=np.float64)
    with np.errstate(all="ignore"):
        z = np.abs(x - mean) / scale
    z = np.where(np.isfinite(z), z, 0.0)
    per_sample = z.reshape(z.shape[0], -1).max(axis=1) if z.size else np.zeros(0)
    return {"out_of_range": int((per_sample > CLIMATE_STDS).sum()),
            "max_excursion": float(per_sample.max()) if per_sample.size else 0.0}


def _remedies(settings: dict) -> str:
    """What usually tames a sampler that blew up, leaving out what this run already did."""
    steps, c, guidance = settings.get("steps"), settings.get("corrections"), settings.get("guidance")
    tips = []
    tips.append(f"more steps (this run: {steps})" if steps else "more steps")
    if c is None or int(c) < 1:
        tips.append("corrections C ≥ 1" + (" (this run: C = 0)" if c is not None else ""))
    if guidance is None or str(guidance).lower() != "mmps":
        tips.append("MMPS guidance")
    return ", ".join(tips[:-1]) + " or " + tips[-1] if len(tips) > 1 else tips[0]


def result_warnings(m: dict, settings: Optional[dict] = None) -> list[str]:
    """Plain-language warnings for the metrics ``m`` of a result (see the module docstring).

    The advice for a run that blew up follows its last symptom, once.
    """
    out, blew_up = [], False
    r, s = m.get("residual_std"), m.get("obs_std")
    if r is not None and s and np.isfinite(s) and s > 0:
        ratio = r / s if np.isfinite(r) else float("inf")
        if ratio > RESIDUAL_HIGH:
            times = f"{ratio:.0f}×" if np.isfinite(ratio) else "far above"
            out.append(f"The samples do not fit the observations: residual std {r:.3g} is {times} σ_y = {s:.3g}.")
            blew_up = True
        elif ratio < RESIDUAL_LOW:
            out.append(f"The samples follow the observations closer than their noise allows: residual std "
                       f"{r:.3g} is only {ratio:.2f}× σ_y = {s:.3g}. Check that σ_y is the noise of the data; "
                       "a larger γ (SDA) or MMPS guidance pulls less hard.")
    n_out = m.get("out_of_range", 0)
    if n_out:
        out.append(f"{n_out} of {m.get('samples', 0)} samples leave the system's climatological range (up to "
                   f"{m.get('max_excursion', 0):.0f} climatological std from its mean): the sampler diverged.")
        blew_up = True
    if m.get("bad_values"):
        out.append(f"{m['bad_values']} values are not finite or huge (an undertrained model or an unstable "
                   "sampler).")
        blew_up = True
    if blew_up:
        out[-1] += f" Try {_remedies(settings or {})}."
    return out
