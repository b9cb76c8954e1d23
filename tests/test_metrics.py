import numpy as np
import pandas as pd
import pytest

from upscale.learn.metrics import decomposed_skill, skill


def test_hand_computed_values():
    observed = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    predicted = np.array([1.5, 2.0, 2.0, 4.5, 9.0])
    score = skill(observed, predicted)
    # deviations from the means (2.5 both): obs -1.5 -0.5 0.5 1.5, pred -1 -0.5 -0.5 2
    # covariance sum 4.5, SST 5, SS(pred) 5.5; errors 0.5 0 -1 0.5 -> SSE 1.5
    assert score["n"] == 4
    assert score["r2"] == pytest.approx(4.5**2 / (5 * 5.5))
    assert score["nse"] == pytest.approx(1 - 1.5 / 5)
    assert score["rmse"] == pytest.approx(np.sqrt(1.5 / 4))
    assert score["bias"] == pytest.approx(0.0)


def test_perfect_constant_and_too_few():
    x = np.arange(5.0)
    assert skill(x, x)["r2"] == 1.0 and skill(x, x)["nse"] == 1.0
    assert np.isnan(skill(x, np.full(5, 2.0))["r2"])  # no variance in the predictions
    assert np.isnan(skill(np.array([1.0]), np.array([1.0]))["nse"])


def test_decomposition_separates_sites_seasons_and_anomalies():
    times = pd.date_range("2010-01", periods=24, freq="MS")
    rng = np.random.default_rng(0)
    site_means = np.array([[2.0], [5.0], [3.0]])
    cycle = np.sin(2 * np.pi * np.arange(24) / 12) * np.array([[1.0], [2.0], [1.5]])
    first_year = rng.normal(size=(3, 12))
    anomaly = np.concatenate([first_year, -first_year], axis=1)  # zero mean per month
    observed = site_means + cycle + anomaly
    predicted = site_means + cycle + 0.5 * anomaly
    scores = decomposed_skill(observed, predicted, times)
    assert scores["across_sites"]["nse"] == pytest.approx(1.0)
    assert scores["seasonal"]["nse"] == pytest.approx(1.0)
    assert scores["anomalies"]["r2"] == pytest.approx(1.0)
    assert scores["anomalies"]["nse"] == pytest.approx(0.75)
    assert scores["all"]["n"] == 72


def test_decomposition_uses_only_months_with_both_values():
    times = pd.date_range("2010-01", periods=24, freq="MS")
    observed = np.tile(np.arange(24.0), (2, 1))
    predicted = observed.copy()
    predicted[0, :12] = np.nan  # first tower unpredicted in its first year
    observed[1, 5] = np.nan
    scores = decomposed_skill(observed, predicted, times)
    assert scores["all"]["n"] == 35
    assert scores["across_sites"]["nse"] == pytest.approx(1.0)
