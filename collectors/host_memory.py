"""Host memory from procfs: /proc/meminfo (byte gauges) and /proc/vmstat (event counters, page gauges)."""

from __future__ import annotations

import functools
import re

from cotenant.collectors.base import (
    HOST_SOURCES,
    HostSource,
    MetricGroup,
    MetricSpec,
    counter,
    gauge,
    parse_flat_keyed,
)

SOURCE = "host_memory"
MEM, IO, CACHE = MetricGroup.MEMORY, MetricGroup.IO, MetricGroup.CACHE_MEMBW
# vmstat keys that are instantaneous page counts (nr_*) rather than events since boot
_VMSTAT_GAUGE = re.compile(r"^nr_(?!.*_(?:written|dirtied)$)")
_VMSTAT_IO = re.compile(r"^(pgpg|pswp|nr_written|nr_dirtied)")


def _snake(key: str) -> str:
    key = key.replace("(", "_").replace(")", "")
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


@functools.cache  # kernel keys are a fixed set; the regex per line per tick cost more than the read
def meminfo_name(key: str) -> str:
    return f"host_meminfo_{_snake(key)}_bytes" if key not in ("HugePages_Total", "HugePages_Free",
        "HugePages_Rsvd", "HugePages_Surp") else f"host_meminfo_{_snake(key)}_pages"  # fmt: skip


def parse_meminfo(text: str) -> dict[str, float]:
    """``Key: value [kB]`` -> bytes (hugepage counts stay pages)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        scale = 1024.0 if len(parts) > 1 and parts[1] == "kB" else 1.0
        values[meminfo_name(key)] = float(parts[0]) * scale
    return values


@functools.cache
def vmstat_name(key: str) -> str:
    return f"host_vmstat_{key}_pages" if _VMSTAT_GAUGE.match(key) else f"host_vmstat_{key}_total"


def parse_vmstat(text: str) -> dict[str, float]:
    return {vmstat_name(k): v for k, v in parse_flat_keyed(text).items()}


@HOST_SOURCES.register(SOURCE)
class HostMemorySource(HostSource):
    name = SOURCE

    def specs(self) -> list[MetricSpec]:
        specs: list[MetricSpec] = []
        try:
            meminfo = parse_meminfo((self.roots.procfs / "meminfo").read_text())
            vmstat = parse_flat_keyed((self.roots.procfs / "vmstat").read_text())
        except OSError:
            return specs
        for name in meminfo:
            unit = "pages" if name.endswith("_pages") else "bytes"
            specs.append(
                gauge(name, unit, SOURCE, MEM, "/proc/meminfo " + name.removeprefix("host_meminfo_"))
            )
        for key in vmstat:
            group = IO if _VMSTAT_IO.match(key) else MEM
            if key.startswith("numa_") or "migrat" in key:
                group = CACHE  # remote-node traffic and page migration stand in for memory-bandwidth pressure
            name = vmstat_name(key)
            if name.endswith("_pages"):
                specs.append(gauge(name, "pages", SOURCE, group, f"/proc/vmstat {key}"))
            else:
                specs.append(counter(name, "events", SOURCE, group, f"/proc/vmstat {key}"))
        return specs

    def read(self) -> dict[str, float]:
        values = parse_meminfo(self.read_proc("meminfo"))
        values.update(parse_vmstat(self.read_proc("vmstat")))
        return values
