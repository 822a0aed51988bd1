"""Variants of one model side by side in an evaluation, chosen on validation programs only."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import pytest
from cotenant.datasets import load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.datasets.tensors import monitoring_features
from cotenant.datasets.torch_data import ranked_features
from cotenant.training.config import ModelChoice, TrainConfig, parse_model_choices
from cotenant.training.evaluate import evaluate_models, markdown, per_application_references
from cotenant.training.fit import fit_model
from cotenant.training.learning_curve import (
    chosen_variant,
    fewer_applications,
    learning_curves,
    targets,
    targets_markdown,
)


def test_choices_read_names_and_typed_options() -> None:
    choices = parse_model_choices(" linear, cloudformer[members=3, dropout=0.2,metric_identity=false] ,lstm")
    assert [c.model for c in choices] == ["linear", "cloudformer", "lstm"]
    assert choices[1].options == {"members": 3, "dropout": 0.2, "metric_identity": False}
    assert choices[1].label == "cloudformer[members=3,dropout=0.2,metric_identity=False]"
    assert ModelChoice.parse(choices[1].label).options == choices[1].options
    base = TrainConfig(model_options={"blocks": 2, "members": 1})
    assert choices[1].config(base).model == "cloudformer"
    assert choices[1].config(base).model_options == {
        "blocks": 2,
        "members": 3,
        "dropout": 0.2,
        "metric_identity": False,
    }


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("linear,cloudformr", "'cloudformr' is not a registered model"),
        ("cloudformer[members=0]", "cloudformer[members=0]"),
        ("cloudformer[width]", "'width' is not key=value"),
        ("cloudformer[no_such_option=1]", "no_such_option"),
        ("linear lstm", "cannot read a model at"),
    ],
)
def test_a_bad_choice_is_refused_naming_it(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_model_choices(text)


def _entry(model: str, test_mae: float, validation_mae: float | None) -> dict[str, Any]:
    return {
        "task": "monitoring",
        "model": model,
        "options": {},
        "summary": {"mae": {"mean": test_mae, "std": 0.0}},
        "validation_mae": validation_mae,
        "coverage": 0.8,
    }


def test_the_variant_is_chosen_by_validation_error_never_by_test_error() -> None:
    report: dict[str, Any] = {
        "models": {
            "cloudformer": _entry("cloudformer", test_mae=9.0, validation_mae=6.0),
            "cloudformer[members=3]": _entry("cloudformer", test_mae=12.0, validation_mae=5.0),
            "cloudformer[blocks=2]": _entry("cloudformer", test_mae=4.0, validation_mae=7.0),
            "hist-gradient-boosting": _entry("hist-gradient-boosting", test_mae=10.0, validation_mae=1.0),
        },
        "noise_floor": {"n_solo_pairs": 10, "median_abs_deviation": 0.04, "mean_abs_deviation": 0.06},
    }
    assert chosen_variant(report, "cloudformer") == "cloudformer[members=3]"
    found = targets(report)
    assert found["cloudformer_variant"] == "cloudformer[members=3]"
    assert found["cloudformer_mae"] == 12.0  # its test error, however bad: the choice was made beforehand
    assert math.isclose(found["cloudformer_over_best_baseline"], 1.2)
    assert math.isclose(found["cloudformer_over_noise_floor"], 3.0)
    assert math.isclose(found["noise_floor_mean_pp"], 6.0)
    assert "solo-vs-solo |1 - P| is 6.00 pp: an MAE is a mean" in "\n".join(targets_markdown(report))
    # A baseline competes in its variant chosen on validation too, however its test error compares.
    report["models"]["hist-gradient-boosting[solo_prior=True]"] = _entry(
        "hist-gradient-boosting", test_mae=11.0, validation_mae=0.5
    )
    report["models"]["linear"] = _entry("linear", test_mae=14.0, validation_mae=2.0)
    assert targets(report)["best_baseline"] == "hist-gradient-boosting[solo_prior=True]"
    assert math.isclose(targets(report)["cloudformer_over_best_baseline"], 12.0 / 11.0)
    report["models"]["solo-relative"] = _entry("solo-relative", test_mae=8.0, validation_mae=3.0)
    assert targets(report)["best_baseline"] == "solo-relative"  # the hardest of the chosen competitors
    report["models"]["cloudformer[members=3]"]["validation_mae"] = None
    report["models"]["cloudformer[blocks=2]"]["validation_mae"] = None
    report["models"]["cloudformer"]["validation_mae"] = None
    assert chosen_variant(report, "cloudformer") == "cloudformer"  # nothing to choose on: the plain model


def test_learning_curves_are_drawn_for_the_variant_chosen_on_validation() -> None:
    """Asked for ``decision-tree``, the curves train the variant the report chose (its options reach the
    fits: another seed searches other trees), not the plain model."""
    table = load_source("synthetic", n_apps=9, n_runs=90, min_length=6, max_length=8, seed=2)
    split = leave_programs_out(table, k=3)[0]
    per_fold = {"per_fold": [{"fold": 0, "mae": 10.0}]}
    report: dict[str, Any] = {
        "models": {
            "decision-tree": _entry("decision-tree", test_mae=9.0, validation_mae=6.0) | per_fold,
            "decision-tree[seed=7]": _entry("decision-tree", test_mae=12.0, validation_mae=5.0) | per_fold,
        }
    }
    base = TrainConfig(progress=False, tracking_uri="none")
    curves = learning_curves(table, report, ["decision-tree"], [split], [1], [], base, log=lambda _: None)
    assert list(curves["models"]) == ["decision-tree[seed=7]"]
    smaller = fewer_applications(table, split, 1, 0)

    def mae(choice: str) -> float:
        outcome = fit_model(table, smaller, ModelChoice.parse(choice).config(base))
        return float(np.mean(np.abs(outcome.predicted[:, 1] - outcome.labels)) * 100)

    drawn = curves["models"]["decision-tree[seed=7]"]["applications"]["1"][0]
    assert drawn == pytest.approx(mae("decision-tree[seed=7]")) and drawn != pytest.approx(
        mae("decision-tree")
    )


def test_curves_answer_the_same_held_out_runs_with_their_programs_seen() -> None:
    """On synthetic data every program has its own levels and sensitivities: boosting answers the held-out
    runs far better once half of each held-out program's configurations are in its training, on the very
    runs it answered unseen (paired), and the report's table says so."""
    from cotenant.training.learning_curve import curves_markdown

    table = load_source("synthetic", n_apps=9, n_runs=180, min_length=6, max_length=8, seed=2)
    split = leave_programs_out(table, k=3)[0]
    model = "hist-gradient-boosting"
    report: dict[str, Any] = {
        "models": {
            model: _entry(model, test_mae=9.0, validation_mae=6.0) | {"per_fold": [{"fold": 0, "mae": 9.0}]}
        }
    }
    base = TrainConfig(progress=False, tracking_uri="none")
    curves = learning_curves(table, report, [model], [split], [], [], base, log=lambda _: None)
    found = curves["models"][model]["programs_seen"]
    unseen, seen = found["unseen"][0], found["seen"][0]
    assert seen < 0.5 * unseen and found["unseen_minus_seen"][0] == pytest.approx(unseen - seen)
    assert found["folds"] == 1
    programs = found["by_application"]
    assert set(programs) == set(
        split.test_apps
    )  # each held-out program of the synthetic fold has configurations
    runs = sum(p["runs"] for p in programs.values())
    assert sum(p["unseen"] * p["runs"] for p in programs.values()) / runs == pytest.approx(unseen)
    assert sum(p["seen"] * p["runs"] for p in programs.values()) / runs == pytest.approx(seen)
    gained = max(programs, key=lambda p: programs[p]["unseen"] - programs[p]["seen"])
    assert any(gained in line for line in curves_markdown({"learning_curves": curves}))
    row = next(
        line
        for line in curves_markdown({"learning_curves": curves})
        if line.startswith(f"| {model} | {unseen:.2f}")
    )
    assert f"| {seen:.2f} +- 0.00 |" in row
    without = learning_curves(table, report, [model], [split], [], [], base, log=lambda _: None, seen=False)
    assert "programs_seen" not in without["models"][model]
    # Unseen, the evaluation's own answers are read rather than a second fit of the same training: they
    # give the same figures, and answers that hit every label give an unseen error of zero.
    from cotenant.training.evaluate import answer_rows

    answers = answer_rows(
        table, model, 0, split, fit_model(table, split, ModelChoice.parse(model).config(base))
    )
    read = learning_curves(table, report, [model], [split], [], [], base, log=lambda _: None, answers=answers)
    assert read["models"][model]["programs_seen"]["unseen"][0] == pytest.approx(unseen)
    assert read["models"][model]["programs_seen"]["seen"][0] == pytest.approx(seen)
    perfect = answers.with_columns(pl.col("label").alias("p50"))
    exact = learning_curves(
        table, report, [model], [split], [], [], base, log=lambda _: None, answers=perfect
    )
    assert exact["models"][model]["programs_seen"]["unseen"][0] == 0.0


def test_evaluation_reports_variants_with_their_validation_error() -> None:
    table = load_source("synthetic", n_apps=6, n_runs=48, min_length=5, max_length=8, profile_length=6)
    splits = leave_programs_out(table, 3)
    assert all(split.validation_runs for split in splits)
    base = TrainConfig(
        epochs=1,
        batch_size=16,
        progress=False,
        model_options={"blocks": 1, "width": 16, "feed_forward": 32},
    )
    labels = ["cloudformer", "cloudformer[members=2]"]
    answers: list[pl.DataFrame] = []
    report = evaluate_models(table, labels, splits, base, log=lambda *_: None, answers=answers)
    answered = pl.concat(answers)
    assert set(labels) <= set(report["models"])
    for label in labels:
        entry = report["models"][label]
        assert entry["model"] == "cloudformer"
        assert len(entry["per_fold"]) == 3
        assert all(fold["validation_mae"] > 0 for fold in entry["per_fold"])
        # what calibrated each fold's interval: its validation runs (a neural model has no out-of-fold ones)
        assert [fold["calibration_runs"] for fold in entry["per_fold"]] == [
            len(split.validation_runs) for split in splits
        ]
        assert all(fold["calibration_training_runs"] == 0 for fold in entry["per_fold"])
        assert entry["validation_mae"] == pytest.approx(
            sum(fold["validation_mae"] for fold in entry["per_fold"]) / 3
        )
        # The answers run by run: each fold's validation and test runs, giving its reported MAEs.
        for fold, split in zip(entry["per_fold"], splits, strict=True):
            for role, runs, reported in (
                ("validation", split.validation_runs, fold["validation_mae"]),
                ("test", split.test_runs, fold["mae"]),
            ):
                rows = answered.filter(
                    (pl.col("model") == label) & (pl.col("fold") == fold["fold"]) & (pl.col("role") == role)
                )
                assert sorted(rows["run_id"]) == sorted(runs)
                mae = float((rows["p50"] - rows["label"]).abs().mean()) * 100  # type: ignore[operator]
                assert mae == pytest.approx(reported, rel=1e-5)
    assert report["models"]["cloudformer[members=2]"]["options"] == {"members": 2}
    best = min(labels, key=lambda label: report["models"][label]["validation_mae"])
    assert report["targets"]["cloudformer_variant"] == best
    assert "| cloudformer[members=2] |" in markdown(report)


def test_a_choice_may_set_training_options_beside_its_models() -> None:
    choice = ModelChoice.parse("cloudformer[members=2,max_features=40,include_host=false]")
    cfg = choice.config(TrainConfig(epochs=3))
    assert (cfg.max_features, cfg.include_host, cfg.epochs) == (40, False, 3)
    assert cfg.model_options == {"members": 2}
    with pytest.raises(ValueError, match="max_features"):
        parse_model_choices("linear[max_features=0]")


def test_features_are_ranked_by_how_they_move_with_p_on_training_runs_only() -> None:
    rng = np.random.default_rng(0)
    labels = rng.uniform(0.3, 1.0, 40)
    runs = pl.DataFrame({"run_id": [f"r{i}" for i in range(40)], "label": labels})
    steps = 5
    telemetry = pl.DataFrame(
        {
            "run_id": np.repeat(runs["run_id"].to_numpy(), steps),
            "noise": rng.normal(size=40 * steps),
            "constant": np.ones(40 * steps),
            "tracks_p": np.repeat(-3 * labels, steps) + rng.normal(scale=0.01, size=40 * steps),
            "missing": np.full(40 * steps, np.nan),
        }
    )
    features = ["noise", "constant", "tracks_p", "missing"]
    assert ranked_features(telemetry, runs, features, 1) == ["tracks_p"]
    assert ranked_features(telemetry, runs, features, 2) == ["noise", "tracks_p"]  # original order kept


def test_a_model_trained_on_fewer_features_serves_exactly_those() -> None:
    table = load_source("synthetic", n_apps=6, n_runs=48, min_length=5, max_length=8, profile_length=6)
    split = leave_programs_out(table, 3)[0]
    outcome = fit_model(table, split, TrainConfig(model="linear", max_features=7, progress=False))
    features = outcome.predictor.metadata.features
    assert len(features) == 7
    assert features == [f for f in monitoring_features(table) if f in set(features)]
    assert np.isfinite(outcome.predicted).all()


def test_evaluation_over_partitions_reports_each_beside_the_mean() -> None:
    """Every model and reference measured on every partition's folds; each partition's figure is the mean
    of its own folds, and the margin is read partition by partition with the same chosen models."""
    from cotenant.datasets.splits import repeated_leave_programs_out
    from cotenant.training.references import constant_reference

    table = load_source("synthetic", n_apps=6, n_runs=48, min_length=5, max_length=8, profile_length=6)
    splits = repeated_leave_programs_out(table, 3, partitions=2)
    base = TrainConfig(epochs=1, batch_size=16, progress=False)
    cloudformer = "cloudformer[blocks=1,width=16,feed_forward=32]"
    models = [cloudformer, "hist-gradient-boosting"]
    report = evaluate_models(table, models, splits, base, log=lambda *_: None)
    assert [f["partition"] for f in report["folds"]] == [0, 0, 0, 1, 1, 1]
    partitions = report["partitions"]
    assert [p["partition"] for p in partitions] == [0, 1]
    for partition in partitions:
        members = [s for s in splits if s.partition == partition["partition"]]
        assert partition["test_apps"] == [s.test_apps for s in members]
        for name in models:
            per_fold = report["models"][name]["per_fold"]
            folds = [f["mae"] for f in per_fold if f["partition"] == partition["partition"]]
            assert len(folds) == 3 and partition["models"][name] == pytest.approx(np.mean(folds))
        constant = constant_reference(table, members)["mean"]
        assert partition["references"]["constant_reference"] == pytest.approx(constant)
    # Equal folds per partition: the mean over every fold is the mean of the partitions' means.
    assert report["constant_reference"]["mean"] == pytest.approx(
        np.mean([p["references"]["constant_reference"] for p in partitions])
    )
    found = report["targets"]
    assert found["cloudformer_variant"] == cloudformer
    assert found["best_baseline"] == "hist-gradient-boosting"
    assert found["cloudformer_over_best_baseline_by_partition"] == pytest.approx(
        [p["models"][cloudformer] / p["models"]["hist-gradient-boosting"] for p in partitions]
    )
    text = markdown(report)
    assert "6 folds: 2 partitions of the programs x 3" in text and "## Partitions" in text
    assert "Partition by partition (the same choices): median" in "\n".join(targets_markdown(report))


def test_each_program_is_set_beside_its_own_labels_spread_and_closest_work_rate() -> None:
    """The per-application table shows what the data allows program by program: a model's 12 pp on a
    program whose own solos differ by 12 pp is at that program's floor, not a miss."""
    report: dict[str, Any] = {
        "noise_floor": {
            "n_solo_pairs": 36,
            "by_application": {
                "noisy": {"n_solo_pairs": 12, "median_abs_deviation": 0.1, "mean_abs_deviation": 0.123},
                "quiet": {"n_solo_pairs": 12, "median_abs_deviation": 0.01, "mean_abs_deviation": 0.014},
                # a summary stored before the mean was recorded: no figure rather than a wrong one
                "old": {"n_solo_pairs": 12, "median_abs_deviation": 0.02},
            },
        },
        "work_rate_reference": {"programs": {"noisy": {"closest": "cpu", "closest_mae": 11.3}}},
    }
    spread, rate = per_application_references(report, ["noisy", "old", "quiet", "unprofiled"])
    assert spread == "| reference: labels' spread, solo vs solo | 12.30 | - | 1.40 | - |"
    assert rate == "| reference: closest work rate | 11.30 | - | - | - |"
    # a source without a lab noise floor or work rates (synthetic) adds no rows
    assert per_application_references({"noise_floor": 0.05}, ["noisy"]) == []
