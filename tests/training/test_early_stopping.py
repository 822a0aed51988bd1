"""Early stopping on validation programs keeps the best epoch's weights."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
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
