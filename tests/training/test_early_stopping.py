"""Early stopping on validation programs keeps the best epoch's weights."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
from cotenant.datasets import load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.datasets.torch_data import build_monitoring
from cotenant.training.config import OptimConfig, TrainConfig
from cotenant.training.fit import fit_model, stopping_and_judged
from cotenant.training.loop import BestWeights, RegressionModule
from torch import nn


def test_best_weights_are_the_lowest_validation_error_seen() -> None:
    model = nn.Linear(2, 1)
    module = RegressionModule(model, OptimConfig(), total_steps=1)
    keeper = BestWeights()
    seen = {}
    for epoch, mae in enumerate([5.0, 3.0, 4.0]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        seen[epoch] = model.weight.detach().clone()
        trainer = SimpleNamespace(callback_metrics={"val_mae_pp": torch.tensor(mae)}, current_epoch=epoch)
        keeper.on_validation_epoch_end(trainer, module)  # type: ignore[arg-type]
    keeper.restore(model)
    assert keeper.epoch == 1 and keeper.best == 3.0
    assert torch.equal(model.weight, seen[1])


def test_training_with_early_stopping_needs_and_uses_validation_programs() -> None:
    table = load_source("synthetic", n_apps=9, n_runs=90, min_length=5, max_length=8, profile_length=6)
    cfg = TrainConfig(model="lstm", epochs=20, batch_size=16, progress=False, early_stopping_patience=2)
    with_validation = fit_model(table, leave_programs_out(table, k=3)[0], cfg)
    without = fit_model(table, leave_programs_out(table, k=2)[0], cfg)  # two folds: no validation, ignored
    for outcome in (with_validation, without):
        assert outcome.predicted.shape == (len(outcome.labels), 3)
        assert torch.isfinite(torch.from_numpy(outcome.predicted)).all()
    # The stopped model is judged (its validation MAE taken) on validation programs it did not stop on: half
    # the split's validation programs. Its interval is calibrated on all of them (calibration="programs"), or
    # on the judged half only (calibration="validation").
    split = leave_programs_out(table, k=3)[0]
    judged = set(table.runs.filter(pl.col("run_id").is_in(with_validation.validation_runs))["application"])
    assert judged and judged < set(split.validation_apps)
    assert len(with_validation.validation_runs) == len(with_validation.validation_labels)
    assert with_validation.predictor.metadata.calibration_runs == len(split.validation_runs)
    judged_only = fit_model(table, split, cfg.model_copy(update={"calibration": "validation"}))
    assert judged_only.predictor.metadata.calibration_runs == len(with_validation.validation_runs)
    assert with_validation.predictor.metadata.calibration_training_runs == 0  # no out-of-fold answers


def test_validation_runs_split_by_program_for_stopping_and_judging() -> None:
    table = load_source("synthetic", n_apps=9, n_runs=90, min_length=5, max_length=8, profile_length=6)
    split = leave_programs_out(table, k=3)[0]
    validation = build_monitoring(table, split).validation
    assert validation is not None
    application_of = dict(zip(table.runs["run_id"], table.runs["application"], strict=True))
    applications = [application_of[run] for run in validation.run_ids]
    stopping, judged = stopping_and_judged(validation, applications)
    programs = [
        {applications[validation.run_ids.index(r)] for r in part.run_ids} for part in (stopping, judged)
    ]
    assert programs[0] and programs[1] and not programs[0] & programs[1]
    assert programs[0] | programs[1] == set(split.validation_apps) == set(applications)
    assert len(stopping) + len(judged) == len(validation)
    for part in (stopping, judged):
        for i, run in enumerate(part.run_ids):
            j = validation.run_ids.index(run)
            np.testing.assert_array_equal(part[i]["x"].numpy(), validation[j]["x"].numpy())
            assert part.y[i] == validation.y[j]


def test_every_model_of_a_split_is_judged_on_the_same_validation_runs() -> None:
    """Choices and promotion compare candidates on the same runs: the half of the validation programs early
    stopping never reads, whether a candidate stopped early (the LSTM) or not (boosting, linear)."""
    table = load_source("synthetic", n_apps=9, n_runs=90, min_length=5, max_length=8, profile_length=6)
    split = leave_programs_out(table, k=3)[0]
    base = TrainConfig(model="lstm", epochs=3, batch_size=16, progress=False)
    stopped = fit_model(table, split, base.model_copy(update={"early_stopping_patience": 1}))
    outcomes = [
        stopped,
        fit_model(table, split, base),
        fit_model(table, split, base.model_copy(update={"model": "hist-gradient-boosting"})),
        fit_model(table, split, base.model_copy(update={"model": "linear"})),
    ]
    application_of = dict(zip(table.runs["run_id"], table.runs["application"], strict=True))
    label_of = dict(zip(table.runs["run_id"], table.runs["label"], strict=True))
    judged = {application_of[run] for run in stopped.validation_runs}
    assert judged and judged < set(split.validation_apps)
    for outcome in outcomes:
        assert outcome.validation_runs == stopped.validation_runs
        assert outcome.validation_predicted is not None and outcome.validation_labels is not None
        expected = [label_of[run] for run in outcome.validation_runs]
        np.testing.assert_allclose(outcome.validation_labels, expected, rtol=1e-6)
        # The validation MAE is the error of the answers given on exactly those runs.
        mae = float(np.mean(np.abs(outcome.validation_predicted[:, 1] - outcome.validation_labels)) * 100)
        assert outcome.validation_mae == pytest.approx(mae, rel=1e-5)
    # Different models answer differently on them: the figures compared are the models' own.
    figures = {round(outcome.validation_mae or 0.0, 6) for outcome in outcomes[1:]}
    assert len(figures) == len(outcomes) - 1


def test_placement_models_are_judged_on_the_same_validation_runs() -> None:
    from cotenant.datasets.torch_data import build_placement

    table = load_source("synthetic", n_apps=9, n_runs=90, min_length=5, max_length=8, profile_length=6)
    split = leave_programs_out(table, k=3)[0]
    base = TrainConfig(model="placement", epochs=3, batch_size=16, progress=False, early_stopping_patience=1)
    stopped = fit_model(table, split, base)
    forest = fit_model(table, split, base.model_copy(update={"model": "placement-forest"}))
    validation = build_placement(table, split).validation
    assert validation is not None
    application_of = dict(zip(table.runs["run_id"], table.runs["application"], strict=True))
    assert {application_of[run] for run in stopped.validation_runs} < set(split.validation_apps)
    assert forest.validation_runs == stopped.validation_runs
    keep = np.isin(validation.run_ids, forest.validation_runs)
    judged = validation.subset(keep)
    assert judged.run_ids == forest.validation_runs
    predictor = forest.predictor
    answers = predictor.predict_placement(judged.newcomer, judged.neighbours, judged.mask, judged.cores)
    np.testing.assert_allclose(answers, forest.validation_predicted, rtol=1e-6)
    assert forest.validation_mae == pytest.approx(float(np.mean(np.abs(answers[:, 1] - judged.y)) * 100))
