"""Real cgroups on this host: limits written, processes and their children joined, everything killed."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from cotenant.datasets.lab.cgroups import Cgroup, detect_hierarchy, kill_tree, pid_alive

pytestmark = pytest.mark.live


def test_cgroup_limits_join_and_kill() -> None:
    hierarchy = detect_hierarchy()
    # Not under the lab prefix: a lab starting meanwhile must not mistake it for a leftover.
    group = f"cotenant-labtest-{os.getpid()}"
    cgroup = Cgroup(hierarchy, f"{group}/r0001/target")
    cgroup.create(cpus=0.5, memory_mib=64)
    try:
        if hierarchy.pure_v2:
            assert hierarchy.unified is not None
            assert (hierarchy.unified / cgroup.relative / "cpu.max").read_text().split() == [
                "50000",
                "100000",
            ]
            assert int((hierarchy.unified / cgroup.relative / "memory.max").read_text()) == 64 * 2**20
        else:
            cpu = hierarchy.v1["cpu"] / cgroup.relative
            assert int((cpu / "cpu.cfs_quota_us").read_text()) == 50_000
            assert int((cpu / "cpu.cfs_period_us").read_text()) == 100_000
            memory = hierarchy.v1["memory"] / cgroup.relative / "memory.limit_in_bytes"
            assert int(memory.read_text()) == 64 * 2**20
        process = subprocess.Popen(
            ["sh", "-c", "sleep 60 & sleep 60; wait"],
            start_new_session=True,
            preexec_fn=lambda: cgroup.join(os.getpid()),
        )
        deadline = time.monotonic() + 5
        while len(cgroup.pids()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = cgroup.pids()
        assert process.pid in pids and len(pids) >= 3  # the shell and both forked sleeps
        for directory in hierarchy.directories(cgroup.relative):
            assert {int(p) for p in (directory / "cgroup.procs").read_text().split()} == pids
    finally:
        kill_tree(hierarchy, group)
    process.wait(timeout=5)
    assert not any(pid_alive(pid) for pid in pids - {process.pid})
    assert not any(directory.exists() for directory in hierarchy.directories(group))


def test_a_removed_cgroup_gives_back_the_page_cache_it_was_charged() -> None:
    from cotenant.datasets.lab.cgroups import release_memory

    hierarchy = detect_hierarchy()
    group = f"cotenant-labtest-{os.getpid()}-cache"
    cgroup = Cgroup(hierarchy, f"{group}/r0001/target")
    cgroup.create(cpus=1.0, memory_mib=256)
    memory = (hierarchy.unified if hierarchy.pure_v2 else hierarchy.v1["memory"]) / cgroup.relative
    usage = memory / ("memory.current" if hierarchy.pure_v2 else "memory.usage_in_bytes")
    target = f"/tmp/cotenant-labtest-{os.getpid()}.bin"
    try:
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={target}", "bs=1M", "count=16", "conv=fsync", "status=none"],
            preexec_fn=lambda: cgroup.join(os.getpid()),
            check=True,
        )
        before = int(usage.read_text())
        assert before >= 12 * 2**20  # the file's pages stay charged to the cgroup after dd exits
        release_memory(memory)
        assert int(usage.read_text()) < before - 12 * 2**20
    finally:
        kill_tree(hierarchy, group)
        os.unlink(target)
    assert not any(directory.exists() for directory in hierarchy.directories(group))
