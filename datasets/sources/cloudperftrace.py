"""CloudPerfTrace adapter (CloudFormer's dataset, CC-BY-4.0).

Layout: ``parquet_ds/tasks=<id>/*.parquet``, one row per execution, with ``perf_ori`` (the label P),
``workload`` and six flat list columns ``tr_self``, ``lin_self``, ``td_self``, ``tr_oth``, ``lin_oth``,
``td_oth``. Each list reshapes to ``(T, stride)`` with stride 54 / 39 / 13; column 0 is a Unix timestamp, the
rest are metrics whose names were never published, so they are named by block and position (``tr_01``..).
``*_oth`` is already the mean over the neighbours, which maps onto our neighbour_mean. There is no host table
and no solo profile, so ``host__`` columns and ``profiles`` are empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from cotenant.datasets.sources.base import SOURCES
from cotenant.datasets.table import NEIGHBOUR_MEAN, SELF, RunTable, conform_runs, empty_profiles

STRIDES = {"tr": 54, "lin": 39, "td": 13}
# The blocks: libvirt VM metrics, Linux perf hardware counters, Intel Top-Down slots (names unpublished).
BLOCK_GROUPS = {"tr": "other", "lin": "cache_membw", "td": "cpu"}
APPLICATIONS = {
    4: "data_serving",
    5: "redis",
    6: "web_search",
    7: "graph_analytics",
    9: "data_analytics",
    10: "mlperf",
    11: "hbase",
    13: "alluxio",
    14: "minio",
    15: "tpcc",
    16: "flink",
}


def metric_names() -> list[str]:
    return [f"{block}_{i:02d}" for block, stride in STRIDES.items() for i in range(1, stride)]


def _reshape(file: Path, frame: pl.DataFrame, column: str, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The flat lists of one column as (rows [sum T, stride], T per row); errors name file and column."""
    lengths = frame[column].list.len().to_numpy().astype(np.int64)
    bad = np.flatnonzero(lengths % stride)
    if bad.size:
        raise ValueError(
            f"{file}: column {column!r} row {int(bad[0])} has {int(lengths[bad[0]])} values, "
            f"not a multiple of its stride {stride}"
        )
    flat = frame[column].explode().cast(pl.Float64).to_numpy()
    return flat.reshape(-1, stride), lengths // stride


def read_file(file: Path, task: int, first_row: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(runs, telemetry) of one Parquet file of partition ``tasks=<task>``."""
    frame = pl.read_parquet(file, hive_partitioning=False)
    needed = ["perf_ori", *(f"{b}_{who}" for who in ("self", "oth") for b in STRIDES)]
    for column in needed:
        if column not in frame.columns:
            raise ValueError(f"{file}: missing column {column!r} (have: {', '.join(frame.columns)})")
    blocks: dict[str, np.ndarray] = {}
    steps: np.ndarray | None = None
    start_seconds = np.zeros(frame.height)
    for who, prefix in (("self", SELF), ("oth", NEIGHBOUR_MEAN)):
        for block, stride in STRIDES.items():
            column = f"{block}_{who}"
            rows, t = _reshape(file, frame, column, stride)
            values = rows[:, 1:]  # column 0 is the timestamp
            if steps is None:
                steps = t
                first = np.minimum(np.concatenate([[0], np.cumsum(t)[:-1]]), max(len(rows) - 1, 0))
                start_seconds = np.where(t > 0, rows[first, 0], 0.0) if len(rows) else start_seconds
            elif not np.array_equal(t, steps):
                row = int(np.flatnonzero(t != steps)[0])
                raise ValueError(
                    f"{file}: column {column!r} row {row} has {t[row]} steps, tr_self has {steps[row]}"
                )
            for i in range(stride - 1):
                blocks[f"{prefix}{block}_{i + 1:02d}"] = values[:, i]
    assert steps is not None
    run_ids = [f"cpt-{task:02d}-{first_row + r:06d}" for r in range(frame.height)]
    offsets = np.concatenate([[0], np.cumsum(steps)])
    telemetry = pl.DataFrame(
        {
            "run_id": np.repeat(np.array(run_ids, dtype=object), steps).astype(str),
            "second": (np.arange(offsets[-1]) - np.repeat(offsets[:-1], steps)).astype(np.int32),
        }
        | blocks
    )
    other_cols = [c for c in blocks if c.startswith(NEIGHBOUR_MEAN)]
    has_neighbours = telemetry.group_by("run_id").agg(
        pl.any_horizontal([pl.col(c).abs().sum() > 0 for c in other_cols]).alias("has_neighbours")
    )
    runs = pl.DataFrame(
        {
            "run_id": run_ids,
            "application": [APPLICATIONS.get(task, f"task{task}")] * frame.height,
            "scenario": ["dynamic"] * frame.height,
            "load": [
                str(w) for w in (frame["workload"] if "workload" in frame.columns else [None] * frame.height)
            ],
            "label": frame["perf_ori"].cast(pl.Float64),
            "started_at": (start_seconds * 1000).astype(np.int64),
        }
    ).join(has_neighbours, on="run_id", how="left")
    runs = runs.with_columns(
        pl.col("started_at").cast(pl.Datetime("ms", "UTC")),
        pl.lit([], dtype=pl.List(pl.Utf8)).alias("neighbours"),
        pl.lit(None, dtype=pl.Int32).alias("n_neighbours"),  # unpublished: only their mean is
        pl.lit(None, dtype=pl.Float64).alias("performance"),
        pl.lit(None, dtype=pl.Float64).alias("solo_performance"),
        pl.lit(True).alias("higher_is_better"),
        pl.lit("cloudperftrace").alias("source"),
        pl.lit(None, dtype=pl.Utf8).alias("target_profile"),
        pl.lit([], dtype=pl.List(pl.Utf8)).alias("neighbour_profiles"),
        pl.lit(str(file.name)).alias("file"),
    )
    return runs, telemetry


@SOURCES.register("cloudperftrace")
def load_cloudperftrace(path: Path | None = None, **options: Any) -> RunTable:
    """Read a CloudPerfTrace tree (``parquet_ds`` or its parent); option ``tasks=[ids]`` keeps only those."""
    if path is None:
        raise ValueError("cloudperftrace: needs a path, e.g. cloudperftrace:/data/CloudPerfTrace/parquet_ds")
    keep = set(options.get("tasks") or [])
    files = sorted(path.glob("tasks=*/*.parquet")) or sorted(path.glob("*/tasks=*/*.parquet"))
    partition_of = {f: f.parent.name.removeprefix("tasks=") for f in files}
    for file, partition in partition_of.items():
        if not partition.isdigit():
            raise ValueError(f"{file.parent}: partition {file.parent.name!r} is not tasks=<integer>")
    files.sort(key=lambda f: (int(partition_of[f]), f.name))
    if not files:
        raise FileNotFoundError(f"{path}: no tasks=<id>/*.parquet partitions")
    all_runs: list[pl.DataFrame] = []
    all_tel: list[pl.DataFrame] = []
    for file in files:
        task = int(partition_of[file])
        if keep and task not in keep:
            continue
        runs, telemetry = read_file(file, task, first_row=sum(r.height for r in all_runs))
        all_runs.append(runs)
        all_tel.append(telemetry)
    metrics = metric_names()
    groups = {m: BLOCK_GROUPS[m.split("_")[0]] for m in metrics}
    table = RunTable(
        runs=conform_runs(pl.concat(all_runs)),
        telemetry=pl.concat(all_tel),
        profiles=empty_profiles(metrics),
        metric_groups=groups,
        meta={"source": "cloudperftrace", "path": str(path), "noise_floor": None},
    )
    return table.validate(origin=str(path))
