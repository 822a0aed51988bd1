"""cgroup v1 CPU-side controllers per target: cpuacct (also per CPU), cpu (CFS quota), cpuset, pids.

Hybrid hosts (like the lab machine) keep these in v1 hierarchies; pure-v2 hosts have none, so every column of
this source is null there and ``cgroup_v2`` carries the equivalents.
"""

from __future__ import annotations

import functools
import os

from cotenant.collectors.base import (
    CGROUP_SOURCES,
    CgroupSource,
    CgroupTarget,
    MetricGroup,
    MetricSpec,
    counter,
    gauge,
    parse_flat_keyed,
    read_cgroup_files,
)
from cotenant.collectors.keyed import keyed_parser

SOURCE = "cgroup_v1_cpu"
P = "cgroup_v1_"
CPU, OTHER = MetricGroup.CPU, MetricGroup.OTHER
USER_HZ = 100.0  # cpuacct.stat is in USER_HZ ticks, 100 on every Linux ABI we run on

CPU_STAT = {
    "nr_periods": ("cpu_periods_total", 1.0, "periods", "CFS bandwidth periods elapsed"),
    "nr_throttled": ("cpu_throttled_periods_total", 1.0, "periods", "CFS periods in which it was throttled"),
    "throttled_time": ("cpu_throttled_seconds_total", 1e-9, "seconds", "time throttled by the CFS quota"),
    "nr_bursts": ("cpu_bursts_total", 1.0, "periods", "CFS periods that used burst"),
    "burst_time": ("cpu_burst_seconds_total", 1e-9, "seconds", "CPU time used in burst"),
}


def cpu_count_from_procfs(stat_text: str) -> int:
    return sum(1 for line in stat_text.splitlines() if line.startswith("cpu") and line[3:4].isdigit())


def _specs(cpus: int) -> list[MetricSpec]:
    specs = [
        counter(P + "cpuacct_usage_seconds_total", "seconds", SOURCE, CPU, "CPU time used (cpuacct.usage)"),
        counter(P + "cpuacct_user_seconds_total", "seconds", SOURCE, CPU, "CPU time in user mode"),
        counter(P + "cpuacct_system_seconds_total", "seconds", SOURCE, CPU, "CPU time in kernel mode"),
        counter(P + "cpuacct_stat_user_seconds_total", "seconds", SOURCE, CPU, "user time (cpuacct.stat)"),
        counter(
            P + "cpuacct_stat_system_seconds_total", "seconds", SOURCE, CPU, "system time (cpuacct.stat)"
        ),
    ]
    for cpu in range(cpus):
        for mode in ("user", "system"):
            specs.append(
                counter(
                    f"{P}cpuacct_cpu{cpu}_{mode}_seconds_total",
                    "seconds",
                    SOURCE,
                    CPU,
                    f"{mode} time on CPU {cpu}",
                )
            )
    specs += [counter(P + m, u, SOURCE, CPU, d) for m, _, u, d in CPU_STAT.values()]
    specs += [
        counter(
            P + "cpu_local_throttled_seconds_total",
            "seconds",
            SOURCE,
            CPU,
            "own throttled time (cpu.stat.local)",
        ),
        gauge(P + "cpu_quota_cores", "cores", SOURCE, CPU, "cfs_quota_us / cfs_period_us (null = no limit)"),
        gauge(P + "cpu_period_seconds", "seconds", SOURCE, CPU, "CFS bandwidth period"),
        gauge(P + "cpu_shares", "shares", SOURCE, CPU, "relative CPU weight (cpu.shares)"),
        gauge(P + "cpuset_cpus", "cpus", SOURCE, CPU, "CPUs the cgroup may run on"),
        gauge(P + "cpuset_mems", "nodes", SOURCE, OTHER, "memory nodes the cgroup may allocate on"),
        gauge(P + "pids_current", "tasks", SOURCE, OTHER, "tasks in the cgroup (pids.current)"),
        gauge(P + "pids_max", "tasks", SOURCE, OTHER, "task limit (null = no limit)"),
        counter(P + "pids_max_events_total", "events", SOURCE, OTHER, "forks refused by the pids limit"),
    ]
    return specs


@functools.cache
def _per_cpu_columns(cpu: str) -> tuple[str, str]:
    return f"{P}cpuacct_cpu{cpu}_user_seconds_total", f"{P}cpuacct_cpu{cpu}_system_seconds_total"


def parse_cpuacct_usage_all(text: str) -> dict[str, float]:
    """``cpu user system`` in nanoseconds per CPU, and their sums over CPUs.

    The sums are what ``cpuacct.usage_user`` / ``cpuacct.usage_sys`` report (the kernel adds the same
    per-CPU values), so those two files are not read. ``cpuacct.usage`` is: on current kernels it is the
    precise run time while user/system are tick-sampled, so it is not their sum.
    """
    values: dict[str, float] = {}
    user_total = system_total = 0.0
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            user, system = float(parts[1]), float(parts[2])
            user_name, system_name = _per_cpu_columns(parts[0])
            values[user_name], values[system_name] = user * 1e-9, system * 1e-9
            user_total += user
            system_total += system
    if values:
        values[P + "cpuacct_user_seconds_total"] = user_total * 1e-9
        values[P + "cpuacct_system_seconds_total"] = system_total * 1e-9
    return values


def parse_cpuacct_stat(text: str) -> dict[str, float]:
    raw = parse_flat_keyed(text)
    return {
        f"{P}cpuacct_stat_{k}_seconds_total": v / USER_HZ for k, v in raw.items() if k in ("user", "system")
    }


parse_cpu_stat = keyed_parser({k: (P + metric, scale) for k, (metric, scale, _, _) in CPU_STAT.items()})


def parse_cpu_list(text: str) -> int:
    """Size of a kernel CPU list such as ``0-3,8,10-11``."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def _scaled(name: str, scale: float):
    def parse(text: str) -> dict[str, float]:
        value = text.strip()
        return {} if value in ("max", "-1") else {name: float(value) * scale}

    return parse


def parse_quota(quota_text: str, period_text: str) -> dict[str, float]:
    quota, period = float(quota_text), float(period_text)
    return {} if quota < 0 or period <= 0 else {P + "cpu_quota_cores": quota / period}


CPUACCT_FILES = {
    "cpuacct.usage": _scaled(P + "cpuacct_usage_seconds_total", 1e-9),
    "cpuacct.usage_all": parse_cpuacct_usage_all,
    "cpuacct.stat": parse_cpuacct_stat,
}
CPU_FILES = {
    "cpu.stat": parse_cpu_stat,
    "cpu.stat.local": keyed_parser({"throttled_time": (P + "cpu_local_throttled_seconds_total", 1e-9)}),
    "cpu.cfs_period_us": _scaled(P + "cpu_period_seconds", 1e-6),
    "cpu.shares": _scaled(P + "cpu_shares", 1.0),
}
CPUSET_FILES = {
    "cpuset.effective_cpus": lambda t: {P + "cpuset_cpus": float(parse_cpu_list(t))},
    "cpuset.effective_mems": lambda t: {P + "cpuset_mems": float(parse_cpu_list(t))},
}
PIDS_FILES = {
    "pids.current": _scaled(P + "pids_current", 1.0),
    "pids.max": _scaled(P + "pids_max", 1.0),
    "pids.events": keyed_parser({"max": (P + "pids_max_events_total", 1.0)}),
}
# written by operators only: re-read every SETTINGS_REFRESH_SECONDS
SETTINGS = frozenset(
    {"cpu.cfs_period_us", "cpu.shares", "cpuset.effective_cpus", "cpuset.effective_mems", "pids.max"}
)
CONTROLLER_FILES = {"cpuacct": CPUACCT_FILES, "cpu": CPU_FILES, "cpuset": CPUSET_FILES, "pids": PIDS_FILES}


@CGROUP_SOURCES.register(SOURCE)
class CgroupV1CpuSource(CgroupSource):
    name = SOURCE

    def specs(self) -> list[MetricSpec]:
        try:
            cpus = cpu_count_from_procfs((self.roots.procfs / "stat").read_text())
        except OSError:
            cpus = os.cpu_count() or 1
        return _specs(cpus)

    def read(self, target: CgroupTarget) -> dict[str, float]:
        values: dict[str, float] = {}
        for controller, files in CONTROLLER_FILES.items():
            directory = target.v1.get(controller)
            if directory is not None:
                values.update(read_cgroup_files(directory, files, self.files, SETTINGS))
        cpu_dir = target.v1.get("cpu")
        if cpu_dir is not None:
            try:
                quota = self.files.read_setting(f"{cpu_dir}/cpu.cfs_quota_us")
                period = self.files.read_setting(f"{cpu_dir}/cpu.cfs_period_us")
            except OSError:
                quota = period = None
            if quota is not None and period is not None:  # else no CFS bandwidth control: quota stays null
                values.update(parse_quota(quota, period))
        return values
