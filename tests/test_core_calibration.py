"""Calibration scores on ensembles whose answer is known (core/calibration.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sda_gui.core import calibration as cal
from sda_gui.core import metrics


def _gaussian_case(n_members: int, member_std: float, seed: int = 0, shape=(100, 40)):
    """Truth ``μ + N(0, 1)``, members ``μ + N(0, member_std²)`` around the same random ``μ``."""
    rng = np.random.default_rng(seed)
    mu = 3.0 * rng.standard_normal(shape)
    truth = mu + rng.standard_normal(shape)
    members = mu + member_std * rng.standard_normal((n_members, *shape))
    return members, truth


def _crps_brute(members, truth):
    m = np.asarray(members, dtype=np.float64)
    n = len(m)
    skill = np.abs(m - truth).mean(0)
    pairs = np.abs(m[:, None] - m[None]).sum((0, 1)) / (2 * n * (n - 1))
    return float((skill - pairs).mean())


def test_crps_of_a_point_ensemble_is_the_mean_absolute_error():
    rng = np.random.default_rng(1)
    truth = rng.standard_normal((7, 5))
    point = rng.standard_normal((7, 5))
    mae = float(np.abs(point - truth).mean())
    assert cal.crps(np.repeat(point[None], 6, 0), truth) == pytest.approx(mae, rel=1e-12)
    assert cal.crps(point[None], truth) == pytest.approx(mae, rel=1e-12)


def test_crps_matches_the_pairwise_definition_and_the_gaussian_value():
    rng = np.random.default_rng(2)
    members, truth = rng.standard_normal((9, 4, 3)), rng.standard_normal((4, 3))
    assert cal.crps(members, truth) == pytest.approx(_crps_brute(members, truth), rel=1e-10)
    # fair CRPS of N(μ, 1) members against a truth drawn from N(μ, 1): E CRPS = 1/√π
    members, truth = _gaussian_case(40, 1.0)
    assert cal.crps(members, truth) == pytest.approx(1 / math.sqrt(math.pi), abs=0.03)
    # torch input gives the same number
    assert cal.crps(torch.as_tensor(members), torch.as_tensor(truth)) == pytest.approx(cal.crps(members, truth))


def test_a_calibrated_gaussian_ensemble_scores_as_calibrated():
    members, truth = _gaussian_case(40, 1.0)
    s = cal.scores(members, truth)
    assert s["rank_flatness"] == pytest.approx(1.0, abs=0.6)
    assert s["coverage_50"] == pytest.approx(0.5, abs=0.03)
    assert s["coverage_90"] == pytest.approx(0.9, abs=0.03)
    assert s["spread_skill"] == pytest.approx(1.0, abs=0.06)
    assert s["rmse"] == pytest.approx(math.sqrt(1 + 1 / 40), abs=0.05)
    assert s["spread"] == pytest.approx(1.0, abs=0.03)
    assert sum(s["rank_counts"]) == truth.size and len(s["rank_counts"]) == 41
    assert len(s["rmse_time"]) == len(s["spread_time"]) == truth.shape[0]


def test_an_over_confident_ensemble_is_flagged():
    members, truth = _gaussian_case(20, 0.3)
    s = cal.scores(members, truth)
    counts = np.asarray(s["rank_counts"])
    assert s["spread_skill"] < 0.4
    assert s["coverage_90"] < 0.6 and s["coverage_50"] < 0.3
    assert s["rank_flatness"] > 50
    # U-shaped: the truth falls outside the members far more often than between two of them
    assert counts[0] > 5 * counts[10] and counts[-1] > 5 * counts[10]
    # an over-dispersed one is flagged the other way (dome, spread above the error)
    wide = cal.scores(*_gaussian_case(20, 3.0))
    assert wide["spread_skill"] > 2 and wide["coverage_50"] > 0.8 and wide["rank_flatness"] > 50


def test_ties_are_split_at_random():
    truth = np.zeros((50, 40))
    counts = cal.rank_histogram(np.zeros((9, 50, 40)), truth, seed=3)
    assert counts.sum() == truth.size and len(counts) == 10
    assert cal.rank_flatness(counts) == pytest.approx(1.0, abs=0.8)
    assert np.array_equal(counts, cal.rank_histogram(np.zeros((9, 50, 40)), truth, seed=3))


def test_dapper_rmse_per_state_against_the_global_rms():
    truth = np.zeros((4, 10))
    errors = np.array([0.0, 1.0, 2.0, 3.0])
    members = np.repeat((truth + errors[:, None])[None], 3, 0)
    assert np.allclose(cal.rmse_time(members, truth), errors)
    assert cal.rmse_per_state(members, truth) == pytest.approx(1.5)
    assert metrics.rmse(members, truth) == pytest.approx(math.sqrt(np.mean(errors ** 2)))
    assert cal.rmse_per_state(members, truth) < metrics.rmse(members, truth)
    # spread per state: √(mean variance) at each state, then the time mean
    rng = np.random.default_rng(4)
    m = rng.standard_normal((30, 5, 6)) * np.array([1.0, 2.0, 3.0, 4.0, 5.0])[None, :, None]
    expected = np.sqrt(m.var(0, ddof=1).mean(1))
    assert np.allclose(cal.spread_time(m), expected)
    assert cal.spread_per_state(m) == pytest.approx(expected.mean())
    assert cal.spread_time(m[:1]).tolist() == [0.0] * 5


def test_metrics_reexports_and_bad_shapes():
    for name in ("crps", "rank_histogram", "rank_flatness", "spread_skill", "coverage", "rmse_time",
                 "spread_time", "rmse_per_state", "spread_per_state", "scores"):
        assert name in metrics.__all__ and getattr(metrics, name) is getattr(cal, name)
    with pytest.raises(ValueError, match="do not match"):
        cal.crps(np.zeros((3, 4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="level"):
        cal.coverage(np.zeros((3, 4)), np.zeros(4), 1.0)
