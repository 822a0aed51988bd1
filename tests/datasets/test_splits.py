"""Splits never leak runs or applications; normalisation is fit on the training split only."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from cotenant.datasets import RunTable, load_source
from cotenant.datasets.splits import (
    FeatureStats,
    by_time,
    leave_applications_out,
    leave_applications_out_splits,
    n_test_applications,
)


@pytest.fixture(scope="module")
def table() -> RunTable:
    return load_source("synthetic", n_apps=11, n_runs=150, min_length=5, max_length=10, seed=4)


def test_paper_proportions() -> None:
    assert n_test_applications(11) == 4
    assert [n_test_applications(n) for n in (2, 3, 6, 8, 20)] == [1, 1, 2, 3, 7]
    with pytest.raises(ValueError, match=">= 2 applications"):
        n_test_applications(1)


def test_leave_applications_out_has_no_leakage(table: RunTable) -> None:
    splits = leave_applications_out_splits(table, n_seeds=6)
    assert len({tuple(s.test_apps) for s in splits}) > 1  # seeds really change the held-out apps
    for split in splits:
        assert len(split.test_apps) == 4 and len(split.train_apps) == 7
        assert not set(split.train_runs) & set(split.test_runs)
        assert set(split.train_runs) | set(split.test_runs) == set(table.runs["run_id"])
        train_apps = set(split.train(table).runs["application"])
        test_apps = set(split.test(table).runs["application"])
        assert not train_apps & test_apps and test_apps == set(split.test_apps)
        assert set(split.test(table).telemetry["run_id"]) == set(split.test_runs)
    assert leave_applications_out(table, seed=3) == leave_applications_out(table, seed=3)


def test_by_time_trains_on_the_past(table: RunTable) -> None:
    split = by_time(table, test_fraction=0.25)
    train, test = split.train(table).runs, split.test(table).runs
    assert train["started_at"].max() < test["started_at"].min()
    assert test.height == round(table.runs.height * 0.25)
    assert not set(split.train_runs) & set(split.test_runs)


def test_stats_fit_on_training_rows_only(table: RunTable) -> None:
    split = leave_applications_out(table, seed=0)
    features = table.self_columns
    stats = FeatureStats.fit(split.train(table).telemetry, features)
    train_values = split.train(table).telemetry.select(features).to_numpy()
    np.testing.assert_allclose(stats.mean, train_values.mean(axis=0))
    np.testing.assert_allclose(stats.std, train_values.std(axis=0))
    everything = FeatureStats.fit(table.telemetry, features)
    assert not np.allclose(stats.mean, everything.mean)


def test_constant_and_missing_columns_are_safe() -> None:
    frame = pl.DataFrame(
        {
            "constant": [3.0, 3.0, 3.0],
            "missing": [None, None, None],
            "with_nan": [1.0, float("nan"), 3.0],
        },
        schema={"constant": pl.Float64, "missing": pl.Float64, "with_nan": pl.Float64},
    )
    stats = FeatureStats.fit(frame, frame.columns)
    np.testing.assert_allclose(stats.mean, [3.0, 0.0, 2.0])
    np.testing.assert_allclose(stats.std, [1.0, 1.0, 1.0])
    out = stats.transform(np.array([[3.0, np.nan, np.nan], [4.0, 5.0, 3.0]]))
    np.testing.assert_allclose(out, [[0.0, 0.0, 0.0], [1.0, 5.0, 1.0]])
    assert FeatureStats.from_dict(stats.to_dict()).names == stats.names


def test_clip_bounds_far_out_values_and_survives_the_artifact() -> None:
    train = pl.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 1.0, 1.0, 2.0]})
    stats = FeatureStats.fit(train, ["a", "b"], clip=3.0)
    held_out = np.array([[1.5, 1.0], [1000.0, -500.0]])  # an application far outside the training range
    out = stats.transform(held_out.copy())
    unclipped = FeatureStats.fit(train, ["a", "b"]).transform(held_out.copy())
    np.testing.assert_allclose(out[0], unclipped[0], rtol=1e-6)  # in range: untouched
    assert out[1].tolist() == [3.0, -3.0] and abs(unclipped[1]).min() > 100
    again = FeatureStats.from_dict(stats.to_dict())
    np.testing.assert_array_equal(again.transform(held_out.copy()), out)
    legacy = {k: v for k, v in stats.to_dict().items() if k != "clip"}  # artifacts written before clipping
    assert FeatureStats.from_dict(legacy).clip is None


def test_leave_programs_out_holds_programs_out_in_every_role() -> None:
    """On the bundled lab data, whose neighbours include target programs: no test program appears in any
    training or validation run, as target or neighbour; no validation program in any training run; every
    target program is held out exactly once; folds are balanced; instruments are never held out."""
    from cotenant.datasets.splits import instruments, leave_programs_out, program_of

    table = load_source("bundled")
    splits = leave_programs_out(table, k=4, seed=0)
    roles = {
        run_id: {application, *(program_of(key) for key in neighbours)}
        for run_id, application, neighbours in table.runs.select(
            "run_id", "application", "neighbours"
        ).iter_rows()
    }
    targets = set(table.runs["application"]) - instruments()
    held_out = [app for split in splits for app in split.test_apps]
    assert sorted(held_out) == sorted(targets)  # each exactly once
    assert max(len(s.test_apps) for s in splits) - min(len(s.test_apps) for s in splits) <= 1
    shared_neighbours = 0
    for split in splits:
        test, validation = set(split.test_apps), set(split.validation_apps)
        assert not test & validation and not instruments() & (test | validation)
        for run in split.train_runs:
            assert not roles[run] & (test | validation), (split.name, run, roles[run])
        for run in split.validation_runs:
            assert not roles[run] & test
        assert {table_app for table_app in split.test(table).runs["application"]} == test
        assert set(split.validation(table).runs["application"]) <= validation
        assert not set(split.train_runs) & (set(split.test_runs) | set(split.validation_runs))
        # Runs with a held-out neighbour but a training target exist and are in no role.
        excluded = set(roles) - set(split.train_runs) - set(split.test_runs) - set(split.validation_runs)
        shared_neighbours += len(excluded)
        for run in excluded:
            assert roles[run] & (test | validation)
    assert shared_neighbours > 0  # the bundled data has target programs as neighbours: the rule is exercised


def test_program_folds_need_enough_programs(table: RunTable) -> None:
    from cotenant.datasets.splits import program_folds

    folds = program_folds(table, k=5, seed=1)
    assert sorted(app for fold in folds for app in fold) == sorted(set(table.runs["application"]))
    assert folds != program_folds(table, k=5, seed=2)
    assert len(program_folds(table, k=40)) == table.runs["application"].n_unique()  # one program per fold
    with pytest.raises(ValueError, match="k >= 2 folds"):
        program_folds(table, k=1)


def test_two_folds_train_on_the_other_half_without_validation(table: RunTable) -> None:
    from cotenant.datasets.splits import leave_programs_out

    for split in leave_programs_out(table, k=2):
        assert split.train_runs and not split.validation_runs and not split.validation_apps
        assert set(split.train_apps) | set(split.test_apps) == set(table.runs["application"])


def test_repeated_partitions_hold_each_program_out_once_in_each(table: RunTable) -> None:
    from cotenant.datasets.splits import leave_programs_out, repeated_leave_programs_out

    splits = repeated_leave_programs_out(table, k=3, partitions=3)
    assert [s.partition for s in splits] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert len({s.name for s in splits}) == len(splits)  # runs are tracked by split name
    # The first partition is the single-partition protocol itself: earlier reports stay comparable.
    assert splits[:3] == leave_programs_out(table, k=3)
    groupings = []
    for partition in range(3):
        members = [s for s in splits if s.partition == partition]
        held_out = [app for s in members for app in s.test_apps]
        assert sorted(held_out) == sorted(set(table.runs["application"]))
        groupings.append(sorted(tuple(s.test_apps) for s in members))
    assert len({tuple(g) for g in groupings}) == 3  # each partition groups the programs differently
    with pytest.raises(ValueError, match="partitions must be >= 1"):
        repeated_leave_programs_out(table, k=3, partitions=0)


def test_programs_seen_moves_half_of_each_held_out_programs_configurations_into_training() -> None:
    """The seen split trains on the fold's training runs plus half of each held-out program's configurations
    (every measurement of a configuration on one side) and the runs beside held-out programs; its test runs
    are the other half, the same runs the unseen split answers from the fold's own training; validation
    programs stay out of training in every role."""
    from cotenant.datasets.splits import (
        CONFIGURATION,
        leave_programs_out,
        program_of,
        programs_seen,
        with_configurations,
    )

    table = load_source("bundled")
    split = leave_programs_out(table, k=4, seed=0)[1]
    seen, unseen = programs_seen(table, split, seed=3)
    assert unseen.train_runs == split.train_runs and unseen.validation_runs == split.validation_runs
    assert seen.test_runs == unseen.test_runs and set(seen.test_runs) < set(split.test_runs)
    assert seen.validation_runs == split.validation_runs
    runs = with_configurations(table.runs)
    configuration = dict(zip(runs["run_id"], runs[CONFIGURATION], strict=True))
    application = dict(zip(runs["run_id"], runs["application"], strict=True))
    roles = {
        run_id: {app, *(program_of(key) for key in neighbours)}
        for run_id, app, neighbours in table.runs.select("run_id", "application", "neighbours").iter_rows()
    }
    train, test = set(seen.train_runs), set(seen.test_runs)
    assert not train & test
    assert not {configuration[r] for r in train} & {configuration[r] for r in test}
    assert set(split.train_runs) < train
    for run in train:
        assert not roles[run] & set(split.validation_apps)
    beside = [r for r in train - set(split.train_runs) if application[r] not in split.test_apps]
    assert beside and all(roles[r] & set(split.test_apps) for r in beside)  # held-out programs as neighbours
    for program in split.test_apps:
        own = {configuration[r] for r in split.test_runs if application[r] == program}
        tested = {configuration[r] for r in test if application[r] == program}
        trained = {configuration[r] for r in train if application[r] == program}
        beside_validation = {
            configuration[r]
            for r in split.test_runs
            if application[r] == program and roles[r] & set(split.validation_apps)
        }
        assert len(tested) == len(own) // 2 and trained and not trained & beside_validation
        assert tested | trained | beside_validation == own
        assert {r for r in split.test_runs if configuration[r] in tested} <= test  # repeats stay together
    assert seen.test_runs != programs_seen(table, split, seed=4)[0].test_runs  # a seeded draw
