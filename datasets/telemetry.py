"""Read one table of a collector output directory (``cotenant collect --out DIR``) as a LazyFrame.

Files of one collection share one schema (all tables' columns); each records its own table's metric columns
in its Parquet metadata. The reader returns ``timestamp``, ``target`` and that table's columns only, and takes
the union over files so collections written by several runs (different sources, machines) read together.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

TABLES = ("host", "cgroup", "collector")
COLUMNS_KEY = "cotenant.columns"  # written by cotenant.collectors.writer
UNAVAILABLE_KEY = "cotenant.unavailable"  # collector table: {source: {metric: reason}}
KEY_COLUMNS: dict[str, pl.DataType] = {"timestamp": pl.Datetime("ms", "UTC"), "target": pl.String()}


def telemetry_files(root: Path | str, table: str) -> list[Path]:
    if table not in TABLES:
        raise ValueError(f"unknown telemetry table {table!r}; tables: {', '.join(TABLES)}")
    directory = Path(root) / f"table={table}"
    return sorted(directory.glob("*.parquet"))


def table_columns(files: list[Path]) -> list[str]:
    """The table's metric columns over all files, in first-seen order."""
    columns: dict[str, None] = {}
    for file in files:
        metadata = pl.read_parquet_metadata(file)
        if COLUMNS_KEY in metadata:
            names = json.loads(metadata[COLUMNS_KEY])
        else:  # written by another tool: every column but the keys
            names = [c for c in pl.read_parquet_schema(file) if c not in KEY_COLUMNS]
        columns.update(dict.fromkeys(names))
    return list(columns)


def scan_telemetry(root: Path | str, table: str) -> pl.LazyFrame:
    """``timestamp`` (ms, UTC), ``target`` and the Float64 metrics of ``table`` (host, cgroup, collector)."""
    files = telemetry_files(root, table)
    if not files:
        raise FileNotFoundError(
            f"no telemetry for table {table!r} under {root} (expected {root}/table={table}/)"
        )
    columns = table_columns(files)
    schema: dict[str, pl.DataType] = {**KEY_COLUMNS, **{column: pl.Float64() for column in columns}}
    return pl.scan_parquet(
        files, schema=schema, missing_columns="insert", extra_columns="ignore", hive_partitioning=False
    ).select(list(schema))


def telemetry_unavailable(root: Path | str) -> dict[str, dict[str, str]]:
    """Per source, the metrics the collector could not emit on its machine and why (latest file wins).

    Their columns are null, never zeros; ``collector_source_<name>_unavailable_metrics`` counts them per tick.
    """
    unavailable: dict[str, dict[str, str]] = {}
    for file in telemetry_files(root, "collector"):
        text = pl.read_parquet_metadata(file).get(UNAVAILABLE_KEY)
        if text:
            unavailable.update(json.loads(text))
    return unavailable
