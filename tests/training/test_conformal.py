"""Split-conformal calibration of the intervals on validation programs."""

from __future__ import annotations

import numpy as np
import pytest
from cotenant.datasets import load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.training.config import TrainConfig
from cotenant.training.fit import (
    NOMINAL_COVERAGE,
    conformal_adjustment,
    conformal_quantile,
    conformity_scores,
    fit_model,
    residual_scores,
)


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
    cfg = TrainConfig(model="hist-gradient-boosting", progress=False, calibration="validation")
    calibrated = fit_model(table, split, cfg)
    metadata = calibrated.predictor.metadata
    assert metadata.interval_adjustment is not None
    assert metadata.calibration_runs == len(split.validation_runs)
    assert metadata.calibration_training_runs == 0
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


def test_training_programs_answered_out_of_fold_calibrate_beside_the_validation_ones() -> None:
    """``calibration="programs"``: the validation programs' scores and the training programs' out-of-fold
    scores are one calibration set, so the adjustment is their pooled conformal quantile."""
    table = load_source("synthetic", n_apps=9, n_runs=150, min_length=6, max_length=10, profile_length=8)
    split = leave_programs_out(table, k=3)[0]
    base = TrainConfig(model="hist-gradient-boosting", progress=False)
    assert base.calibration == "programs"
    pooled = fit_model(table, split, base)
    alone = fit_model(table, split, base.model_copy(update={"calibration": "validation"}))
    metadata = pooled.predictor.metadata
    assert metadata.calibration_runs == len(split.validation_runs)
    assert metadata.calibration_training_runs == len(split.train_runs)
    # The same model and validation answers either way; only the calibration set differs: every validation
    # program (those validation_predicted answers), answered uncalibrated.
    np.testing.assert_array_equal(pooled.predicted[:, 1], alone.predicted[:, 1])
    from cotenant.datasets.torch_data import build_monitoring
    from cotenant.models.base import summarise
    from cotenant.models.predictor import Predictor
    from cotenant.models.tabular import out_of_fold_residuals

    data = build_monitoring(table, split, clip=base.input_clip)
    validation = data.validation
    assert validation is not None and pooled.validation_runs == list(validation.run_ids)
    raw = Predictor(metadata.model_copy(update={"interval_adjustment": None}), pooled.predictor.model)
    answers = raw.predict_normalised(
        [validation.values[a:b] for a, b in zip(validation.offsets[:-1], validation.offsets[1:], strict=True)]
    )
    np.testing.assert_allclose(answers, pooled.validation_predicted, rtol=1e-6)
    validation_scores = conformity_scores(answers, validation.y)
    expected_alone = conformal_quantile(validation_scores)
    assert alone.predictor.metadata.interval_adjustment == pytest.approx(expected_alone)
    # Rebuild the training programs' scores from the model's out-of-fold residuals.
    train = data.train
    x = np.nan_to_num(
        np.stack(
            [summarise(train.values[a:b]) for a, b in zip(train.offsets[:-1], train.offsets[1:], strict=True)]
        )
    )
    runs = table.runs.filter(table.runs["run_id"].is_in(list(train.run_ids)))
    by_run = dict(zip(runs["run_id"], runs["application"], strict=True))
    programs = np.asarray([by_run[r] for r in train.run_ids])
    residuals = out_of_fold_residuals(pooled.predictor.model, x, train.y, programs)
    training_scores = residual_scores(residuals, train.y, metadata.residual_quantiles)
    expected = conformal_quantile(np.concatenate([validation_scores, training_scores]))
    assert metadata.interval_adjustment == pytest.approx(expected)


def test_residual_scores_are_the_conformity_of_the_interval_around_each_answer() -> None:
    labels = np.array([0.5, 0.9, 0.2])
    residuals = np.array([0.1, -0.05, 0.0])  # answers 0.4, 0.95, 0.2
    scores = residual_scores(residuals, labels, [-0.05, 0.02])
    intervals = np.array([[0.35, 0.4, 0.42], [0.9, 0.95, 0.97], [0.15, 0.2, 0.22]])
    np.testing.assert_allclose(scores, conformity_scores(intervals, labels))
    np.testing.assert_allclose(scores, [0.08, 0.0, -0.02])
