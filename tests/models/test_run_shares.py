"""The run share (running / (running + waiting)) is one metric in every path: the run table, the service's
windows and the agent's compact windows compute it from the same rates and get the same numbers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from cotenant.collectors.ratios import SHARES, run_share, share_of, with_shares
from cotenant.datasets import RunTable, load_source
from cotenant.datasets.splits import leave_programs_out
from cotenant.datasets.table import NEIGHBOUR_MEAN, SELF
from cotenant.training.config import TrainConfig
from cotenant.training.fit import fit_model

SHARE = "tasks_run_share"
RUNNING, WAITING = SHARES[SHARE]


def test_the_share_is_running_over_runnable_time_and_one_when_nothing_ran() -> None:
    running = np.array([0.5, 1.0, 0.0, np.nan, 0.3])
    waiting = np.array([0.5, 0.0, 0.0, 0.2, np.nan])
    np.testing.assert_allclose(run_share(running, waiting), [0.5, 1.0, 1.0, np.nan, np.nan])
    assert share_of((RUNNING, WAITING), {RUNNING: 0.2, WAITING: 0.6}) == pytest.approx(0.25)
    assert share_of((RUNNING, WAITING), {RUNNING: 0.2}) is None
    added = with_shares({RUNNING: np.array([1.0, 1.0, 1.0]), WAITING: np.array([1.0, 3.0])})
    np.testing.assert_allclose(added[SHARE], [0.5, 0.25])  # aligned on the last seconds
    assert SHARE not in with_shares({RUNNING: np.ones(3)})


@pytest.fixture(scope="module")
def table() -> RunTable:
    """The synthetic source with two of its metrics named as the share's inputs (it has no schedstat)."""
    raw = load_source(
        "synthetic", n_apps=8, n_runs=80, min_length=8, max_length=10, profile_length=10, seed=3
    )
    first, second = raw.metrics[:2]
    names = {first: RUNNING, second: WAITING}
    renamed = {p + old: p + new for old, new in names.items() for p in (SELF, NEIGHBOUR_MEAN)}
    groups = {names.get(m, m): g for m, g in raw.metric_groups.items()}
    return RunTable(
        raw.runs,
        raw.telemetry.rename(renamed).with_columns(
            pl.col(SELF + WAITING).abs(), pl.col(SELF + RUNNING).abs()
        ),
        raw.profiles.rename(names),
        groups,
        raw.meta,
        raw.extras,
    ).with_run_shares()


def test_the_run_table_carries_the_share_for_itself_its_neighbours_and_its_profiles(table: RunTable) -> None:
    assert SHARE in table.metrics and table.metric_groups[SHARE] == table.metric_groups[RUNNING]
    for prefix in (SELF, NEIGHBOUR_MEAN):
        got = table.telemetry[prefix + SHARE].to_numpy()
        want = run_share(
            table.telemetry[prefix + RUNNING].to_numpy(), table.telemetry[prefix + WAITING].to_numpy()
        )
        np.testing.assert_allclose(got, want, equal_nan=True)
    alone = table.runs.filter(~pl.col("has_neighbours"))["run_id"]
    if len(alone):  # zeros for the neighbours of a run alone: nothing runnable reads as 1
        assert (
            table.telemetry.filter(pl.col("run_id").is_in(alone.implode()))[NEIGHBOUR_MEAN + SHARE] == 1.0
        ).all()
    assert SHARE in table.profiles.columns
    assert table.with_run_shares() is table  # applied once


def test_the_service_builds_the_training_rows_from_raw_series(table: RunTable) -> None:
    """A monitoring model trained on the table answers from collectors' raw series (no share in them): the
    service computes the share from the same rates, the neighbours' from their mean rates."""
    outcome = fit_model(table, leave_programs_out(table, k=4)[0], TrainConfig(model="linear", progress=False))
    predictor = outcome.predictor
    assert f"{SELF}{SHARE}" in predictor.metadata.features
    run = table.runs.filter(pl.col("has_neighbours"))["run_id"][0]
    frame = table.telemetry.filter(pl.col("run_id") == run).sort("second")
    raw = {m: frame[SELF + m].to_numpy() for m in table.metrics if m != SHARE}
    # two neighbours whose mean is the table's neighbour mean
    mean = {m: frame[NEIGHBOUR_MEAN + m].to_numpy() for m in table.metrics if m != SHARE}
    neighbours = [{m: v * 0.5 for m, v in mean.items()}, {m: v * 1.5 for m, v in mean.items()}]
    host = {c.removeprefix("host__"): frame[c].to_numpy() for c in table.host_columns}
    served, missing = predictor.monitoring_matrix(raw, neighbours, host)
    assert not missing
    trained = frame.select(predictor.metadata.features).to_numpy()
    np.testing.assert_allclose(served, trained, rtol=1e-9, atol=1e-12)


def test_the_agent_summarises_the_share_it_computes_from_each_second() -> None:
    from cotenant.collectors.push import CompactWindows
    from cotenant.collectors.summaries import FeatureSchema, summarise, unpack

    schema = FeatureSchema("s", [RUNNING, SHARE], 60)
    windows = CompactWindows(schema)
    rows = [{RUNNING: 0.5, WAITING: 0.5}, {RUNNING: 0.9, WAITING: 0.1}, {RUNNING: 0.0, WAITING: 0.0}]
    for row in rows:
        windows.add("pod", row)
    sent = unpack(windows.summaries({"pod"}, "t")[0]["values"])
    want = summarise(np.array([[0.5, 0.5], [0.9, 0.9], [0.0, 1.0]]))
    np.testing.assert_allclose(sent, want, rtol=2e-3, atol=1e-3)
