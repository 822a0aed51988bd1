"""cgroup v1 memory (usage, limits, memory.stat, NUMA, OOM) and blkio per target.

Byte values in memory.stat are gauges; ``pgfault`` and friends are event counters. ``total_*`` keys are
hierarchical (this cgroup and its descendants) and kept apart from the cgroup's own values.
"""

from __future__ import annotations

import functools

from cotenant.collectors.base import (
    CGROUP_SOURCES,
    CgroupSource,
    CgroupTarget,
    MetricGroup,
    MetricSpec,
    counter,
    gauge,
    parse_number,
    read_cgroup_files,
)
from cotenant.collectors.keyed import keyed_parser

SOURCE = "cgroup_v1_memory"
P = "cgroup_v1_memory_"
MEM, IO = MetricGroup.MEMORY, MetricGroup.IO

STAT_EVENTS = (
    "pgpgin",
    "pgpgout",
    "pgfault",
    "pgmajfault",
    "workingset_refault_anon",
    "workingset_refault_file",
)
STAT_BYTES = [
    "cache",
    "rss",
    "rss_huge",
    "shmem",
    "mapped_file",
    "dirty",
    "writeback",
    "swap",
    "swapcached",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
]
LIMITS = ("hierarchical_memory_limit", "hierarchical_memsw_limit")
# usage files: (file, metric, kind) -> gauges in bytes except failcnt counters
USAGE_FILES = {
    f"memory.{prefix}{suffix}": f"{name}_{metric}"
    for prefix, name in (("", "usage"), ("memsw.", "memsw"), ("kmem.", "kmem"), ("kmem.tcp.", "kmem_tcp"))
    for suffix, metric in (
        ("usage_in_bytes", "bytes"),
        ("max_usage_in_bytes", "max_bytes"),
        ("limit_in_bytes", "limit_bytes"),
        ("failcnt", "failures_total"),
    )
}
NUMA_KEYS = ("total", "file", "anon", "unevictable")
BLKIO_OPS = ("read", "write", "sync", "async", "discard", "total")


def _specs(numa_nodes: int) -> list[MetricSpec]:
    specs: list[MetricSpec] = []
    for scope, prefix in (("own", ""), ("hierarchical", "total_")):
        for key in STAT_BYTES:
            specs.append(
                gauge(f"{P}{prefix}{key}_bytes", "bytes", SOURCE, MEM, f"memory.stat {prefix}{key} ({scope})")
            )
        for key in STAT_EVENTS:
            specs.append(
                counter(
                    f"{P}{prefix}{key}_total", "events", SOURCE, MEM, f"memory.stat {prefix}{key} ({scope})"
                )
            )
    specs += [gauge(f"{P}{k}_bytes", "bytes", SOURCE, MEM, f"memory.stat {k} (null = none)") for k in LIMITS]
    for file, metric in USAGE_FILES.items():
        if metric.endswith("_total"):
            specs.append(counter(P + metric, "events", SOURCE, MEM, f"{file}: allocations over the limit"))
        else:
            specs.append(gauge(P + metric, "bytes", SOURCE, MEM, f"{file} (null = no limit)"))
    for key in NUMA_KEYS:
        for hier in ("", "hierarchical_"):
            name = f"{P}numa_{hier}{key}_pages"
            specs.append(gauge(name, "pages", SOURCE, MEM, f"memory.numa_stat {hier}{key}, all nodes"))
            for node in range(numa_nodes):
                specs.append(
                    gauge(
                        f"{P}numa_node{node}_{hier}{key}_pages",
                        "pages",
                        SOURCE,
                        MEM,
                        f"{hier}{key} on node {node}",
                    )
                )
    specs += [
        gauge(P + "swappiness", "ratio", SOURCE, MEM, "memory.swappiness"),
        gauge(P + "under_oom", "flag", SOURCE, MEM, "1 while the cgroup is in OOM"),
        counter(P + "oom_kills_total", "events", SOURCE, MEM, "tasks killed by the OOM killer"),
    ]
    for op in BLKIO_OPS:
        specs.append(
            counter(
                f"cgroup_v1_blkio_{op}_bytes_total", "bytes", SOURCE, IO, f"blkio {op} bytes, all devices"
            )
        )
        specs.append(
            counter(
                f"cgroup_v1_blkio_{op}_operations_total",
                "operations",
                SOURCE,
                IO,
                f"blkio {op} I/Os, all devices",
            )
        )
    return specs


# memory.stat key -> (column, factor); the cgroup's own values and the hierarchical ``total_`` ones
MEMORY_STAT_NAMES = {
    **{f"{prefix}{k}": (f"{P}{prefix}{k}_bytes", 1.0) for prefix in ("", "total_") for k in STAT_BYTES},
    **{f"{prefix}{k}": (f"{P}{prefix}{k}_total", 1.0) for prefix in ("", "total_") for k in STAT_EVENTS},
    **{k: (f"{P}{k}_bytes", 1.0) for k in LIMITS},
}
parse_memory_stat = keyed_parser(MEMORY_STAT_NAMES)  # unlimited sentinels are left out there


@functools.cache
def _numa_column(key: str, node: str) -> str | None:
    """memory.numa_stat ``key`` (``total``, ``hierarchical_file`` ...) on ``node`` (``N0``, or ``""`` for all
    nodes) -> its column, None for keys not collected."""
    hier = "hierarchical_" if key.startswith("hierarchical_") else ""
    base = key.removeprefix("hierarchical_")
    if base not in NUMA_KEYS:
        return None
    if not node:
        return f"{P}numa_{hier}{base}_pages"
    return f"{P}numa_node{node.removeprefix('N')}_{hier}{base}_pages"


def parse_numa_stat(text: str) -> dict[str, float]:
    """``key=<pages> N0=<pages> N1=...`` lines."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        key, total, *nodes = line.replace("=", " ").split()
        name = _numa_column(key, "")
        if name is None:
            continue
        values[name] = float(total)
        pairs = iter(nodes)
        for node, pages in zip(pairs, pairs, strict=False):
            node_name = _numa_column(key, node)
            if node_name is not None:
                values[node_name] = float(pages)
    return values


parse_oom_control = keyed_parser(
    {"under_oom": (P + "under_oom", 1.0), "oom_kill": (P + "oom_kills_total", 1.0)}
)


def parse_blkio(text: str, unit: str) -> dict[str, float]:
    """``MAJ:MIN Read 123`` lines (plus a ``Total`` line), summed over devices.

    A cgroup that never did block I/O lists no device; its counters are then truly zero, not unknown.
    """
    values: dict[str, float] = {f"cgroup_v1_blkio_{op}_{unit}_total": 0.0 for op in BLKIO_OPS}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].lower() in BLKIO_OPS:
            name = f"cgroup_v1_blkio_{parts[1].lower()}_{unit}_total"
            values[name] = values.get(name, 0.0) + float(parts[2])
    return values


def _single(name: str):
    def parse(text: str) -> dict[str, float]:
        value = parse_number(text.strip())
        return {} if value is None else {name: value}

    return parse


MEMORY_FILES = {
    "memory.stat": parse_memory_stat,
    "memory.numa_stat": parse_numa_stat,
    "memory.oom_control": parse_oom_control,
    "memory.swappiness": _single(P + "swappiness"),
    **{file: _single(P + metric) for file, metric in USAGE_FILES.items()},
}
BLKIO_FILES = {
    "blkio.throttle.io_service_bytes": lambda t: parse_blkio(t, "bytes"),
    "blkio.throttle.io_serviced": lambda t: parse_blkio(t, "operations"),
}

# written by operators only: re-read every SETTINGS_REFRESH_SECONDS
LIMIT_FILES = [file for file in USAGE_FILES if file.endswith("limit_in_bytes")]
SETTINGS = frozenset([*LIMIT_FILES, "memory.swappiness"])


@CGROUP_SOURCES.register(SOURCE)
class CgroupV1MemorySource(CgroupSource):
    name = SOURCE

    def specs(self) -> list[MetricSpec]:
        # NUMA columns follow this machine's nodes, as the root cgroup's numa_stat lists them.
        try:
            first_line = (self.roots.cgroup / "memory" / "memory.numa_stat").read_text().splitlines()[0]
            nodes = sum(1 for field_text in first_line.split()[1:] if field_text.startswith("N"))
        except (OSError, IndexError):
            nodes = 1
        return _specs(max(nodes, 1))

    def read(self, target: CgroupTarget) -> dict[str, float]:
        values: dict[str, float] = {}
        if "memory" in target.v1:
            values.update(read_cgroup_files(target.v1["memory"], MEMORY_FILES, self.files, SETTINGS))
        if "blkio" in target.v1:
            values.update(read_cgroup_files(target.v1["blkio"], BLKIO_FILES, self.files))
        return values
