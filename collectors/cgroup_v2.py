"""cgroup v2 per target: cpu.stat, cpu.max, memory.current/stat/events, io.stat and the three pressure files.

On hybrid hosts the cgroup2 tree carries few controllers, so files that are absent are simply unavailable
(null columns); pure-v2 production hosts fill all of them.
"""

from __future__ import annotations

from cotenant.collectors.base import (
    CGROUP_SOURCES,
    PRESSURE_RESOURCES,
    CgroupSource,
    CgroupTarget,
    MetricGroup,
    MetricSpec,
    counter,
    gauge,
    pressure_specs,
    read_cgroup_files,
)
from cotenant.collectors.keyed import keyed_parser, pressure_parser

SOURCE = "cgroup_v2"
P = "cgroup_"
CPU, MEM, IO, OTHER = MetricGroup.CPU, MetricGroup.MEMORY, MetricGroup.IO, MetricGroup.OTHER

# cpu.stat key -> (metric, scale to base unit, description); times are microseconds in the kernel.
CPU_STAT = {
    "usage_usec": ("cpu_usage_seconds_total", 1e-6, "CPU time used (cores when read as a rate)"),
    "user_usec": ("cpu_user_seconds_total", 1e-6, "CPU time in user mode"),
    "system_usec": ("cpu_system_seconds_total", 1e-6, "CPU time in kernel mode"),
    "nice_usec": ("cpu_nice_seconds_total", 1e-6, "CPU time at positive nice"),
    "nr_periods": ("cpu_periods_total", 1.0, "CFS bandwidth periods elapsed"),
    "nr_throttled": ("cpu_throttled_periods_total", 1.0, "CFS periods in which the cgroup was throttled"),
    "throttled_usec": ("cpu_throttled_seconds_total", 1e-6, "time throttled by the CPU quota"),
    "nr_bursts": ("cpu_bursts_total", 1.0, "CFS periods that used burst"),
    "burst_usec": ("cpu_burst_seconds_total", 1e-6, "CPU time used in burst"),
}

# memory.stat: byte gauges and event counters worth modelling (names as the kernel spells them).
MEMORY_STAT_BYTES = [
    "anon",
    "file",
    "kernel",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
    "percpu",
    "sock",
    "vmalloc",
    "shmem",
    "zswap",
    "zswapped",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "swapcached",
    "anon_thp",
    "file_thp",
    "shmem_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "slab",
]
MEMORY_STAT_EVENTS = [
    "pgfault",
    "pgmajfault",
    "workingset_refault_anon",
    "workingset_refault_file",
    "workingset_activate_anon",
    "workingset_activate_file",
    "workingset_restore_anon",
    "workingset_restore_file",
    "workingset_nodereclaim",
    "pgscan",
    "pgsteal",
    "pgscan_kswapd",
    "pgscan_direct",
    "pgsteal_kswapd",
    "pgsteal_direct",
    "pgrefill",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pglazyfreed",
    "thp_fault_alloc",
    "thp_collapse_alloc",
]
MEMORY_EVENTS = ("low", "high", "max", "oom", "oom_kill", "oom_group_kill")
IO_STAT = {
    "rbytes": ("io_read_bytes_total", "bytes", "bytes read from block devices"),
    "wbytes": ("io_written_bytes_total", "bytes", "bytes written to block devices"),
    "rios": ("io_read_operations_total", "operations", "read operations"),
    "wios": ("io_write_operations_total", "operations", "write operations"),
    "dbytes": ("io_discarded_bytes_total", "bytes", "bytes discarded"),
    "dios": ("io_discard_operations_total", "operations", "discard operations"),
}


def _specs() -> list[MetricSpec]:
    specs = [
        counter(P + m, "seconds" if s != 1.0 else "periods", SOURCE, CPU, d) for m, s, d in CPU_STAT.values()
    ]
    specs += [
        gauge(P + "cpu_max_cores", "cores", SOURCE, CPU, "CPU quota / period from cpu.max (null = no limit)"),
        gauge(P + "cpu_weight", "weight", SOURCE, CPU, "cpu.weight (1-10000, default 100)"),
        gauge(P + "memory_current_bytes", "bytes", SOURCE, MEM, "memory charged to the cgroup"),
        gauge(P + "memory_max_bytes", "bytes", SOURCE, MEM, "memory.max (null = no limit)"),
        gauge(P + "memory_high_bytes", "bytes", SOURCE, MEM, "memory.high (null = no limit)"),
        gauge(P + "memory_swap_current_bytes", "bytes", SOURCE, MEM, "swap charged to the cgroup"),
        gauge(P + "pids_current", "tasks", SOURCE, OTHER, "tasks in the cgroup (pids.current)"),
        gauge(P + "descendants", "cgroups", SOURCE, OTHER, "live descendant cgroups (cgroup.stat)"),
        gauge(P + "dying_descendants", "cgroups", SOURCE, OTHER, "dying descendant cgroups (cgroup.stat)"),
        gauge(P + "populated", "flag", SOURCE, OTHER, "1 if the cgroup or a descendant has live tasks"),
        gauge(P + "frozen", "flag", SOURCE, OTHER, "1 if the cgroup is frozen"),
        counter(
            P + "cpu_local_throttled_seconds_total",
            "seconds",
            SOURCE,
            CPU,
            "own throttled time (cpu.stat.local)",
        ),
    ]
    specs += [
        gauge(f"{P}memory_{k}_bytes", "bytes", SOURCE, MEM, f"memory.stat {k}") for k in MEMORY_STAT_BYTES
    ]
    specs += [
        counter(f"{P}memory_{k}_total", "events", SOURCE, MEM, f"memory.stat {k}") for k in MEMORY_STAT_EVENTS
    ]
    specs += [
        counter(f"{P}memory_events_{k}_total", "events", SOURCE, MEM, f"memory.events {k}")
        for k in MEMORY_EVENTS
    ]
    specs += [counter(P + m, u, SOURCE, IO, d + " (all devices)") for m, u, d in IO_STAT.values()]
    return specs + pressure_specs(P, SOURCE)


parse_cpu_stat = keyed_parser({k: (P + metric, scale) for k, (metric, scale, _) in CPU_STAT.items()})


def parse_cpu_max(text: str) -> dict[str, float]:
    parts = text.split()
    if len(parts) < 2 or parts[0] == "max":
        return {}
    return {P + "cpu_max_cores": float(parts[0]) / float(parts[1])}


parse_memory_stat = keyed_parser(
    {
        **{k: (f"{P}memory_{k}_bytes", 1.0) for k in MEMORY_STAT_BYTES},
        **{k: (f"{P}memory_{k}_total", 1.0) for k in MEMORY_STAT_EVENTS},
    }
)
parse_memory_events = keyed_parser({k: (f"{P}memory_events_{k}_total", 1.0) for k in MEMORY_EVENTS})


def parse_io_stat(text: str) -> dict[str, float]:
    """``MAJ:MIN rbytes=.. wbytes=.. ...`` per device, summed over devices."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        for field_text in line.split()[1:]:
            key, _, number = field_text.partition("=")
            if key in IO_STAT:
                name = P + IO_STAT[key][0]
                values[name] = values.get(name, 0.0) + float(number)
    return values


def _single(text: str, name: str) -> dict[str, float]:
    value = text.strip()
    return {} if value == "max" else {name: float(value)}


parse_cgroup_stat = keyed_parser(
    {"nr_descendants": (P + "descendants", 1.0), "nr_dying_descendants": (P + "dying_descendants", 1.0)}
)


FILES = {
    "cpu.stat": parse_cpu_stat,
    "cpu.max": parse_cpu_max,
    "cpu.weight": lambda t: _single(t, P + "cpu_weight"),
    "memory.current": lambda t: _single(t, P + "memory_current_bytes"),
    "memory.max": lambda t: _single(t, P + "memory_max_bytes"),
    "memory.high": lambda t: _single(t, P + "memory_high_bytes"),
    "memory.swap.current": lambda t: _single(t, P + "memory_swap_current_bytes"),
    "memory.stat": parse_memory_stat,
    "memory.events": parse_memory_events,
    "io.stat": parse_io_stat,
    "pids.current": lambda t: _single(t, P + "pids_current"),
    "cgroup.stat": parse_cgroup_stat,
    "cgroup.events": keyed_parser({k: (P + k, 1.0) for k in ("populated", "frozen")}),
    "cpu.stat.local": keyed_parser({"throttled_usec": (P + "cpu_local_throttled_seconds_total", 1e-6)}),
    **{f"{resource}.pressure": pressure_parser(P, resource) for resource in PRESSURE_RESOURCES},
}

SETTINGS = frozenset({"cpu.max", "cpu.weight", "memory.max", "memory.high"})  # written by operators only


@CGROUP_SOURCES.register(SOURCE)
class CgroupV2Source(CgroupSource):
    name = SOURCE

    def specs(self) -> list[MetricSpec]:
        return _specs()

    def read(self, target: CgroupTarget) -> dict[str, float]:
        if target.v2 is None:
            return {}
        return read_cgroup_files(target.v2, FILES, self.files, SETTINGS)
