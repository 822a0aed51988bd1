"""The describer's fast path: a forest's mean over its trees, read tree by tree, is ``predict`` exactly."""

from __future__ import annotations

import numpy as np
import pytest
from cotenant.models.placement_probes import forest_mean
from sklearn.ensemble import ExtraTreesRegressor


@pytest.mark.parametrize("outputs", [1, 3])
def test_forest_mean_is_the_forests_own_prediction_to_the_last_bit(outputs: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 7))
    y = x[:, :outputs] * np.arange(1, outputs + 1) + rng.normal(scale=0.1, size=(120, outputs))
    forest = ExtraTreesRegressor(n_estimators=25, random_state=0).fit(x, y if outputs > 1 else y[:, 0])
    rows = rng.normal(size=(5, 7)) * 3  # some beyond the training range
    expected = forest.predict(rows)
    got = forest_mean(forest, rows)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert np.ptp(got, axis=0).min() > 0  # the rows get different answers: not a constant
