"""Calibration scores of an ensemble ``(N, L, *state_shape)`` against a truth ``(L, *state_shape)``.

Every score treats each entry (state, variable, grid point) as one forecast
of one scalar; ``x_k`` are the ``N`` members at that entry, ``y`` the truth.

- ``crps``: the fair ensemble CRPS, ``mean_k |x_k − y| − Σ_{k,l} |x_k − x_l| / (2 N (N − 1))``,
  averaged over entries: unbiased for the CRPS of the distribution the members
  are drawn from, so a small ensemble is not penalised for its size. For a
  point ensemble (all members equal, or ``N = 1``) it is the mean absolute error.
- ``rank_histogram``: counts ``(N + 1,)`` of the truth's rank among the members
  (ties broken at random, seeded), and ``rank_flatness``: ``χ² / N`` of those
  counts against the uniform histogram (``N`` degrees of freedom).
- ``rank_exchangeability``: whether the truth's rank histogram is flat *for this
  ensemble*. ``χ²/dof`` read against 1 assumes independent entries; neighbouring
  states and variables are correlated, so a calibrated ensemble of trajectories
  scores well above 1. The test pools the truth with the ``N`` members (``N + 1``
  draws); under calibration the truth is one more draw of the same law, the draws
  are exchangeable, and so is any statistic computed alike for each of them. Each
  draw ``j`` gets its ranks ``r_j`` among the other ``N`` at every entry and two
  statistics of their shape: the dispersion ``D_j = mean |r_j / N − ½|`` (large for a
  truth outside the members, the U of over-confidence; small for a truth in their
  middle, the dome of over-dispersion) and the bias ``B_j = mean (r_j / N − ½)`` (a
  sloped histogram), standardised over the pool (``z = (S − mean) / std`` over all
  ``N + 1`` draws, a symmetric function of the pool, so exchangeability holds for
  them too) and joined as ``T_j = max(|z_D|, |z_B|)``. The permutation p-value
  ``#{j : T_j ≥ T_truth} / (N + 1)`` is then uniform on ``{1, …, N + 1} / (N + 1)``
  under calibration whatever the correlations (below 0.05 in at most 5 % of
  calibrated cases, never below ``1 / (N + 1)``). (The ``χ²/dof`` itself makes a weak
  statistic: on 65 correlated draws it did not flag members 1.4 times too wide,
  p = 0.26, where ``T`` gives 0.03.) The members'
  median ``χ²/dof`` is what a draw of this ensemble scores against the others, the
  reference to read ``rank_flatness`` against.
- ``spread_skill``: ``√((N + 1) / N) · spread / RMSE`` (global RMS of both); the
  factor makes a calibrated ensemble score 1 for any ``N``, since the error of
  the mean of ``N`` draws has variance ``(1 + 1/N) σ²``. Below 1: over-confident.
- ``coverage``: the fraction of entries whose truth lies in the members' central
  interval of probability ``level``: between the empirical quantiles
  ``(1 ∓ level) / 2`` taken at the order-statistic positions ``q (N + 1)``
  (Weibull's plotting positions), where a member drawn like the truth has
  expected probability ``q`` below it, so a calibrated ensemble covers ``level``
  for any ``N`` (as long as ``N + 1 ≥ 2 / (1 − level)``; fewer members cannot
  bracket that interval and cover ``(N − 1) / (N + 1)`` at most).
- ``rmse_time`` / ``spread_time``: per state ``i``, ``√(mean_j (x̄_ij − y_ij)²)`` and
  ``√(mean_j var_k x_kij)`` (ddof 1) over the variables ``j``.
- ``rmse_per_state`` / ``spread_per_state``: DAPPER's convention, the mean over
  time of ``rmse_time`` / ``spread_time``. ``metrics.rmse`` is instead the global
  RMS ``√(mean_ij (x̄_ij − y_ij)²)``, the square root of the time mean of the
  squares; by Jensen's inequality the per-state average is never larger, and
  the two differ most when the error varies along the window (e.g. large at its
  start, small where observations are dense).

Numpy and torch inputs are both accepted; everything is computed in float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["crps", "rank_histogram", "rank_flatness", "rank_exchangeability", "combine_p_values",
           "spread_skill", "coverage", "rmse_time",
           "spread_time", "rmse_per_state", "spread_per_state", "scores"]


def _np(x) -> np.ndarray:
    x = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    return x.astype(np.float64, copy=False)


def _pair(members, truth) -> tuple[np.ndarray, np.ndarray]:
    m, t = _np(members), _np(truth)
    if m.shape[1:] != t.shape:
        raise ValueError(f"members {m.shape} do not match the truth {t.shape}: expected (N, *truth.shape)")
    if len(m) < 1:
        raise ValueError("no members")
    return m, t


def crps(members, truth) -> float:
    """Fair ensemble CRPS averaged over entries (see the module docstring)."""
    m, t = _pair(members, truth)
    n = len(m)
    skill = np.abs(m - t).mean(0)
    if n == 1:
        return float(skill.mean())
    # Σ_{k,l} |x_k − x_l| = 2 Σ_k (2k − n − 1) x_(k) over the sorted members (k = 1..n)
    ranks = (2 * np.arange(1, n + 1) - n - 1).reshape(n, *(1,) * t.ndim)
    pairs = 2.0 * (ranks * np.sort(m, axis=0)).sum(0)
    return float((skill - pairs / (2.0 * n * (n - 1))).mean())


def rank_histogram(members, truth, seed: int = 0) -> np.ndarray:
    """Counts ``(N + 1,)`` of the truth's rank among the ``N`` members over all entries.

    Rank ``r`` means ``r`` members are below the truth; a member equal to the
    truth counts as below with the chance that splits the ties evenly
    (rank uniform over ``[below, below + ties]``), so a point ensemble at the
    truth is not piled into one end.
    """
    m, t = _pair(members, truth)
    n = len(m)
    below = (m < t).sum(0).ravel()
    ties = (m == t).sum(0).ravel()
    rng = np.random.default_rng(seed)
    rank = below + np.floor(rng.random(below.shape) * (ties + 1)).astype(np.int64)
    return np.bincount(rank, minlength=n + 1).astype(np.int64)


def rank_flatness(counts) -> float:
    """``χ² / dof`` of rank-histogram counts against the uniform histogram (dof = bins − 1).

    1 means flat up to the sampling noise of *independent* ranks (its expected
    value for a calibrated ensemble with independent entries); much more than
    1 means a shaped histogram: U (over-confident), dome (over-dispersed) or
    sloped (biased). Ranks of neighbouring states and variables are correlated,
    which inflates it for any real trajectory even when calibrated, and it grows
    with the number of entries for a fixed shape: compare methods on the same
    problem rather than reading it against 1 alone.
    """
    c = np.asarray(counts, dtype=np.float64)
    bins = len(c)
    if bins < 2 or c.sum() == 0:
        return float("nan")
    expected = c.sum() / bins
    return float(((c - expected) ** 2 / expected).sum() / (bins - 1))


#: entries the exchangeability test ranks at most (a seeded subset beyond: the same for every draw)
EXCHANGEABILITY_ENTRIES = 1 << 16


def rank_exchangeability(members, truth, seed: int = 0) -> tuple[float, float]:
    """``(p, reference)``: the truth's permutation p-value for a flat rank histogram, and the
    members' median ``χ²/dof`` (the module docstring). ``(nan, nan)`` below 2 members.

    Ties (point ensembles) are broken at random, seeded; fields with more than
    ``EXCHANGEABILITY_ENTRIES`` entries are tested on a seeded subset of them.
    """
    m, t = _pair(members, truth)
    n = len(m)
    if n < 2:
        return math.nan, math.nan
    pool = np.concatenate([t[None], m]).reshape(n + 1, -1)  # draw 0 is the truth
    rng = np.random.default_rng(seed)
    if pool.shape[1] > EXCHANGEABILITY_ENTRIES:
        pool = pool[:, rng.choice(pool.shape[1], EXCHANGEABILITY_ENTRIES, replace=False)]
    # rank of every draw among the other n at every entry, ties in a random order
    order = np.lexsort((rng.random(pool.shape), pool), axis=0)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(n + 1)[:, None], axis=0)
    centred = ranks / n - 0.5
    shape = np.stack([np.abs(centred).mean(1), centred.mean(1)])           # D_j, B_j
    spread = shape.std(1, keepdims=True)
    z = np.abs(shape - shape.mean(1, keepdims=True)) / np.where(spread > 0, spread, 1.0)
    stat = z.max(0)
    # ≥ up to rounding: a tie with the truth's statistic counts against it
    p = float(np.mean(stat >= stat[0] - 1e-12 * max(1.0, float(stat.max()))))
    draw = np.arange(n + 1)[:, None]
    counts = np.bincount((draw * (n + 1) + ranks).ravel(), minlength=(n + 1) ** 2).reshape(n + 1, n + 1)
    expected = pool.shape[1] / (n + 1)
    flatness = ((counts[1:] - expected) ** 2 / expected).sum(1) / n
    return float(p), float(np.median(flatness))


def combine_p_values(ps) -> float:
    """Fisher's combination of independent p-values (one per window): ``P(χ²_{2k} ≥ −2 Σ ln p)``.

    The survival function of ``χ²`` with ``2k`` degrees of freedom is
    ``e^{−x/2} Σ_{i<k} (x/2)^i / i!``. The permutation p-values are discrete
    (never below ``1/(N + 1)``), which makes the combination conservative.
    """
    ps = [float(p) for p in ps if not math.isnan(float(p))]
    if not ps:
        return math.nan
    half = -sum(math.log(max(p, 1e-300)) for p in ps)   # x / 2
    term, total = 1.0, 1.0
    for i in range(1, len(ps)):
        term *= half / i
        total += term
    return float(min(1.0, math.exp(-half) * total))


def spread_skill(members, truth) -> float:
    """``√((N+1)/N) · spread / RMSE``, global RMS of both; 1 when calibrated, < 1 over-confident."""
    m, t = _pair(members, truth)
    n = len(m)
    if n < 2:
        return 0.0
    err = np.sqrt(np.mean((m.mean(0) - t) ** 2))
    spread = np.sqrt(np.mean(m.var(0, ddof=1)))
    if err == 0:
        return float("inf") if spread > 0 else float("nan")
    return float(np.sqrt((n + 1) / n) * spread / err)


def coverage(members, truth, level: float) -> float:
    """Fraction of entries whose truth lies in the members' central ``level`` interval."""
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    m, t = _pair(members, truth)
    lo, hi = np.quantile(m, [(1 - level) / 2, (1 + level) / 2], axis=0, method="weibull")
    return float(np.mean((t >= lo) & (t <= hi)))


def _per_state(x: np.ndarray) -> np.ndarray:
    """Mean over every axis but the first (the state index)."""
    return x.reshape(len(x), -1).mean(1)


def rmse_time(members, truth) -> np.ndarray:
    """``(L,)``: RMSE of the ensemble mean at each state, over its variables."""
    m, t = _pair(members, truth)
    return np.sqrt(_per_state((m.mean(0) - t) ** 2))


def spread_time(members) -> np.ndarray:
    """``(L,)``: ``√(mean over variables of the ensemble variance)`` at each state (0 for one member)."""
    m = _np(members)
    if len(m) < 2:
        return np.zeros(m.shape[1])
    return np.sqrt(_per_state(m.var(0, ddof=1)))


def rmse_per_state(members, truth) -> float:
    """DAPPER's RMSE: ``rmse_time`` averaged over the window (≤ the global RMS ``metrics.rmse``)."""
    return float(rmse_time(members, truth).mean())


def spread_per_state(members) -> float:
    """DAPPER's spread: ``spread_time`` averaged over the window."""
    return float(spread_time(members).mean())


def scores(members, truth, seed: int = 0) -> dict:
    """Every score at once (floats, and the rank counts and time series as lists)."""
    m, t = _pair(members, truth)
    counts = rank_histogram(m, t, seed)
    rank_p, rank_reference = rank_exchangeability(m, t, seed)
    return {
        "rmse": rmse_per_state(m, t),
        "spread": spread_per_state(m),
        "rmse_global": float(np.sqrt(np.mean((m.mean(0) - t) ** 2))),
        "crps": crps(m, t),
        "spread_skill": spread_skill(m, t),
        "coverage_50": coverage(m, t, 0.5),
        "coverage_90": coverage(m, t, 0.9),
        "rank_flatness": rank_flatness(counts),
        "rank_p": rank_p,
        "rank_reference": rank_reference,
        "rank_counts": counts.tolist(),
        "rmse_time": rmse_time(m, t).tolist(),
        "spread_time": spread_time(m).tolist(),
    }
