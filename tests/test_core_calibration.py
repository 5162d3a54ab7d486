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


def _correlated_draws(n: int, seed: int, length: int = 32, width: int = 40, rho: float = 0.95):
    """``n`` AR(1) trajectories (lag-1 correlation ``rho`` along the window): entries far from independent."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, length, width))
    x[:, 0] = rng.standard_normal((n, width))
    for i in range(1, length):
        x[:, i] = rho * x[:, i - 1] + math.sqrt(1 - rho ** 2) * rng.standard_normal((n, width))
    return x


def test_the_exchangeability_test_reads_correlated_trajectories_against_their_own_reference():
    # truth and 64 members drawn alike: calibrated, yet the correlated entries inflate χ²/dof well above 1
    ps, flatness, references = [], [], []
    for seed in range(20):
        draws = _correlated_draws(65, seed)
        truth, members = draws[0], draws[1:]
        p, reference = cal.rank_exchangeability(members, truth, seed)
        ps.append(p), references.append(reference)
        flatness.append(cal.rank_flatness(cal.rank_histogram(members, truth, seed)))
    assert max(flatness) > 3 and np.median(references) > 1.4
    # the permutation p-value of a calibrated truth is uniform on {1..65}/65
    assert all(1 / 65 - 1e-12 <= p <= 1 for p in ps)
    assert 0.3 < np.mean(ps) < 0.7 and sum(p <= 0.05 for p in ps) <= 3
    # the reference: the members' median χ²/dof, each ranked among the other 64 draws (the truth one of them)
    draws = _correlated_draws(17, 0)
    loo = [cal.rank_flatness(cal.rank_histogram(np.delete(draws, j, 0), draws[j])) for j in range(1, 17)]
    assert cal.rank_exchangeability(draws[1:], draws[0])[1] == pytest.approx(np.median(loo))


def test_the_exchangeability_test_flags_shaped_histograms():
    draws = _correlated_draws(65, 1, length=64)
    truth, members = draws[0], draws[1:]
    # over-confident (U), over-dispersed (dome), biased (slope): the truth stands out of the pool
    assert cal.rank_exchangeability(0.5 * members, truth)[0] == pytest.approx(1 / 65)
    assert cal.rank_exchangeability(2.0 * members, truth)[0] == pytest.approx(1 / 65)
    assert cal.rank_exchangeability(members + 0.5, truth)[0] == pytest.approx(1 / 65)
    assert cal.rank_exchangeability(members, truth)[0] > 0.05
    # independent entries, the classic case
    members, truth = _gaussian_case(40, 2.0)
    assert cal.rank_exchangeability(members, truth)[0] == pytest.approx(1 / 41)
    members, truth = _gaussian_case(40, 1.0)
    p, reference = cal.rank_exchangeability(members, truth)
    assert p > 0.05 and reference == pytest.approx(1.0, abs=0.3)


def test_the_exchangeability_test_on_ties_few_members_and_fields():
    # a point ensemble at the truth: every draw tied, broken at random, nothing flagged
    p, reference = cal.rank_exchangeability(np.zeros((9, 50, 40)), np.zeros((50, 40)), seed=3)
    assert p > 0.05 and reference == pytest.approx(1.0, abs=0.8)
    assert (p, reference) == cal.rank_exchangeability(np.zeros((9, 50, 40)), np.zeros((50, 40)), seed=3)
    assert all(math.isnan(v) for v in cal.rank_exchangeability(np.zeros((1, 4, 3)), np.zeros((4, 3))))
    # a field with more entries than the cap is tested on a subset: still a valid p-value
    rng = np.random.default_rng(5)
    field = rng.standard_normal((9, 2, 2, 130, 130))
    p, reference = cal.rank_exchangeability(field[1:], field[0])
    assert field[0].size > cal.EXCHANGEABILITY_ENTRIES and p in {k / 9 for k in range(1, 10)}
    s = cal.scores(field[1:], field[0])
    assert s["rank_p"] == p and s["rank_reference"] == reference


def test_fisher_combination_of_window_p_values():
    # k = 1: the p-value itself; the closed-form χ²_{2k} survival function against known values
    assert cal.combine_p_values([0.3]) == pytest.approx(0.3)
    assert cal.combine_p_values([0.05, 0.05]) == pytest.approx(0.0175, abs=2e-4)   # −2Σln p = 11.98, 4 dof
    assert cal.combine_p_values([1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert cal.combine_p_values([0.5, 0.5, 0.5, 0.5]) > 0.5 > cal.combine_p_values([0.01, 0.5, 0.5, 0.5])
    assert math.isnan(cal.combine_p_values([])) and cal.combine_p_values([math.nan, 0.3]) == pytest.approx(0.3)
