import numpy as np
import pytest

from upscale.metrics import skill


def test_hand_computed_values():
    observed = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    predicted = np.array([1.5, 2.0, 2.0, 4.5, 9.0])
    score = skill(observed, predicted)
    # errors 0.5, 0, -1, 0.5 -> SSE 1.5; SST 5; n 4
    assert score["n"] == 4
    assert score["r2"] == pytest.approx(1 - 1.5 / 5)
    assert score["rmse"] == pytest.approx(np.sqrt(1.5 / 4))
    assert score["bias"] == pytest.approx(0.0)


def test_perfect_and_too_few():
    x = np.arange(5.0)
    assert skill(x, x)["r2"] == 1.0
    assert np.isnan(skill(np.array([1.0]), np.array([1.0]))["r2"])
