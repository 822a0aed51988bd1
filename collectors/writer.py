"""Hive-partitioned zstd Parquet segments, written temp + rename so a reader never sees half a file.

Every file of one collection carries the same schema (``timestamp``, ``target`` and the union of all tables'
metric columns, null where a table has no such metric), so ``polars.scan_parquet(OUT,
hive_partitioning=True)`` reads the whole collection without options. Each file also records its own table's
metric columns in the Parquet key-value metadata (``cotenant.columns``); ``scan_telemetry`` uses it to return
one table's columns. Temporary files live in a hidden sibling of OUT: a temp file inside OUT would break
directory scans.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl
from cotenant.collectors.rows import UNAVAILABLE_KEY, OutputError, Row

__all__ = ["TABLES", "UNAVAILABLE_KEY", "OutputError", "Row", "SegmentWriter", "partial_dir", "segment_frame"]

TABLES = ("host", "cgroup", "collector")
LOW_SPACE_BYTES = 1 << 20
COLUMNS_KEY = "cotenant.columns"
TABLE_KEY = "cotenant.table"


def partial_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def segment_frame(
    epoch_ms: Sequence[int],
    targets: Sequence[str],
    values: np.ndarray,
    columns: Sequence[str],
    all_columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Buffered rows -> the telemetry layout: ``timestamp`` (ms, UTC), ``target``, Float64 ``all_columns``.

    ``values`` is ``[rows, columns]`` float64 with NaN for null (derived values are never NaN: derive drops
    non-finite readings). The other tables' columns of the shared schema are all-null Series made once each.
    """
    # Column-major numpy arrays with nan_to_null: about half the CPU of a row-oriented frame + fill_nan.
    own = (
        pl.DataFrame(dict(zip(columns, np.ascontiguousarray(values.T), strict=True)), nan_to_null=True)
        if columns
        else None
    )
    keys = pl.DataFrame(
        {
            "timestamp": pl.Series("timestamp", epoch_ms, dtype=pl.Int64).cast(pl.Datetime("ms", "UTC")),
            "target": pl.Series("target", targets, dtype=pl.String),
        }
    )
    present = set(columns)
    missing = [c for c in (all_columns if all_columns is not None else columns) if c not in present]
    nulls = pl.Series("", [None] * len(epoch_ms), dtype=pl.Float64)
    parts = [keys, *([own] if own is not None else []), pl.DataFrame([nulls.alias(c) for c in missing])]
    frame = pl.concat([part for part in parts if part.width], how="horizontal")
    return frame.select(["timestamp", "target", *(all_columns if all_columns is not None else columns)])


def row_values(row: Row, columns: Sequence[str]) -> np.ndarray:
    """One row in the table's column order, NaN for null: 8 bytes a value while a segment is buffered."""
    return np.array([math.nan if (value := row.get(c)) is None else value for c in columns], dtype=np.float64)


class SegmentWriter:
    """Buffers rows per table and writes one Parquet file per table every ``segment_seconds``."""

    def __init__(self, out: Path, table_columns: Mapping[str, Sequence[str]], segment_seconds: float) -> None:
        self.out = out
        self.table_columns = {table: list(table_columns.get(table, [])) for table in TABLES}
        self.all_columns = sorted({c for columns in self.table_columns.values() for c in columns})
        self.segment_seconds = segment_seconds
        # per table: epoch ms, target and the row's values in ``table_columns`` order (dicts: 10x the memory)
        self.buffers: dict[str, tuple[list[int], list[str], list[np.ndarray]]] = {
            table: ([], [], []) for table in TABLES
        }
        self.metadata: dict[str, dict[str, str]] = {t: {} for t in TABLES}  # extra key-value metadata
        self.segment_started: float | None = None
        self.sequence = 0
        self.files_written = 0
        self._prepare()

    def _prepare(self) -> None:
        """Fail now, with the path in the message, rather than after the first segment of sampling."""
        for directory in (self.out, partial_dir(self.out)):
            try:
                directory.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryFile(dir=directory):
                    pass
            except OSError as error:
                raise OutputError(
                    f"output directory {directory} is not writable: {error.strerror or error}"
                ) from error
        for stale in partial_dir(self.out).glob("*.parquet.tmp"):
            stale.unlink(missing_ok=True)  # left by a killed run; never part of the collection

    def set_metadata(self, table: str, key: str, value: str) -> None:
        """Key-value metadata written into each later file of ``table``."""
        self.metadata[table][key] = value

    def add(self, table: str, epoch_ms: int, target: str, row: Row) -> None:
        epochs, targets, rows = self.buffers[table]
        epochs.append(epoch_ms)
        targets.append(target)
        rows.append(row_values(row, self.table_columns[table]))

    def due(self, wall_time: float) -> bool:
        if self.segment_started is None:
            self.segment_started = wall_time
        return wall_time - self.segment_started >= self.segment_seconds

    def flush(self, wall_time: float | None = None) -> list[Path]:
        """Write every non-empty buffer as one file per table; returns the files written."""
        written = []
        for table, (epochs, targets, rows) in self.buffers.items():
            if rows:
                written.append(
                    self._write(
                        table,
                        segment_frame(
                            epochs, targets, np.vstack(rows), self.table_columns[table], self.all_columns
                        ),
                        epochs[0],
                    )
                )
                self.buffers[table] = ([], [], [])
        self.segment_started = wall_time
        return written

    def _write(self, table: str, frame: pl.DataFrame, first_ms: int) -> Path:
        self.sequence += 1
        name = f"part-{first_ms}-{os.getpid()}-{self.sequence:06d}.parquet"
        final = self.out / f"table={table}" / name
        temp = partial_dir(self.out) / f"{table}-{name}.tmp"
        metadata = {
            **self.metadata[table],
            TABLE_KEY: table,
            COLUMNS_KEY: json.dumps(self.table_columns[table]),
        }
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(temp, compression="zstd", metadata=metadata)
            with open(temp, "rb") as handle:
                os.fsync(
                    handle.fileno()
                )  # the rename must not publish a file whose blocks are still in cache
            os.replace(temp, final)
        except (OSError, pl.exceptions.PolarsError) as error:
            temp.unlink(missing_ok=True)
            reason = getattr(error, "strerror", None) or str(error)
            free = shutil.disk_usage(temp.parent).free
            if (
                free < LOW_SPACE_BYTES
            ):  # Parquet writers report a full disk as a broken stream; say what it is
                reason = f"No space left on device ({free} bytes free; {reason})"
            raise OutputError(f"cannot write segment {final}: {reason}") from error
        self.files_written += 1
        return final

    def close(self) -> None:
        with contextlib.suppress(OSError):  # only removed when empty: a concurrent run may still use it
            partial_dir(self.out).rmdir()
