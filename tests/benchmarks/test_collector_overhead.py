"""The overhead benchmark's helpers, and one short real run that must print its table and clean up.

Figures are never asserted (the benchmark prints them); only that they are produced and the cleanup happens.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "collector_overhead.py"


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("collector_overhead", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_prometheus_sample_count_and_process_stat() -> None:
    bench = load_benchmark()
    exposition = (
        "# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.5\n\n"
        'node_cpu_seconds_total{cpu="0",mode="idle"} 12.5\nnode_cpu_seconds_total{cpu="0",mode="user"} 3\n'
    )
    assert bench.count_prometheus_samples(exposition) == 3
    before = bench.process_cpu_seconds(os.getpid())
    sum(i * i for i in range(300_000))  # some CPU so that the reading can only grow
    assert bench.process_cpu_seconds(os.getpid()) >= before > 0
    assert bench.process_rss_bytes(os.getpid()) > 1 << 20
    assert bench.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert bench.parse_args(["--duration", "5", "--window", "10"]).window_s == 5
    assert bench.parse_args([]).warmup_s > bench.parse_args([]).segment_s, "warm-up covers the first flush"
    config = bench.parse_args(["--window", "30"])  # two windows a minute
    assert bench.rss_peaks([5, 9, 6, 7, 8, 4], config) == (9, 8)
    assert bench.rss_minutes([2**20, 3 * 2**20, 2 * 2**20], config) == "3 2"


def bench_cgroups() -> set[str]:
    found: set[str] = set()
    for hierarchy in Path("/sys/fs/cgroup").glob("*"):
        found.update(f"{hierarchy.name}/{p.name}" for p in hierarchy.glob("cotenant-overhead-*"))
    return found


def test_the_ingest_sink_counts_what_a_collector_pushes() -> None:
    """The push mode's figures: values and targets per tick, and those inside the measured window."""
    import httpx

    bench = load_benchmark()
    sink = bench.IngestSink()
    try:
        ticks = ["2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00", "2026-01-01T00:00:02+00:00"]
        for tick in ticks:
            samples = [
                {"timestamp": tick, "target": "host", "metrics": {"a": 1.0, "b": 2.0, "c": 3.0}},
                {"timestamp": tick, "target": "pod", "metrics": {"a": 1.0}},
            ]
            body = {"host": "n", "samples": samples}
            reply = httpx.post(f"{sink.url}/ingest", json=body, timeout=5)
            assert reply.status_code == 200 and reply.json() == {"accepted": 2, "summaries": 0}
        start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
        figures = sink.figures((start + 1, start + 3))
        # What the agent's --compact mode asks: a schema of every per-cgroup metric it has pushed raw.
        schema = httpx.post(f"{sink.url}/feature_schema", timeout=5).json()
        assert schema["metrics"] == ["a"] and schema["values_per_target"] == 3
        compact = {
            "host": "n",
            "samples": [],
            "schema_id": schema["schema_id"],
            "summaries": [{"target": "pod"}],
        }
        assert httpx.post(f"{sink.url}/ingest", json=compact, timeout=5).json()["summaries"] == 1
        assert sink.figures((start, start))["compact_bytes_per_target_push"] == len(
            json.dumps({"target": "pod"})
        )
    finally:
        sink.close()
    raw_bytes = figures.pop("raw_bytes_per_target_push")
    assert 50 < raw_bytes < 200  # one push of two targets, about a hundred bytes of JSON each
    assert figures == {
        "values_per_sample": 4,
        "targets_per_sample": 2,
        "values_in_window": 8.0,
        "samples_in_window": 2.0,
    }


@pytest.mark.live
@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--push"]], ids=["parquet", "push"])
def test_short_run_prints_both_columns_and_cleans_up(mode: list[str]) -> None:
    if shutil.which("prometheus-node-exporter") is None or shutil.which("stress-ng") is None:
        pytest.skip("needs prometheus-node-exporter and stress-ng")
    before = bench_cgroups()
    arguments = ["--cgroups", "2", "--duration", "6", "--warmup", "6", "--window", "3", *mode]
    run = subprocess.Popen(
        [sys.executable, str(SCRIPT), *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = run.communicate(timeout=300)  # start-up is slow on a loaded machine
    except subprocess.TimeoutExpired:
        run.send_signal(signal.SIGTERM)  # the script's own cleanup, never SIGKILL (it would leak cgroups)
        stdout, stderr = run.communicate(timeout=60)
    assert bench_cgroups() == before
    assert run.returncode == 0, stderr[-2000:]
    assert "node_exporter" in stdout and "cotenant collect" in stdout
    values_row = next(line for line in stdout.splitlines() if "metric values per sample" in line)
    cells = [cell.strip() for cell in values_row.split("│") if cell.strip()]
    assert all(float(cell) > 0 for cell in cells[1:3]), stdout + stderr  # both sides sampled
