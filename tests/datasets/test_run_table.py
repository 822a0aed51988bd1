"""RunTable validation names the bad file and column; save/load round-trips."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from cotenant.datasets import RunTable, RunTableError, load_source


@pytest.fixture()
def table() -> RunTable:
    return load_source("synthetic", n_runs=12, n_apps=3, min_length=5, max_length=8, seed=3)


def test_save_load_round_trip(table: RunTable, tmp_path: Path) -> None:
    table.save(tmp_path / "t")
    loaded = load_source(tmp_path / "t")
    assert loaded.runs.equals(table.runs)
    assert loaded.telemetry.equals(table.telemetry)
    assert loaded.profiles.equals(table.profiles)
    assert loaded.metric_groups == table.metric_groups
    assert loaded.meta["source"] == "synthetic"


def test_float32_storage_loads_as_float64(table: RunTable, tmp_path: Path) -> None:
    table.save(tmp_path / "t", float32=True)
    loaded = RunTable.load(tmp_path / "t")
    assert set(loaded.telemetry.select(pl.exclude("run_id", "second")).dtypes) == {pl.Float64}
    column = table.self_columns[0]
    assert (loaded.telemetry[column] - table.telemetry[column]).abs().max() < 1e-5


def test_missing_column_names_file_and_column(table: RunTable, tmp_path: Path) -> None:
    table.save(tmp_path / "t")
    runs = pl.read_parquet(tmp_path / "t" / "runs.parquet").drop("solo_performance")
    runs.write_parquet(tmp_path / "t" / "runs.parquet")
    with pytest.raises(RunTableError, match=r"t/runs.parquet: missing column 'solo_performance'"):
        RunTable.load(tmp_path / "t")


def test_wrong_metric_type_names_column(table: RunTable) -> None:
    column = table.self_columns[1]
    broken = RunTable(
        table.runs,
        table.telemetry.with_columns(pl.col(column).cast(pl.Utf8)),
        table.profiles,
        table.metric_groups,
    )
    with pytest.raises(RunTableError, match=rf"telemetry.parquet: metric column '{column}' has type String"):
        broken.validate()


def test_label_out_of_range_names_run(table: RunTable) -> None:
    first = table.runs["run_id"][0]
    runs = table.runs.with_columns(
        pl.when(pl.col("run_id") == first).then(1.5).otherwise(pl.col("label")).alias("label")
    )
    with pytest.raises(
        RunTableError, match=rf"runs.parquet: column 'label' must be in \(0, 1\]; run '{first}'"
    ):
        RunTable(runs, table.telemetry, table.profiles, table.metric_groups).validate()


def test_neighbour_twin_and_unknown_profile(table: RunTable) -> None:
    lone = table.neighbour_columns[0]
    with pytest.raises(RunTableError, match="lacks its self__/neighbour_mean__ twin"):
        RunTable(table.runs, table.telemetry.drop(lone), table.profiles, table.metric_groups).validate()
    runs = table.runs.with_columns(pl.lit("nobody").alias("target_profile"))
    with pytest.raises(RunTableError, match="unknown profile 'nobody'"):
        RunTable(runs, table.telemetry, table.profiles, table.metric_groups).validate()


def test_run_without_telemetry_is_named(table: RunTable) -> None:
    gone = table.runs["run_id"][2]
    telemetry = table.telemetry.filter(pl.col("run_id") != gone)
    with pytest.raises(RunTableError, match=rf"no rows for run '{gone}'"):
        RunTable(table.runs, telemetry, table.profiles, table.metric_groups).validate()


def test_unknown_source_lists_names(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="bundled, cloudperftrace, lab, synthetic"):
        load_source("nonsense")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a lab dir"):
        load_source(tmp_path / "empty")
