"""CPU weights from requests, as kubelet sets them: its arithmetic, and what the kernel does with them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cotenant.datasets.lab.cgroups import (
    Cgroup,
    CgroupHierarchy,
    detect_hierarchy,
    kill_tree,
    kubelet_cpu_shares,
    v2_weight,
)


def test_kubelet_shares_and_their_v2_weights_match_kubernetes() -> None:
    # pkg/kubelet/cm MilliCPUToShares: 1024 per CPU, at least 2 (a zero request), at most 262144
    assert kubelet_cpu_shares(1.0) == 1024
    assert kubelet_cpu_shares(0.1) == 102
    assert kubelet_cpu_shares(0.2) == 204
    assert kubelet_cpu_shares(0.0) == 2
    assert kubelet_cpu_shares(0.001) == 2  # 1 milli-CPU: 1.024 shares, raised to the minimum
    assert kubelet_cpu_shares(1000.0) == 262_144
    # the runtimes' shares -> cgroup v2 cpu.weight: a whole CPU's 1024 shares is weight 39
    assert (v2_weight(2), v2_weight(1024), v2_weight(262_144)) == (1, 39, 10_000)


def cpu_seconds(hierarchy: CgroupHierarchy, relative: str) -> float:
    if hierarchy.pure_v2:
        assert hierarchy.unified is not None
        stat = (hierarchy.unified / relative / "cpu.stat").read_text().split()
        return int(stat[stat.index("usage_usec") + 1]) / 1e6
    accounting = hierarchy.v1.get("cpuacct", hierarchy.v1["cpu"]) / relative / "cpuacct.usage"
    return int(accounting.read_text()) / 1e9


def joiner(cgroup: Cgroup) -> Callable[[], None]:
    return lambda: cgroup.join(os.getpid())


@pytest.mark.live
@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_on_one_busy_cpu_the_larger_request_gets_the_larger_share() -> None:
    hierarchy = detect_hierarchy()
    # Not under the lab prefix: a lab starting meanwhile must not mistake it for a leftover.
    group = f"cotenant-labtest-{os.getpid()}-weights"
    service = Cgroup(hierarchy, f"{group}/host/service")
    batch = Cgroup(hierarchy, f"{group}/host/batch")
    service.create(cpus=1.0, memory_mib=64, cpu_shares=kubelet_cpu_shares(0.2))
    batch.create(cpus=1.0, memory_mib=64, cpu_shares=kubelet_cpu_shares(0.04))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if hierarchy.pure_v2:
            assert hierarchy.unified is not None
            assert (hierarchy.unified / service.relative / "cpu.weight").read_text().strip() == "8"
        else:
            assert (hierarchy.v1["cpu"] / service.relative / "cpu.shares").read_text().strip() == "204"
        cpu = str(max(os.sched_getaffinity(0)))
        for cgroup in (service, batch):
            processes.append(
                subprocess.Popen(
                    ["taskset", "-c", cpu, "sh", "-c", "while :; do :; done"], preexec_fn=joiner(cgroup)
                )
            )
        roles = {"service": service, "batch": batch}
        time.sleep(0.5)
        start = {name: cpu_seconds(hierarchy, c.relative) for name, c in roles.items()}
        time.sleep(2.0)
        used = {name: cpu_seconds(hierarchy, c.relative) - start[name] for name, c in roles.items()}
    finally:
        kill_tree(hierarchy, group)
        for process in processes:
            process.wait(timeout=5)
    # 204 against 40 shares: about 5 to 1 on the shared CPU (equal weights would give 1 to 1)
    assert used["service"] > 3 * used["batch"] > 0, used
    assert not any(Path(d).exists() for d in hierarchy.directories(group))
