"""A small lab output directory written in the documented format (used by the datasets tests).

The format is docs/architecture.md section 2: runs.jsonl (one RunRecord per line) + the collector's hive
telemetry (``telemetry/table=cgroup|host/*.parquet`` with ``timestamp`` Datetime(ms, UTC), ``target``, Float64
metrics). Values are chosen so the expected RunTable can be computed by hand in the tests.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
RUN_SECONDS = 10
CGROUP_METRICS = ["cpu_usage_seconds_per_second", "memory_current_bytes"]
HOST_METRICS = ["cpu_busy_ratio", "psi_cpu_some_ratio"]

# (run_id, kind, application, config_key, neighbour config keys, n neighbour cgroups, performance, repeat)
RUNS: list[tuple[str, str, str, str, list[str], int, float, int]] = [
    ("r0001", "solo", "alpha", "alpha/static/l1", [], 0, 100.0, 0),
    ("r0002", "solo", "alpha", "alpha/static/l1", [], 0, 104.0, 1),
    ("r0003", "solo", "beta", "beta/static/l1", [], 0, 50.0, 0),
    ("r0004", "solo", "beta", "beta/static/l1", [], 0, 50.0, 1),
    ("r0005", "neighbour_solo", "stress-cache", "stress-cache/l2", [], 0, 1.0, 0),
    ("r0006", "corun", "alpha", "alpha/static/l1", ["stress-cache/l2"], 1, 51.0, 0),
    ("r0007", "corun", "beta", "beta/static/l1", ["stress-cache/l2", "alpha/static/l1"], 2, 40.0, 0),
    ("r0008", "corun", "alpha", "alpha/static/l1", [], 0, 102.0, 0),
]


def cgroup_value(run: int, role: int, second: int, metric: int) -> float:
    """Deterministic telemetry: role 0 = target, 1.. = neighbours (tests recompute expected means)."""
    return float(run * 100 + role * 10 + metric) + second / 100


def write_lab_dir(root: Path, records: list[dict[str, Any]] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    host_rows: list[dict[str, Any]] = []
    lines = []
    for i, (run_id, kind, app, key, neighbours, n_cg, perf, repeat) in enumerate(RUNS):
        start = T0 + timedelta(seconds=i * (RUN_SECONDS + 5))
        target = f"cotenant-lab/{run_id}/target"
        neighbour_cgroups = [f"cotenant-lab/{run_id}/n{j}" for j in range(n_cg)]
        lines.append(
            {
                "run_id": run_id,
                "kind": kind,
                "application": app,
                "config_key": key,
                "scenario": "static",
                "load": "level 1",
                "schedule": None,
                "neighbours": neighbours,
                "repeat": repeat,
                "started_at": start.isoformat(),
                "ended_at": (start + timedelta(seconds=RUN_SECONDS)).isoformat(),
                "cgroups": {"target": target, "neighbours": neighbour_cgroups},
                "performance": perf,
                "performance_unit": "ops/s",
                "higher_is_better": True,
            }
        )
        # Two seconds either side of the window: the join must cut them off.
        for second in range(-2, RUN_SECONDS + 2):
            ts = start + timedelta(seconds=second)
            for role, cgroup in enumerate([target, *neighbour_cgroups]):
                values = {m: cgroup_value(i, role, second, k) for k, m in enumerate(CGROUP_METRICS)}
                rows.append({"timestamp": ts, "target": cgroup} | values)
    for second in range(len(RUNS) * (RUN_SECONDS + 5) + 5):
        ts = T0 + timedelta(seconds=second - 2)
        host_rows.append(
            {"timestamp": ts, "target": "host", HOST_METRICS[0]: second / 1000, HOST_METRICS[1]: 0.5}
        )
    for table, data in (("cgroup", rows), ("host", host_rows)):
        frame = pl.DataFrame(data).with_columns(pl.col("timestamp").dt.cast_time_unit("ms"))
        half = frame.height // 2  # two segments, as the collector rotates them
        folder = root / "telemetry" / f"table={table}"
        folder.mkdir(parents=True, exist_ok=True)
        frame.slice(0, half).write_parquet(folder / "part-0000.parquet", compression="zstd")
        frame.slice(half).write_parquet(folder / "part-0001.parquet", compression="zstd")
    (root / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records or lines))
    (root / "plan.yaml").write_text("name: tiny\nseed: 1\ntargets: [alpha, beta]\n")
    return root
