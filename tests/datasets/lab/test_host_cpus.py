"""A plan's ``host_cpus``: every run measured on that many CPUs (a node of that size), refused up front when
the machine has fewer, and nothing left behind in the cpuset hierarchy."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml
from cotenant.datasets.lab.cgroups import LAB_PREFIX, detect_hierarchy, with_cpuset
from cotenant.datasets.lab.plan import load_plan
from cotenant.datasets.lab.records import read_journal
from cotenant.datasets.lab.session import LabError, lab_id, run_lab

# Prints how many CPUs the kernel lets it run on.
COUNT_CPUS = {
    "command": [sys.executable, "-c", "import os; print('cpus:', len(os.sched_getaffinity(0)))"],
    "metric": r"cpus: (\d+)",
    "unit": "cpus",
}


def plan_with(tmp_path: Path, host_cpus: int | None) -> Path:
    plan = {
        "name": "host-cpus",
        "duration_s": 2,
        "solo_repeats": 2,
        "quiet": {"max_wait_s": 0, "window_s": 0.1},
        "commands": {"count_cpus": COUNT_CPUS},
        "targets": [{"workload": "count_cpus", "levels": [1]}],
        "host_cpus": host_cpus,
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_more_host_cpus_than_the_machine_has_is_refused_before_anything_starts(tmp_path: Path) -> None:
    out = tmp_path / "lab"
    too_many = (os.cpu_count() or 1) + 1
    with pytest.raises(LabError, match=rf"host_cpus: {too_many} CPUs asked for, this machine has"):
        run_lab(plan_with(tmp_path, too_many), out, telemetry=False)
    assert not (out / "plan.yaml").exists() and not (out / "runs.jsonl").exists()


@pytest.mark.live
@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="pinning to fewer CPUs needs two or more")
@pytest.mark.parametrize("host_cpus", [1, None])
def test_every_run_sees_only_the_host_cpus_and_records_them(tmp_path: Path, host_cpus: int | None) -> None:
    out = tmp_path / "lab"
    plan = plan_with(tmp_path, host_cpus)
    # telemetry on, as campaigns run: the collector, pinned to no node, must still join its own cgroup
    result = run_lab(plan, out, telemetry=True, allow_concurrent=True)
    records = read_journal(out / "runs.jsonl")
    assert result.done == len(records) == 2 and not result.failed
    seen = host_cpus or len(os.sched_getaffinity(0))
    assert [record.performance for record in records] == [seen, seen]
    assert all(record.host_cores == host_cpus for record in records)
    # The pinned runs' cpusets are removed with the rest of the lab's cgroups.
    hierarchy = with_cpuset(detect_hierarchy())
    mounts = [*hierarchy.v1.values(), *([hierarchy.unified] if hierarchy.unified else [])]
    group = LAB_PREFIX + lab_id(load_plan(plan), out.resolve())
    assert not [mount / group for mount in mounts if (mount / group).exists()]
