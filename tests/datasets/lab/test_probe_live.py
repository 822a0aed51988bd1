"""``cotenant lab probe``: a real workload measured against each calibrated aggressor and by each victim."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cotenant.datasets.lab.probes import default_aggressors, default_victims, pressure_feature, probe_feature
from cotenant.datasets.lab.records import read_journal

pytestmark = [pytest.mark.live, pytest.mark.slow]


def test_probe_onboards_a_workload(tmp_path: Path) -> None:
    out = tmp_path / "probe"
    command = [
        sys.executable,
        "-m",
        "cotenant.datasets.lab.cli",
        "probe",
        "sysbench_cpu",
        "--out",
        str(out),
        "--duration-s",
        "2",
        "--solo-repeats",
        "2",
        "--no-telemetry",
        "--allow-concurrent",
        "--max-wait-s",
        "0",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "probes.json").read_text())
    (sensitivity,) = result["sensitivity"]
    assert sensitivity["application"] == "sysbench_cpu"
    expected = {
        probe_feature(resource, level)
        for resource, spec in default_aggressors().items()
        for level in spec.levels
    }
    assert set(sensitivity) - {"application"} == expected
    assert all(0 < sensitivity[name] <= 1 for name in expected)
    pressing = {row["config_key"]: row for row in result["pressure"]}
    row = pressing["sysbench_cpu/level=1/cpus=1/mem=1024"]
    assert {name for name in row if name != "config_key"} == {
        pressure_feature(resource) for resource in default_victims()
    }
    assert all(0 < row[name] <= 1 for name in row if name != "config_key")
    # The probe plan is kept beside the journal, and every run recorded the host's load before it.
    records = read_journal(out / "runs.jsonl")
    assert (out / "plan.yaml").exists()
    assert {record.kind for record in records} == {"solo", "probe", "pressure"}
    assert all(record.background is not None for record in records)
