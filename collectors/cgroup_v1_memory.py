"""cgroup v1 memory (usage, limits, memory.stat, NUMA, OOM) and blkio per target.

Byte values in memory.stat are gauges; ``pgfault`` and friends are event counters. ``total_*`` keys are
hierarchical (this cgroup and its descendants) and kept apart from the cgroup's own values.
"""

from __future__ import annotations

from cotenant.collectors.base import (
    CGROUP_SOURCES,
    CgroupSource,
    CgroupTarget,
    MetricGroup,
    MetricSpec,
    counter,
    gauge,
    parse_flat_keyed,
    parse_number,
    read_cgroup_files,
)

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


def parse_memory_stat(text: str) -> dict[str, float]:
    raw = parse_flat_keyed(text)  # unlimited sentinels are dropped there
    values: dict[str, float] = {}
    for prefix in ("", "total_"):
        values.update({f"{P}{prefix}{k}_bytes": raw[prefix + k] for k in STAT_BYTES if prefix + k in raw})
        values.update({f"{P}{prefix}{k}_total": raw[prefix + k] for k in STAT_EVENTS if prefix + k in raw})
    values.update({f"{P}{k}_bytes": raw[k] for k in LIMITS if k in raw})
    return values


def parse_numa_stat(text: str) -> dict[str, float]:
    """``key=<pages> N0=<pages> N1=...`` lines."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        first, *nodes = line.split()
        key, _, total = first.partition("=")
        hier = "hierarchical_" if key.startswith("hierarchical_") else ""
        base = key.removeprefix("hierarchical_")
        if base not in NUMA_KEYS:
            continue
        values[f"{P}numa_{hier}{base}_pages"] = float(total)
        for node_text in nodes:
            node, _, pages = node_text.partition("=")
            values[f"{P}numa_node{node.removeprefix('N')}_{hier}{base}_pages"] = float(pages)
    return values


def parse_oom_control(text: str) -> dict[str, float]:
    raw = parse_flat_keyed(text)
    values = {P + "under_oom": raw["under_oom"]} if "under_oom" in raw else {}
    if "oom_kill" in raw:
        values[P + "oom_kills_total"] = raw["oom_kill"]
    return values


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
