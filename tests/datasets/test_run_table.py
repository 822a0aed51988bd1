"""RunTable validation names the bad file and column; save/load round-trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cotenant.datasets import RunTable, RunTableError, load_source
from cotenant.datasets.table import round_significant_bits


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


def test_compact_storage_loads_as_float64_within_its_rounding(table: RunTable, tmp_path: Path) -> None:
    column = table.self_columns[0]
    with_null = table.telemetry.with_columns(
        pl.when(pl.col("second") == 0).then(None).otherwise(pl.col(column)).alias(column)
    )
    RunTable(table.runs, with_null, table.profiles, table.metric_groups, table.meta).save(
        tmp_path / "t", compact=True
    )
    stored = pl.read_parquet(tmp_path / "t" / "telemetry.parquet")
    assert stored.schema[column] == pl.Float32
    # 16 significant bits: the 8 lowest of Float32's mantissa are zero on disk
    raw = stored[column].drop_nulls().to_numpy().view(np.uint32)
    assert raw.size and not np.any(raw & 0xFF)
    loaded = RunTable.load(tmp_path / "t")
    assert set(loaded.telemetry.select(pl.exclude("run_id", "second")).dtypes) == {pl.Float64}
    assert loaded.telemetry[column].null_count() == with_null[column].null_count() > 0  # nulls stay nulls
    exact, back = with_null[column].drop_nulls().to_numpy(), loaded.telemetry[column].drop_nulls().to_numpy()
    assert np.all(np.abs(back - exact) <= np.abs(exact) * 2.0**-16)


def test_round_significant_bits_rounds_to_nearest_and_keeps_what_has_no_digits() -> None:
    unit = 2.0**-15  # the last of 16 significant bits at 1.x
    values = np.array(
        [1.0, 1.0 + unit, 1.0 + unit / 2, -(1.0 + unit / 2), 1.0 + unit / 2 - 2.0**-23, 3.0e-3, 0.0],
        dtype=np.float32,
    )
    rounded = round_significant_bits(values, 16)
    # representable values stay; a tie goes away from zero, below it down
    assert rounded[:5].tolist() == [1.0, 1.0 + unit, 1.0 + unit, -(1.0 + unit), 1.0]
    assert rounded[5] != values[5] and abs(rounded[5] - values[5]) <= values[5] * 2.0**-16
    special = np.array([np.nan, np.inf, -np.inf, np.finfo(np.float32).max], dtype=np.float32)
    kept = round_significant_bits(special, 16)
    assert np.isnan(kept[0]) and kept[1:].tolist() == special[1:].tolist()  # no overflow to infinity
    assert round_significant_bits(values, 24).tolist() == values.tolist()


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
