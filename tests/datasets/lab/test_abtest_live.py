"""The A/B test's hosts on real cgroups: each host pinned to its own CPU, every tenant measured at once,
everything removed afterwards."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from cotenant.datasets.lab.abtest import AbTestPlan
from cotenant.datasets.lab.abtest_run import Cluster, measure_together
from cotenant.datasets.lab.cgroups import detect_hierarchy, with_cpuset
from cotenant.datasets.lab.session import start_collector, stop_collector

pytestmark = [pytest.mark.live, pytest.mark.slow]

# Reports the CPUs the kernel lets it run on, spins for its seconds, and prints when it spun (the system-wide
# monotonic clock) and the CPU time it got. CPU time, not loops done: a machine busy elsewhere can only lower
# it, never lift two tenants sharing one CPU above that CPU's worth over the time they ran.
PINNED = {
    "command": [
        sys.executable,
        "-c",
        "import time\n"
        "start = time.monotonic()\n"
        "print(open('/proc/self/status').read())\n"
        "while time.monotonic() < start + {seconds}:\n"
        "    pass\n"
        "print('window:', start, time.monotonic())\n"
        "print('cpu_ms:', round(time.process_time() * 1000))\n",
    ],
    "metric": r"cpu_ms: (\d+)",
    "unit": "ms",
}


def two_hosts(tenants: tuple[str, ...]) -> Cluster:
    """Two hosts of one CPU each, and tenants running ``PINNED`` for 3 s."""
    plan = AbTestPlan.model_validate(
        {
            "name": "live",
            "hosts": {"count": 2, "cpus": 1, "memory_mib": 512},
            "duration_s": 3,
            "warmup_s": 0,
            "commands": {"pinned": PINNED},
            "tenants": [
                {"name": name, "workload": "pinned", "level": 1, "requests": {"cpus": 0.5, "memory_mib": 64}}
                for name in tenants
            ],
        }
    )
    # Not under the lab prefix: a lab starting meanwhile must not mistake it for a leftover.
    return Cluster(plan, with_cpuset(detect_hierarchy()), f"cotenant-abtest-test-{os.getpid()}")


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two hosts need two CPUs")
def test_hosts_are_disjoint_cpus_and_tenants_are_measured_together(tmp_path: Path) -> None:
    cluster = two_hosts(("a", "b", "c"))
    plan = cluster.plan
    tenants = {t.name: t for t in plan.tenants}
    cluster.create()
    try:
        started = time.monotonic()
        results = measure_together(
            cluster,
            {"host-1": [tenants["a"], tenants["b"]], "host-2": [tenants["c"]]},
            tmp_path / "scratch",
            tmp_path / "logs",
        )
        elapsed = time.monotonic() - started
    finally:
        cluster.remove()
    assert set(results) == {"a", "b", "c"} and all(value > 0 for value in results.values())
    assert elapsed < 3 * plan.duration_s + 5  # measured together, not one after another
    logs = {name: (tmp_path / "logs" / f"{name}-phase0.log").read_text() for name in results}
    allowed = {name: log.split("Cpus_allowed_list:")[1].split()[0] for name, log in logs.items()}
    assert allowed == {"a": "0", "b": "0", "c": "1"}
    # a and b share one CPU: together they got at most that CPU's time over the span they ran (unpinned,
    # three spinning tenants on two CPUs would give the pair a third more); the slack is interpreter start-up
    windows = [[float(x) for x in logs[name].split("window:")[1].split()[:2]] for name in ("a", "b")]
    span_s = max(end for _, end in windows) - min(start for start, _ in windows)
    assert results["a"] + results["b"] <= 1000 * (span_s * 1.05 + 0.15)
    assert not any(d.exists() for d in cluster.hierarchy.directories(cluster.group))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two hosts need two CPUs")
def test_a_collector_starts_beside_pinned_hosts(tmp_path: Path) -> None:
    """The test's collectors (the solo references' and each host's agent) run in the cluster's group on no
    node: beside hosts pinned through a cpuset, where a new cgroup takes no process until its CPUs are set."""
    cluster = two_hosts(("a",))
    cluster.create()
    try:
        collector = start_collector(
            cluster.hierarchy, cluster.group, tmp_path / "telemetry", tmp_path / "log"
        )
        try:
            assert collector.poll() is None, (tmp_path / "log").read_text()
            assert "collecting" in (tmp_path / "log").read_text()
        finally:
            stop_collector(collector)
    finally:
        cluster.remove()
    assert not any(d.exists() for d in cluster.hierarchy.directories(cluster.group))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two hosts need two CPUs")
def test_with_cpu_weights_from_requests_a_host_shares_its_cpu_as_kubelet_would(tmp_path: Path) -> None:
    """``cpu_weights: requests``: two spinning tenants on one host's CPU share it by their requests (0.8
    against 0.2 CPU: 819 against 204 shares, about 4 to 1), where equal weights would split it evenly."""
    plan = AbTestPlan.model_validate(
        {
            "name": "weights",
            "hosts": {"count": 2, "cpus": 1, "memory_mib": 512},
            "duration_s": 3,
            "warmup_s": 0,
            "cpu_weights": "requests",
            "commands": {"pinned": PINNED},
            "tenants": [
                {"name": name, "workload": "pinned", "level": 1, "requests": {"cpus": cpus, "memory_mib": 64}}
                for name, cpus in (("large", 0.8), ("small", 0.2))
            ],
        }
    )
    cluster = Cluster(plan, with_cpuset(detect_hierarchy()), f"cotenant-abtest-test-{os.getpid()}-weights")
    cluster.create()
    try:
        results = measure_together(
            cluster, {"host-1": list(plan.tenants), "host-2": []}, tmp_path / "scratch", tmp_path / "logs"
        )
    finally:
        cluster.remove()
    assert results["large"] > 2.5 * results["small"] > 0, results
