"""models/base.py ``probability_below``: the chance under a threshold read off predicted quantiles."""

from __future__ import annotations

import numpy as np
import pytest
from cotenant.models.base import probability_below


def test_the_chance_runs_through_each_quantile_and_linearly_between() -> None:
    quantiles = np.array([[0.6, 0.75, 0.85]])
    assert probability_below(quantiles, 0.6)[0] == pytest.approx(0.1)
    assert probability_below(quantiles, 0.75)[0] == pytest.approx(0.5)
    assert probability_below(quantiles, 0.85)[0] == pytest.approx(0.9)
    assert probability_below(quantiles, 0.8)[0] == pytest.approx(0.7)  # halfway from 0.5 to 0.9
    assert probability_below(quantiles, 0.675)[0] == pytest.approx(0.3)


def test_past_the_outer_quantiles_the_nearest_slope_carries_on_within_zero_and_one() -> None:
    quantiles = np.array([[0.82, 0.987, 1.0], [0.3, 0.5, 0.6]])
    chances = probability_below(quantiles, 0.8)
    # 0.02 under the lower end, on a slope of 0.4 per 0.167: 0.1 - 0.048
    assert chances[0] == pytest.approx(0.1 - 0.4 * 0.02 / 0.167)
    assert chances[1] == 1.0  # far above the upper end: certain
    assert probability_below(np.array([[0.9, 0.95, 1.0]]), 0.5)[0] == 0.0


def test_coinciding_quantiles_are_a_step() -> None:
    upper_clipped = np.array([[0.7, 0.9, 0.9]])
    assert probability_below(upper_clipped, 0.9)[0] == pytest.approx(0.5)
    assert probability_below(upper_clipped, 0.95)[0] == 1.0
    alone = np.ones((1, 3))  # a workload alone on its host: P = 1 exactly
    assert probability_below(alone, 0.8)[0] == 0.0
    assert probability_below(np.array([[0.5, 0.5, 0.7]]), 0.4)[0] == 0.0


def test_the_chance_never_falls_as_the_threshold_rises() -> None:
    rng = np.random.default_rng(3)
    quantiles = np.sort(rng.uniform(0, 1, (200, 3)), axis=1)
    thresholds = np.concatenate([[-5.0], np.linspace(-0.1, 1.1, 61), [6.0]])  # the ends: past every slope
    chances = np.stack([probability_below(quantiles, t) for t in thresholds])
    assert (np.diff(chances, axis=0) >= -1e-12).all()
    assert chances[0].max() == 0.0 and chances[-1].min() == 1.0


def test_quantiles_of_other_levels_are_read_at_those_levels_and_a_mismatch_is_refused() -> None:
    assert probability_below(np.array([[0.2, 0.4]]), 0.3, levels=(0.25, 0.75))[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="2 quantiles for 3 levels"):
        probability_below(np.array([[0.2, 0.4]]), 0.3)
