"""The CloudPerfTrace adapter on a small fixture written in the dataset's exact schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cotenant.datasets import load_source
from cotenant.datasets.sources.cloudperftrace import STRIDES

T_START = 1_700_000_000.0


def flat_trace(steps: int, stride: int, offset: float) -> list[float]:
    """A (T, stride) matrix flattened row-major: column 0 the Unix time, then metric j = offset + 10 t + j."""
    rows = [[T_START + t] + [offset + 10 * t + j for j in range(1, stride)] for t in range(steps)]
    return [v for row in rows for v in row]


def write_fixture(root: Path, broken: bool = False) -> Path:
    tasks = {5: [(30, 0.9, 1.0), (20, 0.5, 2.0)], 11: [(25, 0.7, 3.0)]}
    for task, executions in tasks.items():
        rows = []
        for steps, label, workload in executions:
            row: dict[str, object] = {"perf_ori": label, "workload": workload}
            for block, stride in STRIDES.items():
                row[f"{block}_self"] = flat_trace(steps, stride, offset=1000 * workload)
                row[f"{block}_oth"] = flat_trace(steps, stride, offset=-1000 * workload)
            rows.append(row)
        if broken and task == 11:
            rows[0]["lin_oth"] = rows[0]["lin_oth"][:-1]  # type: ignore[index]
        folder = root / "parquet_ds" / f"tasks={task}"
        folder.mkdir(parents=True)
        schema = {"perf_ori": pl.Float64, "workload": pl.Float64} | {
            f"{b}_{w}": pl.List(pl.Float64) for b in STRIDES for w in ("self", "oth")
        }
        pl.DataFrame(rows, schema=schema).write_parquet(folder / "part-0.parquet")
    return root / "parquet_ds"


def test_reads_partitions_into_run_table(tmp_path: Path) -> None:
    table = load_source(f"cloudperftrace:{write_fixture(tmp_path)}")
    runs = table.runs.sort("run_id")
    assert runs["application"].to_list() == ["redis", "redis", "hbase"]
    assert runs["label"].to_list() == [0.9, 0.5, 0.7]
    assert runs["load"].to_list() == ["1.0", "2.0", "3.0"]
    assert runs["has_neighbours"].all()
    assert len(table.self_columns) == 53 + 38 + 12 == len(table.neighbour_columns)
    assert table.host_columns == [] and table.profiles.height == 0
    lengths = dict(table.telemetry.group_by("run_id").len().iter_rows())
    assert sorted(lengths.values()) == [20, 25, 30]
    second_run = table.telemetry.filter(pl.col("run_id") == runs["run_id"][1]).sort("second")
    # metric j at step t is offset + 10 t + j: the reshape and the dropped timestamp column line up.
    np.testing.assert_array_equal(second_run["self__tr_01"].to_numpy(), 2000 + 10 * np.arange(20) + 1)
    np.testing.assert_array_equal(
        second_run["neighbour_mean__td_12"].to_numpy(), -2000 + 10 * np.arange(20) + 12
    )
    np.testing.assert_array_equal(second_run["self__lin_38"].to_numpy(), 2000 + 10 * np.arange(20) + 38)
    assert runs["started_at"][0].timestamp() == T_START
    assert table.metric_groups["lin_01"] == "cache_membw"


def test_task_filter_and_bad_stride_named(tmp_path: Path) -> None:
    good = load_source(f"cloudperftrace:{write_fixture(tmp_path / 'a')}", tasks=[11])
    assert good.runs["application"].to_list() == ["hbase"]
    path = write_fixture(tmp_path / "b", broken=True)
    with pytest.raises(ValueError, match=r"tasks=11/part-0.parquet: column 'lin_oth' row 0 .* stride 39"):
        load_source(path)
