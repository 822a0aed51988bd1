"""Writer and reader: hive layout, one schema per collection, per-table reads, atomicity, bad outputs."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from cotenant.collectors.writer import OutputError, SegmentWriter, partial_dir
from cotenant.datasets.telemetry import scan_telemetry

COLUMNS = {"host": ["host_a", "host_b"], "cgroup": ["cg_x"], "collector": ["collector_lateness"]}


def write_collection(out: Path, columns: dict[str, list[str]], start_ms: int) -> None:
    writer = SegmentWriter(out, columns, segment_seconds=10)
    for second in range(3):
        ms = start_ms + second * 1000
        writer.add("host", ms, "host", {"host_a": 1.0 + second, "host_b": None})
        for target in columns["cgroup"] and ["lab/a", "lab/b"]:
            writer.add("cgroup", ms, target, {c: float(second) for c in columns["cgroup"]})
        writer.add("collector", ms, "collector", {"collector_lateness": 0.001})
    writer.flush()
    writer.close()


def test_plain_scan_reads_whole_collection(tmp_path: Path) -> None:
    write_collection(tmp_path / "out", COLUMNS, 1_700_000_000_000)
    frame = pl.scan_parquet(tmp_path / "out", hive_partitioning=True).collect()
    assert frame.group_by("table").len().sort("table").rows() == [
        ("cgroup", 6),
        ("collector", 3),
        ("host", 3),
    ]
    assert frame.schema["timestamp"] == pl.Datetime("ms", "UTC")
    assert not partial_dir(tmp_path / "out").exists(), "temp dir removed on close"


def test_scan_telemetry_returns_one_table_with_its_columns(tmp_path: Path) -> None:
    write_collection(tmp_path / "out", COLUMNS, 1_700_000_000_000)
    host = scan_telemetry(tmp_path / "out", "host").collect()
    assert host.columns == ["timestamp", "target", "host_a", "host_b"]
    assert host["host_a"].to_list() == [1.0, 2.0, 3.0] and host["host_b"].null_count() == 3
    cgroup = scan_telemetry(tmp_path / "out", "cgroup").collect()
    assert cgroup.columns == ["timestamp", "target", "cg_x"] and set(cgroup["target"]) == {"lab/a", "lab/b"}


def test_runs_with_different_columns_read_together(tmp_path: Path) -> None:
    write_collection(tmp_path / "out", COLUMNS, 1_700_000_000_000)
    write_collection(tmp_path / "out", {**COLUMNS, "cgroup": ["cg_x", "cg_y"]}, 1_700_000_100_000)
    cgroup = scan_telemetry(tmp_path / "out", "cgroup").collect()
    assert cgroup.columns == ["timestamp", "target", "cg_x", "cg_y"] and cgroup.height == 12
    assert cgroup["cg_y"].null_count() == 6
    whole = pl.scan_parquet(
        tmp_path / "out", hive_partitioning=True, missing_columns="insert", extra_columns="ignore"
    )
    assert whole.collect().height == 24


def test_unknown_table_and_empty_dir_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown telemetry table"):
        scan_telemetry(tmp_path, "nope")
    with pytest.raises(FileNotFoundError, match="table 'cgroup'"):
        scan_telemetry(tmp_path, "cgroup")


def test_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError, match="not writable"):
        SegmentWriter(blocker / "out", COLUMNS, 10)
