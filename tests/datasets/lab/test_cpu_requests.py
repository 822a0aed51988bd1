"""A plan's ``cpu_request``: each tenant's cgroup weighed as kubelet weighs a pod by its CPU request, and
every run recording the weights it ran with."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from cotenant.datasets.lab.cgroups import detect_hierarchy, kubelet_cpu_shares, v2_weight
from cotenant.datasets.lab.plan import PlanError, load_plan, neighbour_configs, target_configs
from cotenant.datasets.lab.records import read_journal
from cotenant.datasets.lab.session import run_lab
from cotenant.datasets.sources.lab_records import records_frame

# Prints the CPU weight of the cgroup it runs in (cgroup v2 cpu.weight, else v1 cpu.shares).
READ_WEIGHT = """
import pathlib
lines = pathlib.Path('/proc/self/cgroup').read_text().splitlines()
unified = [line.split(':', 2)[2] for line in lines if line.startswith('0::')]
v1 = [line.split(':', 2) for line in lines if 'cpu' in line.split(':', 2)[1].split(',')]
if v1:
    controllers, path = v1[0][1], v1[0][2]
    value = pathlib.Path('/sys/fs/cgroup', controllers, path.lstrip('/'), 'cpu.shares').read_text()
else:
    value = pathlib.Path('/sys/fs/cgroup', unified[0].lstrip('/'), 'cpu.weight').read_text()
print('weight:', value.strip())
"""
WEIGHT = {"command": [sys.executable, "-c", READ_WEIGHT], "metric": r"weight: (\d+)", "unit": "weight"}


def write_plan(tmp_path: Path, **overrides: Any) -> Path:
    plan: dict[str, Any] = {
        "name": "cpu-requests",
        "duration_s": 2,
        "solo_repeats": 1,
        "neighbour_solo": False,
        "quiet": {"max_wait_s": 0, "window_s": 0.1},
        "commands": {"weight": WEIGHT},
        "targets": [
            {"workload": "weight", "levels": [1], "cpu_request": 0.2},
            {"workload": "weight", "levels": [2]},
        ],
        "neighbours": {"small": {"workload": "weight", "level": 3, "cpu_request": 0.04}},
        "coruns": {"count": 2, "sizes": [1]},
        **overrides,
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_a_cpu_request_becomes_kubelets_shares_and_none_leaves_the_default(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path))
    assert [config.cpu_shares for config in target_configs(plan)] == [204, None]
    assert neighbour_configs(plan)["small"].cpu_shares == 40  # 40 milli-CPUs x 1024 // 1000
    # the weight is not part of a configuration: its solo references are the same runs either way
    assert target_configs(plan)[0].config_key == "weight/level=1/cpus=1/mem=1024"


def test_a_request_of_no_cpu_is_refused_naming_the_field(tmp_path: Path) -> None:
    targets = [{"workload": "weight", "levels": [1], "cpu_request": 0}]
    with pytest.raises(PlanError, match=r"targets\.0\.cpu_request"):
        load_plan(write_plan(tmp_path, targets=targets))


@pytest.mark.live
def test_every_run_runs_at_its_weights_and_records_them(tmp_path: Path) -> None:
    out = tmp_path / "lab"
    result = run_lab(write_plan(tmp_path), out, telemetry=False, allow_concurrent=True)
    records = {(r.kind, r.config_key): r for r in read_journal(out / "runs.jsonl")}
    assert result.done == len(records) == 4 and not result.failed
    v2 = detect_hierarchy().pure_v2

    def seen(shares: int | None) -> float:
        """What a program reads from its own cgroup at these shares (None: the kernel's default)."""
        if shares is None:
            return 100.0 if v2 else 1024.0
        return float(v2_weight(shares) if v2 else shares)

    weighted, plain = "weight/level=1/cpus=1/mem=1024", "weight/level=2/cpus=1/mem=1024"
    small = kubelet_cpu_shares(0.04)
    # the program in each cgroup reads the weight the plan gave it
    assert records[("solo", weighted)].performance == seen(204)
    assert records[("corun", plain)].performance == seen(None)
    assert records[("solo", weighted)].cpu_shares == [204]
    assert records[("solo", plain)].cpu_shares is None
    assert records[("corun", weighted)].cpu_shares == [204, small]
    assert records[("corun", plain)].cpu_shares == [None, small]
    frame = records_frame(list(records.values()))
    assert frame.schema["cpu_shares"] == pl.List(pl.Int64)
    assert sorted(frame["cpu_shares"].to_list(), key=str) == sorted(
        [[204], None, [204, small], [None, small]], key=str
    )
