"""What a lesson's rules mean: observation patterns from a rule, and checks on a result.

Pattern (on the observed grid ``(L, *grid)``, i.e. after the operator):

- ``density = p`` (with ``seed``): each entry observed with probability ``p``
  (``numpy.random.default_rng(seed).random(shape) < p``, as the editor's *Random*);
- otherwise a lattice: every entry, thinned by the rules below;
- ``every_states = n`` keeps states ``0, n, 2n, …``; ``states = [...]`` only those;
- ``every_variables = m`` keeps every m-th entry along the spatial axes (the
  variables of Lorenz-63/96, the pixels of a field along both axes);
- ``variables = [...]`` keeps those entries of the first state axis (x, y, z; u, v).

Checks, on the metrics of the last result (``rmse`` of the posterior mean, ``spread``,
``residual_std`` and ``obs_std`` = σ_y) or the rows of the last comparison:

- ``residual_within = f``: ``|residual std / σ_y − 1| ≤ f`` (the samples explain the
  observations to their noise level, no closer and no further);
- ``rmse_below = v`` / ``rmse_above = v``, ``spread_below`` / ``spread_above``;
- ``spread_ratio_between = [a, b]``: ``a ≤ spread / RMSE ≤ b`` (a calibrated ensemble
  has a ratio near 1);
- ``method_beats = [m1, m2]``: the RMSE of ``m1`` below that of ``m2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["pattern_mask", "evaluate_check", "CheckResult", "describe_check"]


def pattern_mask(rule: dict, length: int, grid_shape: tuple) -> np.ndarray:
    """The boolean pattern ``(length, *grid_shape)`` a rule describes (see the module docstring)."""
    shape = (int(length), *tuple(int(n) for n in grid_shape))
    if "density" in rule:
        mask = np.random.default_rng(int(rule.get("seed", 0))).random(shape) < float(rule["density"])
    else:
        mask = np.ones(shape, dtype=bool)
    keep_t = np.zeros(shape[0], dtype=bool)
    if "states" in rule:
        keep_t[[t for t in rule["states"] if t < shape[0]]] = True
    else:
        keep_t[::int(rule.get("every_states", 1))] = True
    mask &= keep_t.reshape(-1, *([1] * len(grid_shape)))
    spatial = 1 if len(grid_shape) == 1 else 2
    m = int(rule.get("every_variables", 1))
    if m > 1:
        keep = np.zeros(shape, dtype=bool)
        idx = [slice(None)] * (len(shape) - spatial) + [slice(None, None, m)] * spatial
        keep[tuple(idx)] = True
        mask &= keep
    if "variables" in rule:
        keep = np.zeros(shape, dtype=bool)
        keep[:, [v for v in rule["variables"] if v < shape[1]]] = True
        mask &= keep
    return mask


@dataclass(frozen=True)
class CheckResult:
    #: True/False; None when there is nothing to check yet (no result, no comparison)
    passed: Optional[bool]
    #: the measured number (NaN when none)
    value: float
    #: one line for the lesson dock: what was measured against what
    text: str

    @property
    def mark(self) -> str:
        return "…" if self.passed is None else ("✓" if self.passed else "✗")


def describe_check(check: tuple) -> str:
    """What a check asks, in words."""
    kind, arg = check
    return {
        "residual_within": lambda: f"residual std within {arg:.0%} of σ_y",
        "rmse_below": lambda: f"RMSE of the mean below {arg:g}",
        "rmse_above": lambda: f"RMSE of the mean above {arg:g}",
        "spread_below": lambda: f"spread below {arg:g}",
        "spread_above": lambda: f"spread above {arg:g}",
        "spread_ratio_between": lambda: f"spread / RMSE between {arg[0]:g} and {arg[1]:g}",
        "method_beats": lambda: f"{arg[0].upper()} has a lower RMSE than {arg[1].upper()}",
    }[kind]()


def _num(metrics: Optional[dict], key: str) -> float:
    value = (metrics or {}).get(key)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def evaluate_check(check: tuple, metrics: Optional[dict] = None, rows: Optional[list] = None) -> CheckResult:
    """Evaluates ``check = (kind, value)`` on the last result's ``metrics`` or comparison ``rows``."""
    kind, arg = check
    want = describe_check(check)
    if kind == "method_beats":
        rmse = {str(r.get("method")): float(r.get("rmse", math.nan)) for r in rows or [] if not r.get("error")}
        a, b = rmse.get(arg[0], math.nan), rmse.get(arg[1], math.nan)
        if math.isnan(a) or math.isnan(b):
            return CheckResult(None, math.nan, f"{want}: run a comparison of both first")
        return CheckResult(a < b, a - b, f"{want}: RMSE {a:.3f} against {b:.3f}")
    if not metrics:
        return CheckResult(None, math.nan, f"{want}: run the assimilation first")
    if kind == "residual_within":
        r, s = _num(metrics, "residual_std"), _num(metrics, "obs_std")
        if not (s > 0) or math.isnan(r):
            return CheckResult(None, math.nan, f"{want}: no observed entries to measure")
        ratio = r / s
        return CheckResult(abs(ratio - 1.0) <= arg, ratio,
                           f"{want}: residual std {r:.3g} = {ratio:.2f} σ_y")
    rmse, spread = _num(metrics, "rmse"), _num(metrics, "spread")
    if kind in ("rmse_below", "rmse_above", "spread_ratio_between") and math.isnan(rmse):
        return CheckResult(None, math.nan, f"{want}: no truth to measure the RMSE against")
    if kind == "rmse_below":
        return CheckResult(rmse < arg, rmse, f"{want}: RMSE {rmse:.3g}")
    if kind == "rmse_above":
        return CheckResult(rmse > arg, rmse, f"{want}: RMSE {rmse:.3g}")
    if kind == "spread_below":
        return CheckResult(spread < arg, spread, f"{want}: spread {spread:.3g}")
    if kind == "spread_above":
        return CheckResult(spread > arg, spread, f"{want}: spread {spread:.3g}")
    ratio = spread / rmse if rmse > 0 else math.inf
    return CheckResult(arg[0] <= ratio <= arg[1], ratio, f"{want}: spread {spread:.3g} / RMSE {rmse:.3g} = {ratio:.2f}")
