"""The fleet benchmark runs from a clean checkout: one short real run of both kinds of deployment.

Real ``bentoml serve`` replicas, a real Redis for the shared one, seeded champions (no ``var/mlflow.db``
in the working directory). Figures are never asserted (the benchmark prints them): only that every row is
measured from real traffic, that the shared deployment reports Redis and the embedded one does not, and
that nothing is left running.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet.py"


def serving_processes() -> set[int]:
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "bentoml" in command or "redis-server" in command:
            found.add(process.pid)
    return found


@pytest.mark.slow
def test_a_short_fleet_run_measures_both_deployments_and_leaves_nothing_running(tmp_path: Path) -> None:
    before = serving_processes()
    rows_file = tmp_path / "rows.json"
    finished = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--nodes", "4,8", "--deployments", "1,2s", "--pods", "3", "--push-interval", "1"),
            *("--seconds", "3", "--ingest-seconds", "2", "--rate", "10", "--candidates", "6"),
            *("--json", str(rows_file)),
        ],
        cwd=tmp_path,  # no var/mlflow.db here: the benchmark seeds its own champions
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    rows = json.loads(rows_file.read_text())
    deployments = {row["deployment"] for row in rows}
    assert deployments == {"1", "2s"}, finished.stdout
    for row in rows:
        assert row["pushes_achieved"] > 0.5 and row["push_errors"] == 0, row
        assert row["extender_calls"] > 0 and row["extender_p99_ms"] >= row["extender_p50_ms"] > 0, row
        assert row["noop_p99_ms"] > 0 and row["ingest_cores"] > 0 and row["rss_mib"] > 0, row
        assert row["push_kb"] > 0, row
        shared = row["deployment"] == "2s"
        assert (row["redis_mib"] is not None) == shared, row
        assert ("redis_ping_us" in row) == shared, row
    for name in deployments:
        assert f"{name}: largest sustained fleet" in finished.stdout
    assert serving_processes() <= before, "a replica, the no-op endpoint or Redis was left running"
