"""Split-conformal calibration of the intervals on validation programs."""

from __future__ import annotations

import numpy as np
import pytest
from cotenant.datasets import load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.training.config import TrainConfig
from cotenant.training.fit import NOMINAL_COVERAGE, conformal_adjustment, fit_model


def covered(quantiles: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((quantiles[:, 0] <= labels) & (labels <= quantiles[:, -1])))


@pytest.mark.parametrize("half_width", [0.2, 0.5, 3.0])  # far too narrow, narrow, far too wide
def test_the_adjustment_brings_new_runs_to_the_nominal_coverage(half_width: float) -> None:
    rng = np.random.default_rng(0)
    calibration, fresh = rng.normal(size=2000), rng.normal(size=20000)

    def interval(n: int) -> np.ndarray:
        return np.column_stack([np.full(n, -half_width), np.zeros(n), np.full(n, half_width)])

    adjustment = conformal_adjustment(interval(len(calibration)), calibration)
    widened = interval(len(fresh)) + np.array([-adjustment, 0.0, adjustment])
    assert covered(widened, fresh) == pytest.approx(NOMINAL_COVERAGE, abs=0.02)
    assert (adjustment < 0) == (half_width > 1.2816)  # a too-wide interval is narrowed


def test_fit_calibrates_on_validation_programs_only() -> None:
    table = load_source("synthetic", n_apps=9, n_runs=150, min_length=6, max_length=10, profile_length=8)
    split = leave_programs_out(table, k=3)[0]
    cfg = TrainConfig(model="hist-gradient-boosting", progress=False)
    calibrated = fit_model(table, split, cfg)
    metadata = calibrated.predictor.metadata
    assert metadata.interval_adjustment is not None
    assert metadata.calibration_runs == len(split.validation_runs)
    # Without validation programs (two folds) nothing is calibrated: the interval is the model's own.
    plain = fit_model(table, leave_programs_out(table, k=2)[0], cfg)
    assert plain.predictor.metadata.interval_adjustment is None
    # The predictor applies the adjustment to its interval's ends, never to its median.
    from cotenant.datasets.torch_data import build_monitoring
    from cotenant.models.predictor import Predictor

    test = build_monitoring(table, split, clip=cfg.input_clip).test
    runs = [test.values[a:b] for a, b in zip(test.offsets[:-1], test.offsets[1:], strict=True)]
    raw = Predictor(metadata.model_copy(update={"interval_adjustment": None}), calibrated.predictor.model)
    before, after = raw.predict_normalised(runs), calibrated.predictor.predict_normalised(runs)
    np.testing.assert_allclose(after, calibrated.predicted)
    np.testing.assert_array_equal(after[:, 1], before[:, 1])
    expected_lower = np.clip(np.minimum(before[:, 0] - metadata.interval_adjustment, before[:, 1]), 1e-3, 1)
    np.testing.assert_allclose(after[:, 0], expected_lower, atol=1e-9)
