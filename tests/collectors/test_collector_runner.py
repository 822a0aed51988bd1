"""The runner on fixture trees: rows per tick, first sample dropped, isolation, vanishing cgroups."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from collector_testkit import fixture_roots
from cotenant.collectors.base import Roots, SourceUnavailable
from cotenant.collectors.config import CollectorConfig
from cotenant.collectors.host_cpu import HostCpuSource
from cotenant.collectors.host_psi import HostPsiSource
from cotenant.collectors.runner import Collector
from cotenant.datasets.telemetry import scan_telemetry, telemetry_unavailable

FAST = 0.2  # seconds per tick: keeps these tests short; cadence itself is checked in the live tests
NO_PERF = (
    "host_cpu",
    "host_memory",
    "host_io",
    "host_psi",
    "cgroup_v2",
    "cgroup_v1_cpu",
    "cgroup_v1_memory",
    "tasks",
)


def run(config: CollectorConfig, during: object = None) -> Collector:
    collector = Collector(config)
    stop = threading.Event()
    thread = threading.Thread(target=collector.run, args=(stop,))
    thread.start()
    if callable(during):
        during()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return collector


def taken_ticks(out: Path, duration: float) -> list[int]:
    """Epoch ms of the ticks taken, after checking that every tick of the run was taken or recorded skipped.

    On a loaded machine the runner may skip ticks (never bunch them): a skipped tick has no rows and is
    counted in ``collector_samples_skipped``, so the checks hold whatever the load.
    """
    me = scan_telemetry(out, "collector").collect().sort("timestamp")
    ticks = me["timestamp"].dt.epoch("ms").to_list()
    interval_ms = round(FAST * 1000)
    assert all(tick % interval_ms == 0 for tick in ticks), "timestamps are aligned to the interval"
    indices = [(tick - ticks[0]) // interval_ms for tick in ticks]
    assert indices == sorted(set(indices)), "one row per tick, in order"
    skipped = int(me["collector_samples_skipped"].max() or 0)
    assert len(ticks) + skipped == indices[-1] + 1, "each tick is taken or recorded as skipped"
    assert indices[-1] >= round(duration / FAST), "the run covers its whole duration"
    return ticks


def rows_of(out: Path, target: str) -> list[int]:
    cgroup = scan_telemetry(out, "cgroup").filter(pl.col("target") == target).collect()
    return sorted(cgroup["timestamp"].dt.epoch("ms").to_list())


def test_rows_per_target_and_first_sample_dropped(tmp_path: Path, layout: str, copied_tree: Roots) -> None:
    config = CollectorConfig(
        out=tmp_path / "out",
        cgroup_globs=("lab/**",),
        interval=FAST,
        duration=1.0,
        segment_seconds=0.5,
        roots=copied_tree,
        sources=NO_PERF,
    )
    run(config)
    ticks = taken_ticks(tmp_path / "out", 1.0)
    cgroup = scan_telemetry(tmp_path / "out", "cgroup").collect()
    assert set(cgroup["target"]) == {"lab", "lab/a"}
    assert rows_of(tmp_path / "out", "lab/a") == ticks[1:], "a row per tick taken, the first one dropped"
    row = cgroup.filter(pl.col("target") == "lab/a").row(0, named=True)
    # fixture files do not change between ticks: counters give zero rates, gauges their values
    assert row["cgroup_cpu_usage_seconds_per_second"] == 0.0
    if layout == "v2":
        assert row["cgroup_cpu_pressure_some_avg10_ratio"] == pytest.approx(0.125)
        assert row["cgroup_cpu_max_cores"] == pytest.approx(1.5)
    else:
        assert row["cgroup_v1_cpu_quota_cores"] == pytest.approx(2.0)
    me = scan_telemetry(tmp_path / "out", "collector").collect()
    assert me["collector_source_cgroup_v2_success"].min() == 1.0


def test_per_process_sources_are_read_every_process_interval_and_carried(
    tmp_path: Path, copied_tree: Roots
) -> None:
    config = CollectorConfig(
        out=tmp_path / "out",
        cgroups=("lab/a",),
        interval=FAST,
        duration=1.6,
        process_interval=3 * FAST,
        roots=copied_tree,
        sources=("cgroup_v2", "cgroup_v1_cpu", "tasks"),
    )
    run(config)
    ticks = taken_ticks(tmp_path / "out", 1.6)
    me = scan_telemetry(tmp_path / "out", "collector").collect().sort("timestamp")
    ages = me["collector_source_tasks_age_seconds"].to_list()
    assert ages[0] == 0.0 and all(age is None or 0.0 <= age < 3 * FAST for age in ages)
    assert any(age is not None and age > 0 for age in ages), "carried between reads"
    assert me["collector_source_cgroup_v2_age_seconds"].to_list() == [0.0] * len(ticks), "read every tick"
    rows = scan_telemetry(tmp_path / "out", "cgroup").collect().sort("timestamp")
    assert rows["timestamp"].dt.epoch("ms").to_list() == ticks[1:]
    # the fixture's processes do not change: a carried row holds the values of the last read
    assert rows["tasks_processes"].drop_nulls().unique().to_list() == [2.0]
    assert rows["tasks_user_cpu_seconds_per_second"].null_count() < rows.height


def test_failing_and_slow_sources_cost_only_themselves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: HostPsiSource) -> dict[str, float]:
        raise RuntimeError("simulated failure")

    def slow(self: HostCpuSource) -> dict[str, float]:
        time.sleep(1.0)
        return {}

    monkeypatch.setattr(HostPsiSource, "read", broken)
    monkeypatch.setattr(HostCpuSource, "read", slow)
    roots = Roots(
        procfs=Path(__file__).parent / "fixtures/v2/proc", cgroup=Path(__file__).parent / "fixtures/v2/cgroup"
    )
    config = CollectorConfig(
        out=tmp_path / "out", cgroups=("lab/a",), interval=FAST, duration=1.0, roots=roots, sources=NO_PERF
    )
    run(config)
    host = scan_telemetry(tmp_path / "out", "host").collect()
    assert host.height >= 4 and host["host_meminfo_mem_total_bytes"].null_count() == 0
    assert host["host_cpu_pressure_some_avg10_ratio"].null_count() == host.height
    me = scan_telemetry(tmp_path / "out", "collector").collect()
    assert me["collector_source_host_psi_success"].sum() == 0
    assert me["collector_source_host_cpu_success"].sum() == 0, "the slow source missed every deadline"
    assert me["collector_source_host_memory_success"].min() == 1.0
    assert me["collector_tick_lateness_seconds"].max() < FAST, "a slow source does not delay the tick"


def test_vanishing_cgroup_ends_cleanly(tmp_path: Path, layout: str, copied_tree: Roots) -> None:
    shutil.copytree(copied_tree.cgroup / ("unified" if layout == "hybrid" else "") / "lab" / "a",
                    copied_tree.cgroup / ("unified" if layout == "hybrid" else "") / "lab" / "b")  # fmt: skip
    config = CollectorConfig(
        out=tmp_path / "out",
        cgroup_globs=("lab/*",),
        interval=FAST,
        duration=2.0,
        roots=copied_tree,
        sources=NO_PERF,
    )

    def remove_b() -> None:
        time.sleep(0.9)
        shutil.rmtree(copied_tree.cgroup / ("unified" if layout == "hybrid" else "") / "lab" / "b")

    collector = run(config, remove_b)
    ticks = taken_ticks(tmp_path / "out", 2.0)
    assert rows_of(tmp_path / "out", "lab/a") == ticks[1:], "the survivor is not disturbed"
    rows_b = rows_of(tmp_path / "out", "lab/b")
    assert rows_b and rows_b == ticks[1 : len(rows_b) + 1], "the vanished cgroup's rows end, no gap before"
    assert len(rows_b) < len(ticks) - 1
    assert "lab/b" not in collector.known_targets
    assert not any(target == "lab/b" for _, target in collector.previous)


def test_unavailable_metrics_are_counted_and_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_psi(self: HostPsiSource) -> None:
        raise SourceUnavailable("no /proc/pressure (kernel without PSI)")

    monkeypatch.setattr(HostPsiSource, "open", no_psi)
    # the perf source's shape: ``unavailable`` maps metric -> reason (hardware events without a PMU)
    monkeypatch.setattr(HostCpuSource, "unavailable", {"host_cpu_fake_cycles_total": "ENOENT (no PMU)"},
                        raising=False)  # fmt: skip
    roots = fixture_roots("v2")
    config = CollectorConfig(
        out=tmp_path / "out", cgroups=("lab/a",), interval=FAST, duration=0.4, roots=roots, sources=NO_PERF
    )
    collector = run(config)
    assert "host_psi" in collector.unavailable
    me = scan_telemetry(tmp_path / "out", "collector").collect()
    psi_metrics = len(HostPsiSource(roots).specs())
    assert me["collector_source_host_psi_unavailable_metrics"].to_list() == [float(psi_metrics)] * me.height
    assert me["collector_source_host_cpu_unavailable_metrics"].max() == 1.0
    assert me["collector_source_cgroup_v2_unavailable_metrics"].max() == 0.0
    reasons = telemetry_unavailable(tmp_path / "out")
    assert reasons["host_cpu"] == {"host_cpu_fake_cycles_total": "ENOENT (no PMU)"}
    assert len(reasons["host_psi"]) == psi_metrics
    assert set(reasons["host_psi"].values()) == {"no /proc/pressure (kernel without PSI)"}
