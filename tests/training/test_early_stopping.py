"""Early stopping on validation programs keeps the best epoch's weights."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import lightning as L
import numpy as np
import polars as pl
import pytest
import torch
from cotenant.datasets import load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.training.config import OptimConfig, TrainConfig
from cotenant.training.fit import _runs_of, fit_model, monitoring_data, stopping_halves
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


def test_a_keeper_whose_patience_ran_out_keeps_its_best_weights() -> None:
    """Once its set has not improved for ``patience`` validations, a keeper is done: a later, better epoch
    (training going on for another set) changes nothing, as if training had stopped there."""
    model = nn.Linear(2, 1)
    module = RegressionModule(model, OptimConfig(), total_steps=1)
    keeper = BestWeights("val_mae_pp_1", patience=2)
    for epoch, mae in enumerate([5.0, 3.0, 4.0, 4.5, 1.0]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        trainer = SimpleNamespace(callback_metrics={"val_mae_pp_1": torch.tensor(mae)}, current_epoch=epoch)
        keeper.on_validation_epoch_end(trainer, module)  # type: ignore[arg-type]
        assert keeper.done == (epoch >= 3)
    keeper.restore(model)
    assert keeper.epoch == 1 and keeper.best == 3.0
    assert float(model.weight.detach()[0, 0]) == 1.0


def _monitoring_parts() -> tuple[Any, Any, Any]:
    table = load_source("synthetic", n_apps=9, n_runs=90, min_length=5, max_length=8, profile_length=6)
    split = leave_programs_out(table, k=3)[0]
    data = monitoring_data(table, split, TrainConfig())  # the inputs as fit_model builds them
    halves = stopping_halves(data.validation, table)
    assert halves is not None
    return table, split, (data, halves)


def test_one_training_gives_the_model_each_half_alone_would_stop_at() -> None:
    """Stopped on both halves at once, training goes on until both are done, and the model kept for each
    half has the weights a training stopped on that half alone gives: training never reads the halves."""
    from cotenant.datasets.torch_data import collate_monitoring
    from cotenant.models import MODELS
    from cotenant.models.base import DataShape
    from cotenant.training.loop import Devices, RunsDataModule, fit_neural

    _, _, (data, halves) = _monitoring_parts()
    first, second = halves.parts
    spec = MODELS["lstm"]
    where = Devices(progress=False)

    def trained(validation: list[Any]) -> list[nn.Module]:
        L.seed_everything(0, workers=True, verbose=False)
        model = spec.build(spec.config_type(), DataShape(data.train.values.shape[1], 0, None))
        loader = RunsDataModule(data.train, validation, collate_monitoring, 16, seed=0)
        return fit_neural(model, loader, 20, OptimConfig(lr=1e-2), where, early_stopping_patience=2)

    both = trained([first, second])
    assert len(both) == 2
    for alone, kept in ((trained([first])[0], both[0]), (trained([second])[0], both[1])):
        for (name, weight), (_, kept_weight) in zip(
            alone.state_dict().items(), kept.state_dict().items(), strict=True
        ):
            torch.testing.assert_close(kept_weight, weight, rtol=0, atol=1e-6, msg=name)
    # The two halves stop at different epochs here, so the two models differ: each half's own choice.
    weights = [model.state_dict().values() for model in both]
    assert any(not torch.equal(a, b) for a, b in zip(*weights, strict=True))


def test_training_with_early_stopping_needs_and_uses_validation_programs() -> None:
    table = load_source("synthetic", n_apps=9, n_runs=90, min_length=5, max_length=8, profile_length=6)
    cfg = TrainConfig(model="lstm", epochs=20, batch_size=16, progress=False, early_stopping_patience=2)
    with_validation = fit_model(table, leave_programs_out(table, k=3)[0], cfg)
    without = fit_model(table, leave_programs_out(table, k=2)[0], cfg)  # two folds: no validation, ignored
    for outcome in (with_validation, without):
        assert outcome.predicted.shape == (len(outcome.labels), 3)
        assert torch.isfinite(torch.from_numpy(outcome.predicted)).all()
    assert without.validation_mae is None and not without.validation_runs
    # The stopped model is judged (its validation MAE taken) and calibrated on every validation program, each
    # answered by the model stopped on the other half: under either calibration.
    split = leave_programs_out(table, k=3)[0]
    judged = set(table.runs.filter(pl.col("run_id").is_in(with_validation.validation_runs))["application"])
    assert judged == set(split.validation_apps)
    assert len(with_validation.validation_runs) == len(with_validation.validation_labels)
    assert with_validation.predictor.metadata.calibration_runs == len(split.validation_runs)
    judged_only = fit_model(table, split, cfg.model_copy(update={"calibration": "validation"}))
    assert judged_only.predictor.metadata.calibration_runs == len(split.validation_runs)
    assert with_validation.predictor.metadata.calibration_training_runs == 0  # no out-of-fold answers


def test_validation_runs_halved_by_program_for_stopping() -> None:
    table, split, (data, halves) = _monitoring_parts()
    validation = data.validation
    application_of = dict(zip(table.runs["run_id"], table.runs["application"], strict=True))
    parts = halves.parts
    assert len(parts) == 2
    programs = [{application_of[r] for r in part.run_ids} for part in parts]
    assert programs[0] and programs[1] and not programs[0] & programs[1]
    assert programs[0] | programs[1] == set(split.validation_apps)
    assert len(parts[0]) + len(parts[1]) == len(validation)
    assert [application_of[r] in programs[0] for r in validation.run_ids] == halves.first.tolist()
    for part in parts:
        for i, run in enumerate(part.run_ids):
            j = validation.run_ids.index(run)
            np.testing.assert_array_equal(part[i]["x"].numpy(), validation[j]["x"].numpy())
            assert part.y[i] == validation.y[j]
    # Each half answered by the model stopped on the other, in the validation runs' order.
    answers = halves.answers(["first", "second"], lambda model, runs: np.full((len(runs), 3), len(model)))
    np.testing.assert_array_equal(answers[:, 0], np.where(halves.first, len("second"), len("first")))


def test_every_model_of_a_split_is_judged_on_every_validation_run() -> None:
    """Choices and promotion compare candidates on the same runs, all the validation programs, each run
    answered by a model that did not read it: a stopped model (the LSTM) by the one stopped on the other
    half, unstopped ones (boosting, linear, an LSTM without stopping) by themselves."""
    table, split, (data, halves) = _monitoring_parts()
    base = TrainConfig(model="lstm", epochs=6, batch_size=16, progress=False)
    stopping = {"early_stopping_patience": 2, "epochs": 20, "optim": OptimConfig(lr=1e-2)}
    stopped = fit_model(table, split, base.model_copy(update=stopping))
    outcomes = [
        stopped,
        fit_model(table, split, base),
        fit_model(table, split, base.model_copy(update={"model": "hist-gradient-boosting"})),
        fit_model(table, split, base.model_copy(update={"model": "linear"})),
    ]
    label_of = dict(zip(table.runs["run_id"], table.runs["label"], strict=True))
    assert stopped.validation_runs == list(data.validation.run_ids)
    for outcome in outcomes:
        assert outcome.validation_runs == stopped.validation_runs
        assert outcome.validation_predicted is not None and outcome.validation_labels is not None
        expected = [label_of[run] for run in outcome.validation_runs]
        np.testing.assert_allclose(outcome.validation_labels, expected, rtol=1e-6)
        # The validation MAE is the error of the answers given on exactly those runs.
        mae = float(np.mean(np.abs(outcome.validation_predicted[:, 1] - outcome.validation_labels)) * 100)
        assert outcome.validation_mae == pytest.approx(mae, rel=1e-5)
    # On the second half the answers are the served (stopped) model's own medians; on the first half, which
    # it stopped on, another model's: the one stopped on the second half.
    own = [stopped.predictor.predict_normalised(_runs_of(part))[:, 1] for part in halves.parts]
    np.testing.assert_allclose(stopped.validation_predicted[~halves.first, 1], own[1], rtol=1e-5)
    assert not np.allclose(stopped.validation_predicted[halves.first, 1], own[0], rtol=1e-5)
    # Different models answer differently on them: the figures compared are the models' own.
    figures = {round(outcome.validation_mae or 0.0, 6) for outcome in outcomes}
    assert len(figures) == len(outcomes)


def test_placement_models_are_judged_on_every_validation_run() -> None:
    from cotenant.datasets.torch_data import build_placement

    table = load_source("synthetic", n_apps=9, n_runs=90, min_length=5, max_length=8, profile_length=6)
    split = leave_programs_out(table, k=3)[0]
    base = TrainConfig(model="placement", epochs=3, batch_size=16, progress=False, early_stopping_patience=1)
    stopped = fit_model(table, split, base)
    forest = fit_model(table, split, base.model_copy(update={"model": "placement-forest"}))
    validation = build_placement(table, split, clip=base.input_clip).validation
    assert validation is not None
    application_of = dict(zip(table.runs["run_id"], table.runs["application"], strict=True))
    assert {application_of[run] for run in stopped.validation_runs} == set(split.validation_apps)
    assert forest.validation_runs == stopped.validation_runs == list(validation.run_ids)
    predictor = forest.predictor
    answers = predictor.predict_placement(
        validation.newcomer, validation.neighbours, validation.mask, validation.cores
    )
    # Medians: calibration moves only the interval's ends.
    np.testing.assert_allclose(answers[:, 1], forest.validation_predicted[:, 1], rtol=1e-6)
    assert forest.validation_mae == pytest.approx(float(np.mean(np.abs(answers[:, 1] - validation.y)) * 100))


def test_members_trained_apart_are_each_the_model_its_own_training_gives() -> None:
    """``members_apart``: each member is trained alone with its own seed and its own early stopping, and the
    ensemble kept for each stopping half holds every member's copy stopped on that half."""
    import copy

    from cotenant.datasets.torch_data import collate_monitoring
    from cotenant.models import MODELS
    from cotenant.models.base import DataShape
    from cotenant.models.ensemble import MemberEnsemble
    from cotenant.training.fit import _fit_members_apart, _fit_neural

    _, _, (data, halves) = _monitoring_parts()
    spec = MODELS["cloudformer"]
    config = spec.config_type(members=2, members_apart=True, blocks=1, width=16, feed_forward=32)
    cfg = TrainConfig(epochs=6, batch_size=16, early_stopping_patience=1, progress=False, seed=3)
    torch.manual_seed(0)
    ensemble = spec.build(config, DataShape(data.train.values.shape[1], 0, cfg.max_steps))
    assert isinstance(ensemble, MemberEnsemble)
    untrained = [copy.deepcopy(member) for member in ensemble.members]
    kept = _fit_members_apart(
        ensemble, cfg, lambda member, own: _fit_neural(member, data.train, halves, collate_monitoring, own)
    )
    assert len(kept) == 2 and all(isinstance(together, MemberEnsemble) for together in kept)
    for index, member in enumerate(untrained):
        L.seed_everything(3 + index, workers=True, verbose=False)
        alone = _fit_neural(
            member, data.train, halves, collate_monitoring, cfg.model_copy(update={"seed": 3 + index})
        )
        for half, together in enumerate(kept):
            for (name, weight), (_, kept_weight) in zip(
                alone[half].state_dict().items(), together.members[index].state_dict().items(), strict=True
            ):
                torch.testing.assert_close(
                    kept_weight, weight, rtol=0, atol=1e-6, msg=f"{index} {half} {name}"
                )
    # Their own seeds: the two members' trainings differ (weights, data order), so their answers do.
    first, second = (member.state_dict() for member in kept[0].members)
    assert any(not torch.equal(first[name], second[name]) for name in first)
    # Trained apart, a member cannot also be kept off a share of the training programs.
    with pytest.raises(ValueError, match="members_hold_out_programs"):
        spec.config_type(members=2, members_apart=True, members_hold_out_programs=True)
